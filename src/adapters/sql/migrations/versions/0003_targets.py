"""The targets table: each target's circuit breaker as a worker last reported it.

Workers write a row when a breaker changes state; `outbox status` reads them, so the health of
a target is visible from any process. A new table only: nothing existing changes.
"""

from alembic import context, op
from sqlalchemy import inspect

from adapters.sql.schema import targets_columns, targets_name

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    name = targets_name(context.config.attributes["table"])
    if not inspect(op.get_bind()).has_table(name):
        op.create_table(name, *targets_columns())
