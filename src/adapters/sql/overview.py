"""Read-only queries behind `outbox status`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Table, and_, func, or_, select
from sqlalchemy.engine import Connection

from adapters.sql.mapping import from_db, to_db, to_message
from application.ports import Overview


def due_condition(table: Table, now: datetime) -> ColumnElement[bool]:
    t = table.c
    moment = to_db(now)
    return or_(
        and_(t.ToSend == 1, or_(t.NextAttemptAt.is_(None), t.NextAttemptAt <= moment)),
        and_(t.ToSend == 2, t.LeaseUntil <= moment),
    )


def read_overview(conn: Connection, table: Table, now: datetime, dead_limit: int) -> Overview:
    t = table.c
    counts = {
        int(s): int(n) for s, n in conn.execute(select(t.ToSend, func.count()).group_by(t.ToSend))
    }
    since = func.coalesce(t.NextAttemptAt, t.CreatedAt)
    oldest = conn.execute(select(func.min(since)).where(due_condition(table, now))).scalar()
    leases = {
        str(owner): int(n)
        for owner, n in conn.execute(
            select(t.LeaseOwner, func.count()).where(t.ToSend == 2).group_by(t.LeaseOwner)
        )
    }
    dead_rows = conn.execute(
        select(table).where(t.ToSend == 3).order_by(t.ID.desc()).limit(dead_limit)
    ).mappings()
    oldest_at = from_db(oldest) if isinstance(oldest, datetime) else None
    return Overview(
        counts=counts,
        oldest_pending_age_seconds=(now - oldest_at).total_seconds() if oldest_at else None,
        leases=leases,
        recent_dead=tuple(to_message(row) for row in dead_rows),
    )
