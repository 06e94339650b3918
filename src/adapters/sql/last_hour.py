"""The overview's last hour, read from the attempt history's range in `IX_<table>Attempts_Hour`
(StartedAt, HttpStatus, DurationMs: migration 0005), never from the whole history."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, case, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from adapters.sql.mapping import from_db, to_db
from application import figures

Hour = list[tuple[datetime, str, str | None, int, Any]]


def last_hour(conn: Connection, table: Table, history: Table, start: datetime) -> Hour:
    """(minute, outcome, message type, attempts, last failure) from `start` on.

    Successes are counted from the history's index alone; only failed attempts are joined to
    their rows (dead or retried? which type?), so a healthy hour costs one index range.
    """
    rows: Hour = [(m, "sent", None, n, None) for m, n in sent_per_minute(conn, history, start)]
    outcomes = failed_attempts(table, history, to_db(start), conn.dialect.name).subquery()
    o = outcomes.c
    failed = select(o.minute, o.outcome, o.kind, func.count(), func.max(o.started)).group_by(
        o.minute, o.outcome, o.kind
    )
    rows += [
        (_minute(m), str(outcome), str(kind), int(n), last)
        for m, outcome, kind, n, last in conn.execute(failed)
    ]
    return rows


def sent_per_minute(
    conn: Connection, history: Table, start: datetime
) -> list[tuple[datetime, int]]:
    minutes = [start + timedelta(minutes=i) for i in range(figures.MINUTES)]
    row = conn.execute(sent_query(history, start)).one()
    return [(m, int(n)) for m, n in zip(minutes, row, strict=True) if n]


def sent_query(history: Table, start: datetime) -> Select[Any]:
    """One count of successes per minute, each over its own index range, in one statement.

    Grouping the hour by a computed minute makes SQLite build a temporary b-tree of 60,000
    strings (~50 ms on the benchmark's hour); sixty range counts cost it ~2 ms."""
    h = history.c
    bounds = [to_db(start + timedelta(minutes=i)) for i in range(figures.MINUTES + 1)]

    def count(since: Any, until: Any) -> Any:
        within = and_(h.StartedAt >= since, h.StartedAt < until)
        return select(func.count()).where(within, ~failed(h.HttpStatus)).scalar_subquery()

    return select(*(count(a, b) for a, b in pairwise(bounds)))


def durations(conn: Connection, history: Table, start: datetime) -> dict[int, int]:
    return {int(ms): int(n) for ms, n in conn.execute(durations_query(history, start))}


def durations_query(history: Table, start: datetime) -> Select[Any]:
    h = history.c
    return (
        select(h.DurationMs, func.count()).where(h.StartedAt >= to_db(start)).group_by(h.DurationMs)
    )


def failed_attempts(table: Table, history: Table, start: Any, dialect: str) -> Select[Any]:
    """One row per failed attempt since `start`: its minute, outcome and message type."""
    h, t = history.c, table.c
    last_of_dead = and_(t.ToSend == literal_column("3"), t.Attempts == h.Attempt)
    outcome = case((last_of_dead, "dead"), else_="retried")
    return (
        select(
            minute_of(h.StartedAt, dialect).label("minute"),
            outcome.label("outcome"),
            func.coalesce(t.MessageType, "?").label("kind"),
            h.StartedAt.label("started"),
        )
        .select_from(history.outerjoin(table, t.ID == h.MessageID))
        .where(h.StartedAt >= start, failed(h.HttpStatus))
    )


def error_at(conn: Connection, history: Table, moment: datetime) -> str | None:
    """The error of the failed attempt that started at `moment` (the latest, if several)."""
    row = conn.execute(error_query(history, moment)).first()
    if row is None:
        return None
    return f"HTTP {row[0]}" if row[0] is not None else str(row[1])


def error_query(history: Table, moment: Any) -> Select[Any]:
    h = history.c
    return (
        select(h.HttpStatus, h.Error)
        .where(h.StartedAt == moment, failed(h.HttpStatus))
        .order_by(h.ID.desc())
        .limit(1)
    )


def failed(status: Any) -> ColumnElement[bool]:
    ok = status.between(literal_column("200"), literal_column("299"))
    return or_(status.is_(None), ~ok)


def minute_of(column: Any, dialect: str) -> Any:
    """The start of the minute of `column`, per dialect (no portable date_trunc)."""
    if dialect == "postgresql":
        return func.date_trunc(literal_column("'minute'"), column)
    if dialect == "mssql":
        zero: Any = literal_column("0")
        minute: Any = literal_column("minute")
        return func.dateadd(minute, func.datediff(minute, zero, column), zero)
    # SQLite keeps SQLAlchemy datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text: the first
    # 16 characters are the minute, far cheaper per row than strftime.
    return func.substr(column, literal_column("1"), literal_column("16"))


def _minute(value: Any) -> datetime:
    moment = datetime.fromisoformat(f"{value}:00") if isinstance(value, str) else value
    result = from_db(moment)
    assert result is not None
    return result
