from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from domain.delivery import DeliveryResult
from domain.errors import IllegalTransition
from domain.model import Message, State
from domain.retry import RetryPolicy

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = NOW + timedelta(seconds=30)
POLICY = RetryPolicy(base_seconds=1.0, max_seconds=60.0, max_attempts=3)
OK = DeliveryResult(status_code=200, latency_ms=12.0)
UNAVAILABLE = DeliveryResult(status_code=503)
BAD_REQUEST = DeliveryResult(status_code=400)


def pending(**changes: object) -> Message:
    message = Message(id=7, user_id=42, body="hello", state=State.PENDING)
    return attrs.evolve(message, **changes)  # type: ignore[arg-type]


def in_flight(**changes: object) -> Message:
    claimed = pending().claim(owner="w1", token="t1", now=NOW, lease_until=LEASE)
    return attrs.evolve(claimed, **changes)  # type: ignore[arg-type]


def test_claiming_a_pending_message_puts_it_in_flight_under_the_lease() -> None:
    message = pending()

    claimed = message.claim(owner="w1", token="t1", now=NOW, lease_until=LEASE)

    assert (claimed.state, claimed.lease_owner, claimed.lease_token, claimed.lease_until) == (
        State.IN_FLIGHT,
        "w1",
        "t1",
        LEASE,
    )


def test_claiming_a_new_request_counts_attempt_one_and_gives_it_a_key() -> None:
    message = pending(attempts=5)

    claimed = message.claim(owner="w1", token="t1", now=NOW, lease_until=LEASE)

    assert (claimed.attempts, claimed.idempotency_key) == (1, "msg_t1_7")


def test_claiming_a_due_retry_keeps_its_key_and_counts_the_attempt() -> None:
    message = pending(attempts=1, idempotency_key="msg_old_7", next_attempt_at=NOW)

    claimed = message.claim(owner="w2", token="t2", now=NOW, lease_until=LEASE)

    assert (claimed.attempts, claimed.idempotency_key) == (2, "msg_old_7")


def test_claiming_a_retry_that_is_not_yet_due_is_illegal() -> None:
    message = pending(
        attempts=1, idempotency_key="msg_old_7", next_attempt_at=NOW + timedelta(seconds=1)
    )

    with pytest.raises(IllegalTransition):
        message.claim(owner="w1", token="t1", now=NOW, lease_until=LEASE)


def test_claiming_a_message_under_a_live_lease_is_illegal() -> None:
    message = in_flight()

    with pytest.raises(IllegalTransition):
        message.claim(owner="w2", token="t2", now=LEASE - timedelta(seconds=1), lease_until=LEASE)


def test_claiming_an_expired_lease_keeps_the_key_and_counts_the_attempt() -> None:
    message = in_flight()
    later = LEASE + timedelta(seconds=1)

    claimed = message.claim(owner="w2", token="t2", now=later, lease_until=later)

    assert (claimed.lease_token, claimed.attempts, claimed.idempotency_key) == (
        "t2",
        2,
        "msg_t1_7",
    )


@pytest.mark.parametrize("state", [State.SENT, State.DEAD])
def test_claiming_a_finished_message_is_illegal(state: State) -> None:
    message = pending(state=state)

    with pytest.raises(IllegalTransition):
        message.claim(owner="w1", token="t1", now=NOW, lease_until=LEASE)


def test_mark_sent_records_the_time_and_releases_the_lease() -> None:
    message = in_flight()

    sent = message.mark_sent(OK, NOW)

    assert (sent.state, sent.sent_at, sent.lease_token, sent.lease_until, sent.lease_owner) == (
        State.SENT,
        NOW,
        None,
        None,
        None,
    )


def test_mark_sent_writes_a_sent_status_with_the_key() -> None:
    message = in_flight()

    sent = message.mark_sent(OK, NOW)

    assert sent.status == "sent: HTTP 200 in 12 ms, attempt 1, key msg_t1_7"


def test_mark_sent_with_a_failure_is_illegal() -> None:
    message = in_flight()

    with pytest.raises(IllegalTransition):
        message.mark_sent(UNAVAILABLE, NOW)


def test_a_retryable_failure_schedules_the_next_attempt() -> None:
    message = in_flight()

    failed = message.mark_failed(UNAVAILABLE, POLICY, NOW, 0.0)

    assert (failed.state, failed.next_attempt_at) == (
        State.PENDING,
        NOW + timedelta(seconds=0.5),
    )


def test_a_retryable_failure_releases_the_lease_and_keeps_the_key() -> None:
    message = in_flight()

    failed = message.mark_failed(UNAVAILABLE, POLICY, NOW, 0.0)

    assert (failed.lease_token, failed.lease_until, failed.idempotency_key) == (
        None,
        None,
        "msg_t1_7",
    )


