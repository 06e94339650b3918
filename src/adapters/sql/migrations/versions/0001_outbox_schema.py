"""Create the seed table, or adopt an existing one: add the dispatcher's columns and indexes.

Only adds nullable or defaulted columns and indexes; never changes an existing value.
"""

from alembic import context, op
from sqlalchemy import text

from adapters.sql.migrate import (
    SchemaError,
    column_defaults,
    column_names,
    create_missing_indexes,
    has_table,
    same_name,
)
from adapters.sql.schema import (
    SEED_COLUMNS,
    dispatcher_columns,
    history_columns,
    history_name,
    indexes,
    outbox_table,
    seed_columns,
)

revision = "0001"
down_revision = None

_NOW = {
    "postgresql": "timezone('utc', now())",
    "mssql": "SYSUTCDATETIME()",
    "sqlite": "CURRENT_TIMESTAMP",
}


def upgrade() -> None:
    table = context.config.attributes["table"]
    bind = op.get_bind()
    dialect = bind.dialect.name
    # A table created here needs no reflection (slow on SQL Server's catalog views).
    fresh = not has_table(bind, table)
    if fresh:
        op.create_table(table, *seed_columns(), *dispatcher_columns())
    else:
        _adopt(table, dialect)
    _default_created_at(table, dialect, fresh)
    _create_indexes(table, dialect, fresh)
    if not has_table(bind, history_name(table)):
        op.create_table(history_name(table), *history_columns())


def _adopt(table: str, dialect: str) -> None:
    present = column_names(op.get_bind(), table)
    missing = [name for name in SEED_COLUMNS if same_name(name, dialect) not in present]
    if missing:
        raise SchemaError(f"table {table!r} exists but lacks the seed's columns {missing}")
    for column in dispatcher_columns():
        if same_name(column.name, dialect) not in present:
            op.add_column(table, column)


def _default_created_at(table: str, dialect: str, fresh: bool) -> None:
    # SQLite cannot add a column with a non-constant default; `enqueue` sets CreatedAt there.
    if dialect == "sqlite" or (not fresh and _has_default(table, "CreatedAt")):
        return
    quoted = op.get_bind().dialect.identifier_preparer.quote
    if dialect == "postgresql":
        op.execute(
            text(
                f'ALTER TABLE {quoted(table)} ALTER COLUMN "CreatedAt" SET DEFAULT {_NOW[dialect]}'
            )
        )
    elif dialect == "mssql":
        op.execute(text(f"ALTER TABLE {quoted(table)} ADD DEFAULT {_NOW[dialect]} FOR [CreatedAt]"))


def _create_indexes(table: str, dialect: str, fresh: bool) -> None:
    wanted = indexes(outbox_table(table), dialect)
    if fresh:
        for index in wanted:
            index.create(op.get_bind())
    else:
        create_missing_indexes(op.get_bind(), table, wanted)


def _has_default(table: str, column: str) -> bool:
    dialect = op.get_bind().dialect.name
    return bool(column_defaults(op.get_bind(), table).get(same_name(column, dialect)))
