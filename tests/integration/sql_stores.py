"""Builds migrated SQL stores for the contract suite and the integration tests."""

from __future__ import annotations

import uuid
from typing import ClassVar

from hypothesis import settings
from sqlalchemy import Engine, MetaData, Table, delete, inspect, select, update

from adapters.sql.engine import make_engine
from adapters.sql.mapping import to_message
from adapters.sql.migrate import migrate, version_table
from adapters.sql.schema import history_name
from adapters.sql.store import SqlOutboxStore
from domain.model import Message
from tests.contracts.store_contract import OutboxStoreContract, lifecycle_settings


def migrated_store(url: str, table: str = "Messages") -> SqlOutboxStore:
    engine = make_engine(url)
    migrate(engine, table)
    return SqlOutboxStore(engine, table)


class SqlStoreContract(OutboxStoreContract[SqlOutboxStore]):
    """The store contract's hooks for a SQL store; each database's module adds the fixture."""

    # Each step is a few round trips: fewer, shorter runs keep a database's run to seconds.
    lifecycle: ClassVar[settings] = lifecycle_settings(examples=15, steps=25)

    def upstream_resend(self, store: SqlOutboxStore, message_id: int) -> None:
        t = store.table
        with store.engine.begin() as conn:
            conn.execute(update(t).where(t.c.ID == message_id).values(ToSend=1))

    def emptied(self, store: SqlOutboxStore) -> SqlOutboxStore:
        with store.engine.begin() as conn:
            conn.execute(delete(store.history))
            conn.execute(delete(store.table))
        return store

    def all_rows(self, store: SqlOutboxStore) -> list[Message]:
        query = select(store.table).order_by(store.table.c.ID)
        with store.engine.connect() as conn:
            return [to_message(row) for row in conn.execute(query).mappings()]


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