def test_a_retryable_failure_at_max_attempts_is_dead() -> None:
    message = in_flight(attempts=POLICY.max_attempts)

    failed = message.mark_failed(UNAVAILABLE, POLICY, NOW, 0.0)

    assert (failed.state, failed.next_attempt_at) == (State.DEAD, None)
    assert failed.status is not None and failed.status.startswith("dead: HTTP 503")


def test_a_client_error_is_dead_at_once() -> None:
    message = in_flight()

    failed = message.mark_failed(BAD_REQUEST, POLICY, NOW, 0.0)

    assert failed.state is State.DEAD
    assert failed.status is not None and failed.status.startswith("dead: HTTP 400")


def test_mark_failed_with_a_success_is_illegal() -> None:
    message = in_flight()

    with pytest.raises(IllegalTransition):
        message.mark_failed(OK, POLICY, NOW, 0.0)


def test_reject_makes_the_message_dead_with_an_invalid_status() -> None:
    message = in_flight()

    rejected = message.reject("Message is empty")

    assert (rejected.state, rejected.status, rejected.lease_token) == (
        State.DEAD,
        "invalid: Message is empty",
        None,
    )


def test_give_up_makes_the_message_dead_with_the_reason() -> None:
    message = in_flight()

    given_up = message.give_up("too many lost leases")

    assert (given_up.state, given_up.status) == (State.DEAD, "dead: too many lost leases")


def test_release_keeps_the_key_and_gives_back_the_attempt() -> None:
    message = in_flight(attempts=2)

    released = message.release(NOW)

    assert (released.state, released.attempts, released.idempotency_key) == (
        State.PENDING,
        1,
        "msg_t1_7",
    )


def test_a_released_message_is_due_at_once_as_the_same_request() -> None:
    released = in_flight().release(NOW)

    claimed = released.claim(owner="w2", token="t2", now=NOW, lease_until=LEASE)

    assert (claimed.attempts, claimed.idempotency_key) == (1, "msg_t1_7")


def test_requeue_of_a_dead_message_is_a_fresh_request() -> None:
    dead = in_flight(attempts=3).mark_failed(BAD_REQUEST, POLICY, NOW, 0.0)

    requeued = dead.requeue()

    assert (
        requeued.state,
        requeued.attempts,
        requeued.next_attempt_at,
        requeued.idempotency_key,
        requeued.status,
    ) == (State.PENDING, 0, None, None, "requeued: by outbox retry")


def test_a_requeued_message_is_claimed_with_a_new_key() -> None:
    requeued = in_flight().reject("bad").requeue()

    claimed = requeued.claim(owner="w2", token="t2", now=NOW, lease_until=LEASE)

    assert (claimed.attempts, claimed.idempotency_key) == (1, "msg_t2_7")


@pytest.mark.parametrize("state", [State.PENDING, State.SENT])
def test_requeue_of_a_message_that_is_not_dead_is_illegal(state: State) -> None:
    message = pending(state=state)

    with pytest.raises(IllegalTransition):
        message.requeue()


def test_requeue_of_a_message_in_flight_is_illegal() -> None:
    message = in_flight()

    with pytest.raises(IllegalTransition):
        message.requeue()


@pytest.mark.parametrize(
    "transition",
    [
        lambda m: m.mark_sent(OK, NOW),
        lambda m: m.mark_failed(UNAVAILABLE, POLICY, NOW, 0.0),
        lambda m: m.reject("bad"),
        lambda m: m.give_up("lost"),
        lambda m: m.release(NOW),
    ],
    ids=["mark_sent", "mark_failed", "reject", "give_up", "release"],
)
@pytest.mark.parametrize("state", [State.PENDING, State.SENT, State.DEAD])
def test_outcomes_need_the_message_in_flight(
    transition: Callable[[Message], Message], state: State
) -> None:
    message = pending(state=state)

    with pytest.raises(IllegalTransition):
        transition(message)


def test_a_message_in_flight_without_a_lease_is_refused() -> None:
    with pytest.raises(ValueError, match="lease"):
        Message(id=1, user_id=1, body="x", state=State.IN_FLIGHT)


@pytest.mark.parametrize("state", [State.PENDING, State.SENT, State.DEAD])
def test_a_message_holding_a_lease_outside_flight_is_refused(state: State) -> None:
    with pytest.raises(ValueError, match="lease"):
        Message(id=1, user_id=1, body="x", state=state, lease_token="t1", lease_until=LEASE)


@pytest.mark.parametrize("field", ["next_attempt_at", "lease_until", "sent_at"])
def test_a_naive_datetime_is_refused(field: str) -> None:
    message = in_flight()

    with pytest.raises(ValueError, match="timezone-aware"):
        attrs.evolve(message, **{field: datetime(2026, 1, 1)})  # type: ignore[arg-type]


def test_negative_attempts_are_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        pending(attempts=-1)


def test_the_state_is_stored_as_the_tosend_number() -> None:
    message = Message(id=1, user_id=1, body="x", state=3)

    assert message.state is State.DEAD and int(message.state) == 3
