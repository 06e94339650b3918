"""Crash recovery across two workers, each with its own engine on the same database.

The first worker claims and then "crashes" (never acks in time); the second takes the rows
over once the lease has run out; the first one's late outcome is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from adapters.sql.engine import make_engine
from adapters.sql.store import SqlOutboxStore
from application.ports import Attempt, NewMessage
from domain.delivery import DeliveryResult
from domain.model import Message, State
from tests.integration.sql_stores import migrated_store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
OK = DeliveryResult(status_code=200, latency_ms=5)
GONE = DeliveryResult(status_code=410, latency_ms=5)


@pytest.fixture
def workers(sql_url: str) -> Iterator[tuple[SqlOutboxStore, SqlOutboxStore]]:
    first = migrated_store(sql_url)
    second = SqlOutboxStore(make_engine(sql_url))
    yield first, second
    first.close()
    second.close()


def claim(store: SqlOutboxStore, token: str, at: datetime) -> list[Message]:
    return store.claim(owner=f"w-{token}", token=token, limit=10, now=at, lease_until=at + LEASE)


def attempts(messages: list[Message], at: datetime) -> list[Attempt]:
    return [
        Attempt(
            message_id=m.id,
            attempt=m.attempts,
            idempotency_key=m.idempotency_key or "",
            started_at=at,
            result=OK,
        )
        for m in messages
    ]


@pytest.mark.covered_on_mssql
def test_rows_of_a_crashed_worker_are_not_claimable_while_its_lease_holds(
    workers: tuple[SqlOutboxStore, SqlOutboxStore],
) -> None:
    crashed, survivor = workers
    crashed.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(3)])
    claim(crashed, "a", T0)

    early = claim(survivor, "b", T0 + LEASE - timedelta(seconds=1))

    assert early == []


def test_rows_of_a_crashed_worker_are_claimed_again_after_the_lease(
    workers: tuple[SqlOutboxStore, SqlOutboxStore],
) -> None:
    crashed, survivor = workers
    ids = crashed.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(3)])
    lost = claim(crashed, "a", T0)

    taken = claim(survivor, "b", T0 + LEASE)

    assert [m.id for m in taken] == ids
    assert all(m.lease_token == "b" and m.lease_owner == "w-b" for m in taken)
    assert [m.idempotency_key for m in taken] == [m.idempotency_key for m in lost]
    assert all(m.attempts == 2 for m in taken)


def test_the_crashed_workers_late_ack_is_refused_and_the_new_outcome_stays(
    workers: tuple[SqlOutboxStore, SqlOutboxStore],
) -> None:
    crashed, survivor = workers
    ids = crashed.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(2)])
    lost = claim(crashed, "a", T0)
    later = T0 + LEASE
    taken = claim(survivor, "b", later)
    survivor.ack("b", [m.mark_sent(OK, later) for m in taken], attempts(taken, later))

    late = crashed.ack("a", [m.give_up("dead: HTTP 410") for m in lost], attempts(lost, T0))

    assert late.written == 0 and late.refused_ids == tuple(ids)
    rows = [survivor.get(i) for i in ids]
    assert all(r is not None and r.state is State.SENT and r.sent_at == later for r in rows)
    assert all(r is not None and r.status and r.status.startswith("sent:") for r in rows)
    assert [len(survivor.history_of(i)) for i in ids] == [1, 1]


@pytest.mark.covered_on_mssql
def test_a_late_ack_while_the_new_claim_is_in_flight_leaves_it_in_flight(
    workers: tuple[SqlOutboxStore, SqlOutboxStore],
) -> None:
    crashed, survivor = workers
    [message_id] = crashed.enqueue([NewMessage(user_id=1, body="m")])
    [lost] = claim(crashed, "a", T0)
    claim(survivor, "b", T0 + LEASE)

    late = crashed.ack("a", [lost.mark_sent(OK, T0)], attempts([lost], T0))

    row = survivor.get(message_id)
    assert late.refused_ids == (message_id,)
    assert row is not None and row.state is State.IN_FLIGHT and row.lease_token == "b"
    assert survivor.history_of(message_id) == []


@pytest.mark.covered_on_mssql
def test_the_crashed_worker_can_no_longer_renew_the_lease_it_lost(
    workers: tuple[SqlOutboxStore, SqlOutboxStore],
) -> None:
    crashed, survivor = workers
    crashed.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(2)])
    claim(crashed, "a", T0)
    taken = claim(survivor, "b", T0 + LEASE)

    renewed = crashed.renew("a", T0 + 10 * LEASE)

    rows = [survivor.get(m.id) for m in taken]
    assert renewed == 0
    assert all(r is not None and r.lease_token == "b" for r in rows)
    assert all(r is not None and r.lease_until == T0 + 2 * LEASE for r in rows)
