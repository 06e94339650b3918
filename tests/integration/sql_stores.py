"""Builds migrated SQL stores for the contract suite and the integration tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, MetaData, Table, inspect, update

from adapters.sql.engine import make_engine
from adapters.sql.migrate import migrate, version_table
from adapters.sql.schema import history_name
from adapters.sql.store import SqlOutboxStore


def migrated_store(url: str, table: str = "Messages") -> SqlOutboxStore:
    engine = make_engine(url)
    migrate(engine, table)
    return SqlOutboxStore(engine, table)


def upstream_resend(store: Any, message_id: int) -> None:
    """What the upstream system does to have a row sent again: `ToSend = 1`, nothing else."""
    with store.engine.begin() as conn:
        conn.execute(update(store.table).where(store.table.c.ID == message_id).values(ToSend=1))


def drop_outbox_tables(engine: Engine, table: str) -> None:
    """Drop what `migrate` created for `table`: the table, its history and version tables."""
    names = (table, history_name(table), version_table(table))
    with engine.begin() as conn:
        present = [name for name in names if inspect(conn).has_table(name)]
        for name in present:
            Table(name, MetaData()).drop(conn)


def unique_table() -> str:
    """An OUTBOX_TABLE-style name no other test uses."""
    return f"Outbox_{uuid.uuid4().hex[:10]}"
