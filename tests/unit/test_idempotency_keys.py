from datetime import timedelta

import attrs

from adapters.in_memory import InMemoryOutboxStore, ManualClock
from application.ports import NewMessage
from domain.delivery import DeliveryResult
from domain.model import Message, State
from domain.retry import RetryPolicy

POLICY = RetryPolicy(base_seconds=1.0, max_seconds=10.0, max_attempts=5)
LEASE = timedelta(seconds=30)
OK = DeliveryResult(status_code=200)
UNAVAILABLE = DeliveryResult(status_code=503)


def claim(store: InMemoryOutboxStore, clock: ManualClock, token: str) -> list[Message]:
    now = clock.now()
    return store.claim(owner="w", token=token, limit=10, now=now, lease_until=now + LEASE)


def ack(store: InMemoryOutboxStore, token: str, *messages: Message) -> None:
    store.ack(token, messages, [])


def store_with_one_row() -> tuple[InMemoryOutboxStore, ManualClock, int]:
    store, clock = InMemoryOutboxStore(), ManualClock()
    [message_id] = store.enqueue([NewMessage(user_id=1, body="hi")])
    return store, clock, message_id


def send_once(store: InMemoryOutboxStore, clock: ManualClock, token: str) -> Message:
    [claimed] = claim(store, clock, token)
    ack(store, token, claimed.mark_sent(OK, clock.now()))
    return claimed


def test_every_retry_of_one_request_carries_the_same_key() -> None:
    store, clock, _ = store_with_one_row()
    [first] = claim(store, clock, "t1")
    ack(store, "t1", first.mark_failed(UNAVAILABLE, POLICY, clock.now(), 0.0))
    clock.advance(60)

    [second] = claim(store, clock, "t2")

    assert second.idempotency_key == first.idempotency_key


def test_a_claim_after_a_lost_lease_carries_the_same_key() -> None:
    store, clock, _ = store_with_one_row()
    [first] = claim(store, clock, "t1")
    clock.advance(LEASE.total_seconds())

    [second] = claim(store, clock, "t2")

    assert second.idempotency_key == first.idempotency_key


def upstream_sets_pending_again(store: InMemoryOutboxStore, message_id: int) -> None:
    row = store.get(message_id)
    assert row is not None
    store.insert(attrs.evolve(row, state=State.PENDING, next_attempt_at=None))


def test_upstream_sending_a_sent_row_again_is_a_new_request_with_a_new_key() -> None:
    store, clock, message_id = store_with_one_row()
    first = send_once(store, clock, "t1")
    upstream_sets_pending_again(store, message_id)

    [second] = claim(store, clock, "t2")

    assert second.idempotency_key != first.idempotency_key


def test_upstream_sending_a_sent_row_again_starts_again_at_attempt_one() -> None:
    store, clock, message_id = store_with_one_row()
    send_once(store, clock, "t1")
    upstream_sets_pending_again(store, message_id)

    [second] = claim(store, clock, "t2")

    assert second.attempts == 1


def test_a_requeued_dead_row_is_a_new_request_with_a_new_key() -> None:
    store, clock, _ = store_with_one_row()
    [first] = claim(store, clock, "t1")
    ack(store, "t1", first.reject("bad"))
    store.requeue_dead(None)

    [second] = claim(store, clock, "t2")

    assert second.idempotency_key != first.idempotency_key


def test_different_rows_never_share_a_key_within_one_claim() -> None:
    store, clock = InMemoryOutboxStore(), ManualClock()
    store.enqueue([NewMessage(user_id=1, body="same") for _ in range(50)])

    claimed = claim(store, clock, "t1")

    assert len({m.idempotency_key for m in claimed}) == len(claimed) == 10


def test_two_claims_of_new_requests_never_share_a_key() -> None:
    store, clock = InMemoryOutboxStore(), ManualClock()
    store.enqueue([NewMessage(user_id=1, body="x") for _ in range(20)])

    keys = [m.idempotency_key for m in claim(store, clock, "t1") + claim(store, clock, "t2")]

    assert len(set(keys)) == 20
