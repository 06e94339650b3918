"""Per-target health rows: one per target, the last report of any worker wins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from adapters.sql.mapping import from_db, to_db
from domain.breaker import BreakerState, TargetHealth
from domain.status import bounded


def write(conn: Connection, table: Table, health: TargetHealth) -> None:
    """Update the target's row, or insert it; a concurrent insert of the same target wins."""
    values = {
        "State": health.state.value,
        "Since": to_db(health.since),
        "LastError": None if health.last_error is None else bounded(health.last_error),
        "UpdatedAt": to_db(health.updated_at),
        "ReportedBy": health.reported_by,
    }
    changed = conn.execute(update(table).where(table.c.Target == health.target).values(values))
    if changed.rowcount:
        return
    try:
        with conn.begin_nested():
            conn.execute(table.insert().values(Target=health.target, **values))
    except IntegrityError:
        conn.execute(update(table).where(table.c.Target == health.target).values(values))


def read(conn: Connection, table: Table) -> list[TargetHealth]:
    rows = conn.execute(select(table).order_by(table.c.Target)).mappings()
    return [_to_health(row) for row in rows]


def _to_health(row: Mapping[Any, Any]) -> TargetHealth:
    return TargetHealth(
        target=row["Target"],
        state=BreakerState(row["State"]),
        since=from_db(row["Since"]),
        last_error=row["LastError"],
        updated_at=from_db(row["UpdatedAt"]),
        reported_by=row["ReportedBy"],
    )
