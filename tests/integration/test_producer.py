"""The write side of the outbox: `enqueue` inside the caller's own transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import Engine, String, Table, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from adapters.sql.producer import enqueue
from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from domain.model import State
from tests.integration.sql_stores import migrated_store

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class Order(Base):
    """A business table of the producer's own, next to the outbox."""

    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    item: Mapped[str] = mapped_column(String(50))


ORDERS = cast(Table, Order.__table__)


class Boom(Exception):
    pass


@pytest.fixture
def store(sql_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(sql_url)
    Base.metadata.create_all(store.engine)
    yield store
    store.close()


def placed(n: int) -> list[NewMessage]:
    return [NewMessage(user_id=7, body=f"order {i} placed") for i in range(n)]


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def claim_all(store: SqlOutboxStore) -> list[str | None]:
    claimed = store.claim(
        owner="w", token="t", limit=100, now=NOW, lease_until=NOW + timedelta(minutes=1)
    )
    return [m.body for m in claimed]


def test_a_rolled_back_transaction_leaves_neither_the_change_nor_the_message(
    store: SqlOutboxStore,
) -> None:
    orders = ORDERS

    with pytest.raises(Boom), store.engine.begin() as conn:
        conn.execute(orders.insert(), {"item": "book"})
        enqueue(conn, placed(2))
        raise Boom

    assert count(store.engine, store.table) == 0
    assert count(store.engine, orders) == 0


def test_a_committed_transaction_leaves_pending_rows_that_the_store_claims(
    store: SqlOutboxStore,
) -> None:
    with store.engine.begin() as conn:
        conn.execute(ORDERS.insert(), {"item": "book"})
        ids = enqueue(conn, placed(3))

    claimed = claim_all(store)

    assert claimed == ["order 0 placed", "order 1 placed", "order 2 placed"]
    assert ids == sorted(ids) and len(set(ids)) == 3


@pytest.mark.covered_on_mssql
def test_the_new_rows_are_pending_and_of_the_default_type(store: SqlOutboxStore) -> None:
    with store.engine.begin() as conn:
        [message_id] = enqueue(conn, placed(1))

    row = store.get(message_id)

    assert row is not None and row.state is State.PENDING and row.message_type == "default"
    assert row.attempts == 0 and row.idempotency_key is None


@pytest.mark.covered_on_mssql
def test_enqueue_does_not_commit_on_its_own(store: SqlOutboxStore) -> None:
    conn = store.engine.connect()
    transaction = conn.begin()
    enqueue(conn, placed(1))

    transaction.rollback()
    conn.close()

    assert count(store.engine, store.table) == 0


def test_an_orm_session_commits_the_order_and_its_message_together(store: SqlOutboxStore) -> None:
    with Session(store.engine) as session:
        session.add(Order(item="lamp"))
        session.flush()
        enqueue(session.connection(), placed(1))
        session.commit()

    assert claim_all(store) == ["order 0 placed"]
    assert count(store.engine, ORDERS) == 1


@pytest.mark.covered_on_mssql
def test_an_orm_session_rolled_back_leaves_no_message(store: SqlOutboxStore) -> None:
    with Session(store.engine) as session:
        session.add(Order(item="lamp"))
        session.flush()
        enqueue(session.connection(), placed(1))
        session.rollback()

    assert count(store.engine, store.table) == 0
    assert count(store.engine, ORDERS) == 0


@pytest.mark.covered_on_mssql
def test_a_custom_outbox_table_takes_the_messages(sql_url: str) -> None:
    jobs = migrated_store(sql_url, "Jobs")

    with jobs.engine.begin() as conn:
        enqueue(conn, placed(2), table="Jobs")

    assert claim_all(jobs) == ["order 0 placed", "order 1 placed"]
    jobs.close()
