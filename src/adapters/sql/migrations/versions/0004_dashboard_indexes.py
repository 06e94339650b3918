"""An index for the operator dashboard: dead rows only (partial, small).

It serves the dead count, the dead list and bulk retries without reading the sent rows.
No claim can use it (it holds no unfinished row), so the claim's plans stay as they were.
A full (UserID, ID) index was tried and dropped: SQLite's per-user claim then chose it over
the partial IX_<table>_UserDue.
"""

from alembic import context, op
from sqlalchemy import Index

from adapters.sql.migrate import create_missing_indexes
from adapters.sql.schema import outbox_table, partial

revision = "0004"
down_revision = "0003"


def dashboard_indexes(table: str, dialect: str) -> list[Index]:
    c = outbox_table(table).c
    return [
        Index(f"IX_{table}_Dead", c.ID, **partial(dialect, '"ToSend" = 3')),
    ]


def upgrade() -> None:
    table = context.config.attributes["table"]
    bind = op.get_bind()
    create_missing_indexes(bind, table, dashboard_indexes(table, bind.dialect.name))
