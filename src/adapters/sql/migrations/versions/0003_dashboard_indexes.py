"""Indexes for the operator dashboard: dead rows (partial, small) and every row by UserID.

The dead index serves the dead count, the dead list and bulk retries without reading the
sent rows; the UserID index lets a UserID filter walk one user's rows newest first.
"""

from alembic import context, op
from sqlalchemy import Index, inspect

from adapters.sql.schema import outbox_table, partial

revision = "0003"
down_revision = "0002"


def dashboard_indexes(table: str, dialect: str) -> list[Index]:
    c = outbox_table(table).c
    return [
        Index(f"IX_{table}_Dead", c.ID, **partial(dialect, '"ToSend" = 3')),
        Index(f"IX_{table}_User", c.UserID, c.ID),
    ]


def upgrade() -> None:
    table = context.config.attributes["table"]
    bind = op.get_bind()
    existing = {i["name"] for i in inspect(bind).get_indexes(table)}
    for index in dashboard_indexes(table, bind.dialect.name):
        if index.name not in existing:
            index.create(bind)
