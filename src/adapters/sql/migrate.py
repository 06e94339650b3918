"""`outbox migrate`: run the Alembic revisions that create or adopt the outbox table."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import Connection

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

    with engine.connect() as connection:
        if not inspect(connection).has_table(table):
            raise SchemaError(f"table {table!r} does not exist: run `outbox migrate` first")
        present = column_names(connection, table)
    wanted = [c.name for c in (*seed_columns(), *dispatcher_columns())]
    missing = [name for name in wanted if same_name(name, connection.dialect.name) not in present]
    if missing:
        raise SchemaError(f"table {table!r} lacks {', '.join(missing)}: run `outbox migrate`")


def column_names(connection: Connection, table: str) -> set[str]:
    """The table's column names as `same_name` spells them for this database."""
    dialect = connection.dialect.name
    return {same_name(c["name"], dialect) for c in inspect(connection).get_columns(table)}


def same_name(column: str, dialect: str) -> str:
    """SQL Server's default collation and SQLite match column names regardless of case (and
    Babelfish reflects them in lower case); PostgreSQL's quoted names are case-sensitive."""
    return column if dialect == "postgresql" else column.casefold()
