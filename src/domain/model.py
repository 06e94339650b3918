from __future__ import annotations

import enum
from datetime import datetime, timedelta

import attrs

from domain import status
from domain.delivery import DeliveryResult, Verdict, classify
from domain.errors import IllegalTransition
from domain.idempotency import new_key
from domain.retry import Backoff


class State(enum.IntEnum):
    """The values of the `ToSend` column."""

    SENT = 0
    PENDING = 1
    IN_FLIGHT = 2
    DEAD = 3


_STATES = {state.value: state for state in State}


def _state(value: State | int) -> State:
    """`State(value)` without the enum's slower lookup when the value already is one (every
    transition builds a `Message`) or a plain valid int (every claimed row)."""
    if type(value) is State:
        return value
    try:
        return _STATES[value]
    except (KeyError, TypeError):
        return State(value)  # raises the enum's own ValueError for anything else


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


def _aware(
    instance: object, attribute: attrs.Attribute[datetime | None], value: datetime | None
) -> None:
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{attribute.name} must be timezone-aware")


@attrs.frozen(kw_only=True)
class Message:
    """One outbox row and where it stands in its delivery lifecycle."""

    id: int
    user_id: int | None
    body: str | None
    message_type: str = "default"
    state: State = attrs.field(converter=_state)
    attempts: int = attrs.field(default=0, validator=_non_negative)
    next_attempt_at: datetime | None = attrs.field(default=None, validator=_aware)
    lease_owner: str | None = None
    lease_until: datetime | None = attrs.field(default=None, validator=_aware)
    lease_token: str | None = None
    idempotency_key: str | None = None
    status: str | None = None
    sent_at: datetime | None = attrs.field(default=None, validator=_aware)

    def __attrs_post_init__(self) -> None:
        held = self.lease_token is not None and self.lease_until is not None
        if (self.state is State.IN_FLIGHT) != held:
            raise ValueError("a message is in flight exactly when it holds a lease")

    def is_due(self, now: datetime) -> bool:
        if self.state is State.PENDING:
            return self.next_attempt_at is None or self.next_attempt_at <= now
        if self.state is State.IN_FLIGHT:
            assert self.lease_until is not None
            return self.lease_until <= now
        return False

    def is_new_request(self) -> bool:
        """A pending row with no retry scheduled was (re)queued by upstream: it gets a new key."""
        return self.state is State.PENDING and (
            self.next_attempt_at is None or self.idempotency_key is None
        )

    def claim(self, *, owner: str, token: str, now: datetime, lease_until: datetime) -> Message:
        if not self.is_due(now):
            raise IllegalTransition(f"message {self.id} is not due ({self.state.name})")
        fresh = self.is_new_request()
        return attrs.evolve(
            self,
            state=State.IN_FLIGHT,
            attempts=(0 if fresh else self.attempts) + 1,
            idempotency_key=new_key(token, self.id) if fresh else self.idempotency_key,
            lease_owner=owner,
            lease_token=token,
            lease_until=lease_until,
        )

    def mark_sent(self, result: DeliveryResult, now: datetime) -> Message:
        self._require_in_flight("mark sent")
        if classify(result) is not Verdict.SENT:
            raise IllegalTransition(f"message {self.id}: {result.describe()} is not a success")
        line = status.sent(result, self.attempts, self._key())
        return self._finish(State.SENT, line, sent_at=now)

    def mark_failed(
        self, result: DeliveryResult, policy: Backoff, now: datetime, jitter: float
    ) -> Message:
        self._require_in_flight("mark failed")
        verdict = classify(result)
        if verdict is Verdict.SENT:
            raise IllegalTransition(f"message {self.id}: {result.describe()} is a success")
        if verdict is Verdict.DEAD or self.attempts >= policy.max_attempts:
            return self._finish(State.DEAD, status.dead(result, self.attempts, policy.max_attempts))
        delay = policy.delay(self.attempts, jitter, result.retry_after_seconds)
        when = now + timedelta(seconds=delay)
        line = status.retrying(result, self.attempts, policy.max_attempts, when)
        return self._release_lease(State.PENDING, line, next_attempt_at=when)

    def give_up(self, reason: str) -> Message:
        """Dead without a delivery result: e.g. too many lost leases (a poison message)."""
        self._require_in_flight("give up")
        return self._finish(State.DEAD, status.gave_up(reason))

    def reject(self, reason: str) -> Message:
        self._require_in_flight("reject")
        return self._finish(State.DEAD, status.invalid(reason))

    def release(self, now: datetime) -> Message:
        """Hand an unsent message back, due at once, as the same request (same key)."""
        self._require_in_flight("release")
        return self._release_lease(
            State.PENDING, self.status, next_attempt_at=now, attempts=max(self.attempts - 1, 0)
        )

    def defer(self, until: datetime, line: str | None = None) -> Message:
        """Hand an unsent message back, due at `until`, without spending an attempt: the claim's
        count is undone and the key kept (it is the same request). `line` replaces Status."""
        self._require_in_flight("defer")
        return self._release_lease(
            State.PENDING,
            self.status if line is None else status.bounded(line),
            next_attempt_at=until,
            attempts=max(self.attempts - 1, 0),
        )

    def requeue(self) -> Message:
        """A dead message goes out again as a new request: fresh key, attempts reset."""
        if self.state is not State.DEAD:
            raise IllegalTransition(f"message {self.id} is {self.state.name}, only DEAD requeues")
        return attrs.evolve(
            self,
            state=State.PENDING,
            attempts=0,
            next_attempt_at=None,
            idempotency_key=None,
            status=status.requeued(),
        )

    def _key(self) -> str:
        assert self.idempotency_key is not None
        return self.idempotency_key

    def _require_in_flight(self, action: str) -> None:
        if self.state is not State.IN_FLIGHT:
            raise IllegalTransition(f"cannot {action} message {self.id}: it is {self.state.name}")

    def _finish(self, state: State, line: str, **changes: object) -> Message:
        return self._release_lease(state, line, next_attempt_at=None, **changes)

    def _release_lease(self, state: State, line: str | None, **changes: object) -> Message:
        return attrs.evolve(
            self,
            state=state,
            status=line,
            lease_owner=None,
            lease_token=None,
            lease_until=None,
            **changes,  # type: ignore[arg-type]
        )
