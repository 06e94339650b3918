"""Read-only queries behind `outbox status`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from adapters.sql.mapping import from_db, to_db, to_message
from adapters.sql.schema import due_at
from application.ports import Overview
from domain.model import State


def due_condition(table: Table, now: datetime) -> ColumnElement[bool]:
    t = table.c
    moment = to_db(now)
    return or_(
        and_(t.ToSend == 1, or_(t.NextAttemptAt.is_(None), t.NextAttemptAt <= moment)),
        and_(t.ToSend == 2, t.LeaseUntil <= moment),
    )


def oldest_due_age(conn: Connection, table: Table, now: datetime) -> float | None:
    """The first due row in `IX_<table>_DueAt`'s order: a short walk (past in-flight rows
    whose lease still runs), however many rows are pending. SQL Server's index holds the two
    columns, not their coalesce: there it is the earlier of two such walks."""
    t = table.c
    if conn.dialect.name == "mssql":
        firsts = [
            _first_due(conn, table, now, t.CreatedAt, t.NextAttemptAt.is_(None)),
            _first_due(conn, table, now, t.NextAttemptAt, t.NextAttemptAt.is_not(None)),
        ]
    else:
        firsts = [_first_due(conn, table, now, due_at(table))]
    oldest = min((moment for moment in firsts if moment is not None), default=None)
    return (now - oldest).total_seconds() if oldest is not None else None


def _first_due(
    conn: Connection, table: Table, now: datetime, since: Any, *where: ColumnElement[bool]
) -> datetime | None:
    return from_db(conn.execute(first_due_query(table, now, since, *where)).scalar())


def first_due_query(
    table: Table, now: datetime, since: Any, *where: ColumnElement[bool]
) -> Select[Any]:
    # The literal IN (1, 2) lets the planner use the partial index over unfinished rows.
    unfinished = table.c.ToSend.in_([literal_column("1"), literal_column("2")])
    return (
        select(since).where(unfinished, due_condition(table, now), *where).order_by(since).limit(1)
    )


def read_overview(conn: Connection, table: Table, now: datetime, dead_limit: int) -> Overview:
    t = table.c
    counts = {int(state): 0 for state in State} | {
        int(s): int(n) for s, n in conn.execute(select(t.ToSend, func.count()).group_by(t.ToSend))
    }
    leases = {
        str(owner): int(n)
        for owner, n in conn.execute(
            select(t.LeaseOwner, func.count()).where(t.ToSend == 2).group_by(t.LeaseOwner)
        )
    }
    # Fetched in full before the next query: FreeTDS has no MARS, one open result at a time.
    dead_rows = (
        conn.execute(select(table).where(t.ToSend == 3).order_by(t.ID.desc()).limit(dead_limit))
        .mappings()
        .all()
    )
    return Overview(
        counts=counts,
        oldest_pending_age_seconds=oldest_due_age(conn, table, now),
        leases=leases,
        recent_dead=tuple(to_message(row) for row in dead_rows),
    )
