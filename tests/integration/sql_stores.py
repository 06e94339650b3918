"""Builds migrated SQL stores for the contract suite and the integration tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from adapters.sql.engine import make_engine
from adapters.sql.migrate import migrate
from adapters.sql.store import SqlOutboxStore


def migrated_store(url: str, table: str = "Messages") -> SqlOutboxStore:
    engine = make_engine(url)
    migrate(engine, table)
    return SqlOutboxStore(engine, table)


def upstream_resend(store: Any, message_id: int) -> None:
    """What the upstream system does to have a row sent again: `ToSend = 1`, nothing else."""
    with store.engine.begin() as conn:
        conn.execute(update(store.table).where(store.table.c.ID == message_id).values(ToSend=1))
