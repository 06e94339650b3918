"""Random interleavings of claims, lease expiry, fenced acks, re-sends and re-queues.

A hypothesis state machine over one store; the store contract runs it against every adapter.
The model tracks which rows are sent or dead, so choosing a rule reads nothing from the store.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import count
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from adapters.clock import ManualClock
from application.ports import NewMessage
from domain.delivery import DeliveryResult
from domain.model import Message, State
from domain.retry import RetryPolicy

if TYPE_CHECKING:
    from tests.contracts.store_contract import StoreUnderTest

S = TypeVar("S", bound="StoreUnderTest")
LEASE = timedelta(seconds=30)
POLICY = RetryPolicy(base_seconds=1.0, max_seconds=20.0, max_attempts=4)
OUTCOMES: dict[str, Callable[[Message, datetime], Message]] = {
    "sent": lambda m, now: m.mark_sent(DeliveryResult(status_code=200), now),
    "retry": lambda m, now: m.mark_failed(DeliveryResult(status_code=503), POLICY, now, 0.5),
    "dead": lambda m, now: m.mark_failed(DeliveryResult(status_code=400), POLICY, now, 0.5),
}


@attrs.frozen
class Claim:
    worker: int
    token: str
    messages: tuple[Message, ...]


@attrs.frozen
class Hooks(Generic[S]):
    """How the test reaches past the ports: upstream's `ToSend = 1`, and every row at once."""

    upstream_resend: Callable[[S, int], None]
    all_rows: Callable[[S], list[Message]]


class OutboxLifecycle(RuleBasedStateMachine, Generic[S]):
    def __init__(self, store: S, hooks: Hooks[S]) -> None:
        super().__init__()
        self.store = store
        self.hooks = hooks
        self.clock = ManualClock()
        self.tokens = count(1)
        self.outstanding: list[Claim] = []
        self.holder: dict[int, str] = {}
        self.current_key: dict[int, str] = {}
        self.past_keys: dict[int, set[str]] = {}
        self.attempts: dict[int, int] = {}
        self.new_requests: set[int] = set()
        self.finished: dict[int, State] = {}

    def finished_in(self, state: State) -> list[int]:
        return sorted(i for i, s in self.finished.items() if s is state)

    @rule(user_id=st.integers(min_value=1, max_value=3), n=st.integers(min_value=1, max_value=3))
    def enqueue(self, user_id: int, n: int) -> None:
        ids = self.store.enqueue([NewMessage(user_id=user_id, body="hi") for _ in range(n)])
        self.new_requests.update(ids)

    @rule(worker=st.integers(min_value=0, max_value=2), limit=st.integers(min_value=1, max_value=4))
    def claim(self, worker: int, limit: int) -> None:
        token, now = f"t{next(self.tokens)}", self.clock.now()
        claimed = self.store.claim(
            owner=f"w{worker}", token=token, limit=limit, now=now, lease_until=now + LEASE
        )
        for message in claimed:
            self.check_key_and_attempts(message)
            self.holder[message.id] = token
        self.outstanding.append(Claim(worker, token, tuple(claimed)))

    def check_key_and_attempts(self, message: Message) -> None:
        key = message.idempotency_key
        assert key is not None
        if message.id in self.new_requests:
            assert key not in self.past_keys.setdefault(message.id, set())
            assert message.attempts == 1
            self.new_requests.discard(message.id)
        else:
            assert key == self.current_key[message.id]
            assert message.attempts == self.attempts[message.id] + 1
        self.current_key[message.id] = key
        self.past_keys[message.id].add(key)
        self.attempts[message.id] = message.attempts

    @rule(seconds=st.sampled_from([1.0, 10.0, LEASE.total_seconds(), 100.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.outstanding)
    @rule(pick=st.integers(min_value=0, max_value=50), outcome=st.sampled_from(sorted(OUTCOMES)))
    def ack(self, pick: int, outcome: str) -> None:
        claim = self.outstanding.pop(pick % len(self.outstanding))
        before = {m.id: self.store.get(m.id) for m in claim.messages}
        stale = {m.id for m in claim.messages if self.holder.get(m.id) != claim.token}
        settled = [OUTCOMES[outcome](m, self.clock.now()) for m in claim.messages]

        result = self.store.ack(claim.token, settled, [])

        assert set(result.refused_ids) == stale
        for message in settled:
            if message.id in stale:
                assert self.store.get(message.id) == before[message.id]
            else:
                assert self.store.get(message.id) == message
                del self.holder[message.id]
                if message.state in (State.SENT, State.DEAD):
                    self.finished[message.id] = message.state

    @precondition(lambda self: self.finished_in(State.SENT))
    @rule(pick=st.integers(min_value=0, max_value=50))
    def upstream_sends_again(self, pick: int) -> None:
        sent = self.finished_in(State.SENT)
        message_id = sent[pick % len(sent)]

        self.hooks.upstream_resend(self.store, message_id)

        del self.finished[message_id]
        self.new_requests.add(message_id)

    @precondition(lambda self: self.finished_in(State.DEAD))
    @rule()
    def requeue_dead(self) -> None:
        dead = self.finished_in(State.DEAD)

        requeued = self.store.requeue_dead(None)

        assert requeued == len(dead)
        for message_id in dead:
            del self.finished[message_id]
        self.new_requests.update(dead)

    @invariant()
    def the_rows_keep_the_lifecycle_rules(self) -> None:
        rows = self.hooks.all_rows(self.store)
        every_state_is_a_tosend_value(rows)
        in_flight_exactly_when_the_lease_fields_are_set(rows)
        self.a_row_in_flight_is_held_by_the_last_token_that_claimed_it(rows)
        self.finished_rows_are_the_ones_the_model_finished(rows)
        self.no_row_is_held_under_two_live_leases()

    def a_row_in_flight_is_held_by_the_last_token_that_claimed_it(
        self, rows: list[Message]
    ) -> None:
        for m in rows:
            if m.state is State.IN_FLIGHT:
                assert m.lease_token == self.holder[m.id]

    def finished_rows_are_the_ones_the_model_finished(self, rows: list[Message]) -> None:
        finished = {m.id: m.state for m in rows if m.state in (State.SENT, State.DEAD)}
        assert finished == self.finished
        assert not set(finished) & set(self.holder)

    def no_row_is_held_under_two_live_leases(self) -> None:
        now = self.clock.now()
        live = [
            m.id
            for c in self.outstanding
            for m in c.messages
            if m.lease_until is not None and m.lease_until > now
        ]
        assert len(live) == len(set(live))


def every_state_is_a_tosend_value(rows: list[Message]) -> None:
    assert all(int(m.state) in (0, 1, 2, 3) for m in rows)


def in_flight_exactly_when_the_lease_fields_are_set(rows: list[Message]) -> None:
    for m in rows:
        lease = (m.lease_owner, m.lease_token, m.lease_until)
        if m.state is State.IN_FLIGHT:
            assert None not in lease
        else:
            assert lease == (None, None, None)
