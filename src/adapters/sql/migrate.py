"""`outbox migrate`: run the Alembic revisions that create or adopt the outbox table."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaError(Exception):
    """The database does not hold the table the dispatcher needs."""


def version_table(table: str) -> str:
    return f"{table}OutboxVersion"


def migrate(engine: Engine, table: str = "Messages") -> None:
    """Create the table, or add the dispatcher's columns to an existing seed table. Idempotent."""
    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes.update(connection=connection, table=table)
        command.upgrade(config, "head")


def check_schema(engine: Engine, table: str = "Messages") -> None:
    """Refuse to start on a database `outbox migrate` has not prepared, with one clear line."""
    from adapters.sql.schema import dispatcher_columns, seed_columns

    inspector = inspect(engine)
    if not inspector.has_table(table):
        raise SchemaError(f"table {table!r} does not exist: run `outbox migrate` first")
    present = {column["name"] for column in inspector.get_columns(table)}
    wanted = [c.name for c in (*seed_columns(), *dispatcher_columns())]
    missing = [name for name in wanted if name not in present]
    if missing:
        raise SchemaError(f"table {table!r} lacks {', '.join(missing)}: run `outbox migrate`")
