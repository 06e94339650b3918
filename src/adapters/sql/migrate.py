"""`outbox migrate`: run the Alembic revisions that create or adopt the outbox table."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Engine, Index, inspect, text
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaError(Exception):
    """The database does not hold the table the dispatcher needs."""


def version_table(table: str) -> str:
    return f"{table}OutboxVersion"


def migrate(engine: Engine, table: str = "Messages") -> None:
    """Create the table, or add the dispatcher's columns to an existing seed table. Idempotent."""
    # imported here: a worker only checks the schema, and Alembic is ~15 % of its start-up
    from alembic import command
    from alembic.config import Config

    with engine.begin() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes.update(connection=connection, table=table)
        command.upgrade(config, "head")


def check_schema(engine: Engine, table: str = "Messages") -> None:
    """Refuse to start on a database `outbox migrate` has not prepared, with one clear line."""
    from adapters.sql.schema import dispatcher_columns, seed_columns

    with engine.connect() as connection:
        if not has_table(connection, table):
            raise SchemaError(f"table {table!r} does not exist: run `outbox migrate` first")
        present = column_names(connection, table)
    wanted = [c.name for c in (*seed_columns(), *dispatcher_columns())]
    missing = [name for name in wanted if same_name(name, connection.dialect.name) not in present]
    if missing:
        raise SchemaError(f"table {table!r} lacks {', '.join(missing)}: run `outbox migrate`")


def has_table(connection: Connection, table: str) -> bool:
    if connection.dialect.name == "mssql":
        found = connection.execute(text("SELECT OBJECT_ID(:t, 'U')"), {"t": _bracketed(table)})
        return found.scalar() is not None
    return inspect(connection).has_table(table)


def column_names(connection: Connection, table: str) -> set[str]:
    """The table's column names as `same_name` spells them for this database."""
    return set(column_defaults(connection, table))


def column_defaults(connection: Connection, table: str) -> dict[str, str | None]:
    """Column name (as `same_name` spells it) → its default's SQL text, if any.

    SQL Server: one INFORMATION_SCHEMA query, not the inspector's joins over the catalog
    views, which take seconds each on Babelfish."""
    dialect = connection.dialect.name
    if dialect == "mssql":
        rows = [(str(n), d) for n, d in connection.execute(_MSSQL_COLUMNS, {"t": table})]
    else:
        rows = [(c["name"], c.get("default")) for c in inspect(connection).get_columns(table)]
    return {same_name(name, dialect): default for name, default in rows}


def existing_index_names(connection: Connection, table: str) -> list[str]:
    if connection.dialect.name == "mssql":
        found = connection.execute(_MSSQL_INDEXES, {"t": _bracketed(table)}).scalars()
        names = [name for name in found if name]
    elif connection.dialect.name == "sqlite":  # the inspector skips expression indexes there
        names = list(connection.execute(_SQLITE_INDEXES, {"t": table}).scalars())
    else:
        names = [i["name"] or "" for i in inspect(connection).get_indexes(table)]
    return [same_name(name, connection.dialect.name) for name in names]


def create_missing_indexes(connection: Connection, table: str, wanted: Iterable[Index]) -> None:
    """Create each index the table lacks (an adopted table may have some already)."""
    existing = existing_index_names(connection, table)
    for index in wanted:
        # Babelfish reports an index's name with a hash of its table's name appended.
        name = same_name(str(index.name), connection.dialect.name)
        if not any(have == name or have.startswith(name) for have in existing):
            index.create(connection)


def same_name(column: str, dialect: str) -> str:
    """SQL Server's default collation and SQLite match column names regardless of case (and
    Babelfish reflects them in lower case); PostgreSQL's quoted names are case-sensitive."""
    return column if dialect == "postgresql" else column.casefold()


def _bracketed(table: str) -> str:
    return "[" + table.replace("]", "]]") + "]"


_MSSQL_COLUMNS = text(
    "SELECT COLUMN_NAME, COLUMN_DEFAULT FROM INFORMATION_SCHEMA.COLUMNS "
    "WHERE TABLE_NAME = :t AND TABLE_SCHEMA = SCHEMA_NAME() ORDER BY ORDINAL_POSITION"
)
_SQLITE_INDEXES = text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = :t")
_MSSQL_INDEXES = text("SELECT name FROM sys.indexes WHERE object_id = OBJECT_ID(:t, 'U')")
