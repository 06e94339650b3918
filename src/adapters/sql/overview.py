"""Read-only queries behind `outbox status`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Table, and_, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from adapters.sql.mapping import from_db, to_db, to_message
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
    t = table.c
    since = func.coalesce(t.NextAttemptAt, t.CreatedAt)
    # The literal IN (1, 2) lets the planner use the partial index over unfinished rows.
    unfinished = t.ToSend.in_([literal_column("1"), literal_column("2")])
    query = select(func.min(since)).where(unfinished, due_condition(table, now))
    oldest = from_db(conn.execute(query).scalar())
    return (now - oldest).total_seconds() if oldest is not None else None


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
