"""The outbox table: the seed's five columns, verbatim, plus the dispatcher's lifecycle columns."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Unicode,
    UnicodeText,
    func,
    text,
)
from sqlalchemy.dialects import mssql

# SQLite only aliases the rowid (and so auto-increments) for a column typed exactly INTEGER.
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")
# SQL Server's DATETIME rounds to 3.33 ms; DATETIME2 is exact and pairs with SYSUTCDATETIME().
MOMENT = DateTime().with_variant(mssql.DATETIME2(), "mssql")  # type: ignore[no-untyped-call]
SEED_COLUMNS = ("ID", "UserID", "Message", "ToSend", "Status")
UNFINISHED = '"ToSend" IN (1, 2)'
# An attempt that did not deliver, as `last_hour.failed` asks (the planners match the text).
FAILED = '"HttpStatus" IS NULL OR "HttpStatus" NOT BETWEEN 200 AND 299'


def seed_columns() -> list[Column[object]]:
    return [
        Column("ID", ID_TYPE, primary_key=True, autoincrement=True),
        Column("UserID", Integer, nullable=False),
        Column("Message", UnicodeText),
        Column("ToSend", SmallInteger, nullable=False, server_default=text("0")),
        Column("Status", Unicode(400)),
    ]


def dispatcher_columns() -> list[Column[object]]:
    """Columns the dispatcher adds; all nullable or defaulted so adopting a table is safe."""
    return [
        Column("MessageType", Unicode(100), nullable=False, server_default=text("'default'")),
        Column("Attempts", Integer, nullable=False, server_default=text("0")),
        Column("NextAttemptAt", MOMENT),
        Column("LeaseOwner", Unicode(200)),
        Column("LeaseUntil", MOMENT),
        Column("LeaseToken", String(40)),
        Column("IdempotencyKey", String(80)),
        Column("SentAt", MOMENT),
        Column("CreatedAt", MOMENT),
    ]


def history_columns() -> list[Column[object]]:
    return [
        Column("ID", ID_TYPE, primary_key=True, autoincrement=True),
        Column("MessageID", BigInteger, nullable=False, index=True),
        Column("Attempt", Integer, nullable=False),
        Column("IdempotencyKey", String(80), nullable=False),
        Column("StartedAt", MOMENT, nullable=False),  # indexed by 0005's _Hour
        Column("DurationMs", Integer, nullable=False),
        Column("HttpStatus", SmallInteger),
        Column("Error", Unicode(200)),
        Column("Excerpt", Unicode(400)),
    ]


def targets_columns() -> list[Column[object]]:
    """Each target's breaker as last reported by a worker, for `outbox status`."""
    return [
        Column("Target", Unicode(200), primary_key=True),
        Column("State", String(20), nullable=False),
        Column("Since", MOMENT),
        Column("LastError", Unicode(400)),
        Column("UpdatedAt", MOMENT, nullable=False),
        Column("ReportedBy", Unicode(200)),
    ]


def targets_name(table: str) -> str:
    return f"{table}Targets"


def targets_table(name: str, metadata: MetaData | None = None) -> Table:
    return Table(targets_name(name), metadata or MetaData(), *targets_columns())


def history_name(table: str) -> str:
    return f"{table}Attempts"


def index_names(table: str) -> dict[str, str]:
    return {"due": f"IX_{table}_Due", "user": f"IX_{table}_UserDue", "lease": f"IX_{table}_Lease"}


def partial(dialect: str, condition: str) -> dict[str, Any]:
    """Index filter keyword for each dialect (SQL Server calls them filtered indexes)."""
    return {f"{dialect}_where": text(condition)}


def indexes(table: Table, dialect: str) -> list[Index]:
    """Partial indexes over unfinished rows only: the claim reads these, never the sent ones."""
    names = index_names(table.name)
    c = table.c
    return [
        Index(names["due"], c.ID, **partial(dialect, UNFINISHED)),
        Index(names["user"], c.UserID, c.ID, **partial(dialect, UNFINISHED)),
        Index(names["lease"], c.LeaseToken, **partial(dialect, '"ToSend" = 2')),
    ]


def due_at(table: Table) -> Any:
    """The moment a row became (or becomes) due, as `IX_<table>_DueAt` indexes it."""
    return func.coalesce(table.c.NextAttemptAt, table.c.CreatedAt)


def overview_indexes(table: str, dialect: str) -> tuple[list[Index], list[Index]]:
    """Migration 0005's indexes (it says why): the outbox table's, then the history's."""
    c = outbox_table(table).c
    # SQL Server indexes no expression without a computed column: see oldest_due_age there.
    due = (c.NextAttemptAt, c.CreatedAt) if dialect == "mssql" else (due_at(outbox_table(table)),)
    on_table = [Index(f"IX_{table}_DueAt", *due, **partial(dialect, UNFINISHED))]
    if dialect == "sqlite":
        on_table.append(Index(f"IX_{table}_Rows", c.ID))
    h = history_table(table).c
    on_history = [Index(f"IX_{history_name(table)}_Hour", h.StartedAt, h.HttpStatus, h.DurationMs)]
    if dialect != "mssql":  # whose filtered indexes take no OR
        on_history.append(
            Index(f"IX_{history_name(table)}_Failed", h.StartedAt, **partial(dialect, FAILED))
        )
    return on_table, on_history


def outbox_table(
    name: str, metadata: MetaData | None = None, *, implicit_returning: bool = True
) -> Table:
    return Table(
        name,
        metadata or MetaData(),
        *seed_columns(),
        *dispatcher_columns(),
        implicit_returning=implicit_returning,
    )


def history_table(name: str, metadata: MetaData | None = None) -> Table:
    return Table(history_name(name), metadata or MetaData(), *history_columns())
