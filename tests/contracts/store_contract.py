"""The outbox store contract: every adapter's test module subclasses this and builds a store.

A behaviour found missing in one adapter becomes a case here, for all of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar, Generic, Protocol, TypeVar

import attrs
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from application.ports import AckResult, Attempt, NewMessage, OutboxAdmin, OutboxStore
from domain.breaker import BreakerState, TargetHealth
from domain.delivery import DeliveryResult
from domain.model import Message, State
from domain.retry import RetryPolicy
from tests.contracts.lifecycle import Hooks, OutboxLifecycle

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
OK = DeliveryResult(status_code=200, latency_ms=3)
UNAVAILABLE = DeliveryResult(status_code=503, latency_ms=3)
POLICY = RetryPolicy(base_seconds=10, max_seconds=60, max_attempts=3)


class StoreUnderTest(OutboxStore, OutboxAdmin, Protocol):
    """Both store ports, as every store adapter implements them."""


S = TypeVar("S", bound=StoreUnderTest)


def lifecycle_settings(examples: int, steps: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


class OutboxStoreContract(Generic[S]):
    """Subclasses provide the `store` fixture and the hooks below, which reach past the ports."""

    lifecycle: ClassVar[settings] = lifecycle_settings(examples=60, steps=40)

    def upstream_resend(self, store: S, message_id: int) -> None:
        """What upstream does to have a row sent again: `ToSend = 1`, nothing else."""
        raise NotImplementedError

    def emptied(self, store: S) -> S:
        """A store with no rows, for the next state-machine example."""
        raise NotImplementedError

    def all_rows(self, store: S) -> list[Message]:
        """Every row, in `ID` order."""
        raise NotImplementedError

    # --- helpers -----------------------------------------------------------

    def enqueue(self, store: S, count: int, user_id: int = 1, body: str = "hi") -> list[int]:
        return list(
            store.enqueue([NewMessage(user_id=user_id, body=f"{body} {i}") for i in range(count)])
        )

    def claim(
        self, store: S, token: str, limit: int = 10, at: datetime = T0, per_user: bool = False
    ) -> list[Message]:
        return list(
            store.claim(
                owner=f"w-{token}",
                token=token,
                limit=limit,
                now=at,
                lease_until=at + LEASE,
                per_user=per_user,
            )
        )

    def row(self, store: S, message_id: int) -> Message:
        found = store.get(message_id)
        assert found is not None, f"row {message_id} is gone"
        return found

    def retry_time(self, message: Message) -> datetime:
        assert message.next_attempt_at is not None, f"row {message.id} has no retry time"
        return message.next_attempt_at

    def attempt(self, message: Message, result: DeliveryResult = OK, at: datetime = T0) -> Attempt:
        assert message.idempotency_key is not None
        return Attempt(
            message_id=message.id,
            attempt=message.attempts,
            idempotency_key=message.idempotency_key,
            started_at=at,
            result=result,
        )

    def send_ok(
        self, store: S, token: str, messages: list[Message], at: datetime = T0
    ) -> AckResult:
        sent = [m.mark_sent(OK, at) for m in messages]
        return store.ack(token, sent, [self.attempt(m, at=at) for m in messages])

    # --- claim -------------------------------------------------------------

    def test_a_claim_leases_due_rows_in_id_order_up_to_the_limit(self, store: S) -> None:
        ids = self.enqueue(store, 5)

        claimed = self.claim(store, "a", limit=3)

        assert [m.id for m in claimed] == ids[:3]
        assert all(m.state is State.IN_FLIGHT and m.lease_token == "a" for m in claimed)
        assert all(m.lease_until == T0 + LEASE and m.lease_owner == "w-a" for m in claimed)
        assert all(m.attempts == 1 for m in claimed)

    def test_a_claim_gives_each_new_request_its_own_idempotency_key(self, store: S) -> None:
        self.enqueue(store, 3)

        claimed = self.claim(store, "a")

        keys = [m.idempotency_key for m in claimed]
        assert all(k and k.startswith("msg_a_") for k in keys)
        assert len(set(keys)) == 3

    def test_two_claims_of_new_requests_never_share_a_key(self, store: S) -> None:
        self.enqueue(store, 20)

        keys = [m.idempotency_key for m in self.claim(store, "a") + self.claim(store, "b")]

        assert len(set(keys)) == 20

    def test_every_retry_of_one_request_carries_the_same_key(self, store: S) -> None:
        self.enqueue(store, 1)
        [first] = self.claim(store, "a")
        failed = first.mark_failed(UNAVAILABLE, POLICY, T0, jitter=0.0)
        store.ack("a", [failed], [])
        [second] = self.claim(store, "b", at=self.retry_time(failed))
        retried = second.mark_failed(UNAVAILABLE, POLICY, T0, jitter=0.0)
        store.ack("b", [retried], [])

        [third] = self.claim(store, "c", at=self.retry_time(retried) + LEASE)

        assert first.idempotency_key == second.idempotency_key == third.idempotency_key
        assert third.attempts == 3

    def test_no_two_claims_get_the_same_row_while_its_lease_holds(self, store: S) -> None:
        self.enqueue(store, 4)

        first = self.claim(store, "a", limit=2)
        second = self.claim(store, "b", limit=10, at=T0 + LEASE - timedelta(seconds=1))

        assert {m.id for m in first}.isdisjoint(m.id for m in second)
        assert len(second) == 2

    def test_an_expired_lease_makes_a_row_claimable_again_as_the_same_request(
        self, store: S
    ) -> None:
        self.enqueue(store, 1)
        [first] = self.claim(store, "a")

        [again] = self.claim(store, "b", at=T0 + LEASE)

        assert again.id == first.id and again.lease_token == "b"
        assert again.idempotency_key == first.idempotency_key
        assert again.attempts == 2

    def test_a_row_waiting_for_its_retry_time_is_not_claimed_before_it(self, store: S) -> None:
        self.enqueue(store, 1)
        [message] = self.claim(store, "a")
        failed = message.mark_failed(UNAVAILABLE, POLICY, T0, jitter=0.0)
        store.ack("a", [failed], [self.attempt(message, UNAVAILABLE)])

        early = self.claim(store, "b", at=self.retry_time(failed) - timedelta(seconds=1))
        due = self.claim(store, "c", at=self.retry_time(failed))

        assert early == []
        assert [m.idempotency_key for m in due] == [message.idempotency_key]
        assert due[0].attempts == 2

    def test_sent_and_dead_rows_are_never_claimed(self, store: S) -> None:
        self.enqueue(store, 2)
        first, second = self.claim(store, "a")
        store.ack("a", [first.mark_sent(OK, T0), second.reject("Message is empty")], [])

        assert self.claim(store, "b", at=T0 + 10 * LEASE) == []

    # --- ack ---------------------------------------------------------------

    def test_an_ack_writes_the_outcome_and_the_attempt_history(self, store: S) -> None:
        [message_id] = self.enqueue(store, 1)
        claimed = self.claim(store, "a")

        result = self.send_ok(store, "a", claimed)

        row = self.row(store, message_id)
        assert result.written == 1 and result.refused_ids == ()
        assert row.state is State.SENT and (row.status or "").startswith("sent: HTTP 200")
        assert row.lease_token is None and row.sent_at == T0
        [attempt] = store.history_of(message_id)
        assert (
            attempt.result.status_code == 200
            and attempt.idempotency_key == claimed[0].idempotency_key
        )

    def test_a_lost_lease_cannot_overwrite_the_new_claim(self, store: S) -> None:
        [message_id] = self.enqueue(store, 1)
        stale = self.claim(store, "a")
        fresh = self.claim(store, "b", at=T0 + LEASE)

        result = self.send_ok(store, "a", stale)

        assert result.written == 0 and result.refused_ids == (message_id,)
        row = self.row(store, message_id)
        assert row.state is State.IN_FLIGHT and row.lease_token == "b"
        assert store.history_of(message_id) == []
        assert self.send_ok(store, "b", fresh).written == 1

    def test_a_partly_lost_batch_writes_history_only_for_rows_still_held(self, store: S) -> None:
        lost, kept = self.enqueue(store, 2)
        stale = self.claim(store, "a")
        [taken] = self.claim(store, "b", limit=1, at=T0 + LEASE)

        result = self.send_ok(store, "a", stale)

        assert taken.id == lost
        assert result.written == 1 and result.refused_ids == (lost,)
        assert store.history_of(lost) == []
        assert [a.idempotency_key for a in store.history_of(kept)] == [stale[1].idempotency_key]

    def test_an_ack_after_the_row_was_requeued_is_refused(self, store: S) -> None:
        [message_id] = self.enqueue(store, 1)
        [claimed] = self.claim(store, "a")
        store.ack("a", [claimed.reject("bad")], [])
        store.requeue_dead([message_id])

        result = store.ack("a", [claimed.mark_sent(OK, T0)], [])

        assert result.refused_ids == (message_id,)
        assert self.row(store, message_id).state is State.PENDING

    def test_an_ack_writes_the_held_rows_and_refuses_only_the_lost_ones(self, store: S) -> None:
        ids = self.enqueue(store, 3)
        claimed = self.claim(store, "a")
        self.claim(store, "b", limit=1, at=T0 + LEASE)  # takes over the first row only

        result = self.send_ok(store, "a", claimed)

        assert result.refused_ids == (ids[0],) and result.written == 2

    def test_renewing_a_lease_keeps_the_rows_from_other_claims(self, store: S) -> None:
        self.enqueue(store, 2)
        self.claim(store, "a")

        renewed = store.renew("a", T0 + 3 * LEASE)
        taken = self.claim(store, "b", at=T0 + 2 * LEASE)

        assert renewed == 2 and taken == []

    def test_a_released_row_is_claimable_at_once_as_the_same_request(self, store: S) -> None:
        self.enqueue(store, 1)
        [claimed] = self.claim(store, "a")
        store.ack("a", [claimed.release(T0)], [])

        [again] = self.claim(store, "b")

        assert again.idempotency_key == claimed.idempotency_key and again.attempts == 1

    # --- deferral (a target's breaker is open) -----------------------------

    def test_a_deferred_row_keeps_its_attempts_and_key_and_waits_until_the_given_time(
        self, store: S
    ) -> None:
        self.enqueue(store, 1)
        [first] = self.claim(store, "a")
        failed = first.mark_failed(UNAVAILABLE, POLICY, T0, jitter=0.0)
        store.ack("a", [failed], [self.attempt(first, UNAVAILABLE)])
        assert failed.next_attempt_at is not None
        [claimed] = self.claim(store, "b", at=failed.next_attempt_at)
        until = T0 + timedelta(minutes=5)

        result = store.defer("b", [claimed.id], until, "waiting: target down")
        early = self.claim(store, "c", at=until - timedelta(seconds=1))
        [again] = self.claim(store, "d", at=until)

        assert result.written == 1 and result.refused_ids == ()
        assert early == []
        assert again.attempts == claimed.attempts == 2
        assert again.idempotency_key == first.idempotency_key

    def test_a_deferred_row_reads_back_pending_with_its_attempts_before_the_claim(
        self, store: S
    ) -> None:
        [message_id] = self.enqueue(store, 1)
        self.claim(store, "a")
        until = T0 + timedelta(minutes=1)

        store.defer("a", [message_id], until, "waiting: target down")

        row = self.row(store, message_id)
        assert row.state is State.PENDING and row.attempts == 0
        assert row.next_attempt_at == until and row.status == "waiting: target down"
        assert row.lease_token is None and row.lease_owner is None

    def test_deferring_without_a_line_keeps_the_status(self, store: S) -> None:
        [message_id] = self.enqueue(store, 1)
        self.claim(store, "a")

        store.defer("a", [message_id], T0 + timedelta(seconds=5))

        assert self.row(store, message_id).status is None

    def test_a_deferral_under_a_lost_lease_is_refused(self, store: S) -> None:
        ids = self.enqueue(store, 2)
        self.claim(store, "a", limit=1)
        self.claim(store, "b", limit=1)

        result = store.defer("a", ids, T0 + timedelta(minutes=1))

        assert result.written == 1 and result.refused_ids == (ids[1],)
        assert self.row(store, ids[1]).state is State.IN_FLIGHT

    def test_resuming_makes_waiting_rows_of_the_given_types_due_now(self, store: S) -> None:
        [slow] = store.enqueue([NewMessage(user_id=1, body="s", message_type="slow")])
        [other] = store.enqueue([NewMessage(user_id=1, body="o", message_type="default")])
        self.claim(store, "a")
        store.defer("a", [slow, other], T0 + timedelta(hours=1))
        now = T0 + timedelta(seconds=10)

        resumed = store.resume(now, types=["slow"])
        claimed = self.claim(store, "b", at=now)

        assert resumed == 1
        assert [m.id for m in claimed] == [slow]

    def test_resuming_every_type_but_the_excluded_ones(self, store: S) -> None:
        [slow] = store.enqueue([NewMessage(user_id=1, body="s", message_type="slow")])
        [other] = store.enqueue([NewMessage(user_id=1, body="o", message_type="default")])
        self.claim(store, "a")
        store.defer("a", [slow, other], T0 + timedelta(hours=1))
        now = T0 + timedelta(seconds=10)

        resumed = store.resume(now, types=None, excluding=["slow"])
        claimed = self.claim(store, "b", at=now)

        assert resumed == 1
        assert [m.id for m in claimed] == [other]

    # --- target health -------------------------------------------------------

    def test_the_latest_report_of_a_target_is_what_everyone_reads(self, store: S) -> None:
        down = TargetHealth(
            target="https://a.example:443",
            state=BreakerState.OPEN,
            since=T0,
            last_error="HTTP 503 in 2 ms",
            updated_at=T0,
            reported_by="w-1",
        )
        other = attrs.evolve(down, target="http://b.example:80", state=BreakerState.CLOSED)
        store.report_target(down)
        store.report_target(other)
        later = T0 + timedelta(minutes=3)

        store.report_target(
            attrs.evolve(down, state=BreakerState.CLOSED, since=later, updated_at=later)
        )

        assert [(h.target, h.state, h.since) for h in store.target_health()] == [
            ("http://b.example:80", BreakerState.CLOSED, T0),
            ("https://a.example:443", BreakerState.CLOSED, later),
        ]
        assert store.target_health()[1].last_error == "HTTP 503 in 2 ms"

    def test_no_target_reported_reads_empty(self, store: S) -> None:
        assert store.target_health() == []

    def test_resuming_held_back_rows_only_leaves_rows_waiting_for_their_retry(
        self, store: S
    ) -> None:
        held, _ = self.enqueue(store, 2)
        _, second = self.claim(store, "a")
        failed = second.mark_failed(UNAVAILABLE, POLICY, T0, jitter=0.0)
        store.ack("a", [failed], [self.attempt(second, UNAVAILABLE)])
        store.defer("a", [held], T0 + timedelta(hours=1), "waiting: target paused")
        now = T0 + timedelta(seconds=1)

        resumed = store.resume(now, types=None, held_back_only=True)

        assert resumed == 1
        assert [m.id for m in self.claim(store, "b", at=now)] == [held]

    def test_resuming_never_brings_a_retry_before_the_retry_after_it_was_given(
        self, store: S
    ) -> None:
        self.enqueue(store, 1)
        [message] = self.claim(store, "a")
        throttled = DeliveryResult(status_code=429, latency_ms=2, retry_after_seconds=30)
        failed = message.mark_failed(throttled, POLICY, T0, jitter=0.0)
        store.ack("a", [failed], [self.attempt(message, throttled)])

        resumed = store.resume(T0 + timedelta(seconds=1), types=None)

        assert resumed == 0

    # --- re-sends and requeues --------------------------------------------

    def test_upstream_asking_for_a_sent_row_again_makes_a_new_request(self, store: S) -> None:
        [message_id] = self.enqueue(store, 1)
        first = self.claim(store, "a")
        self.send_ok(store, "a", first)

        self.upstream_resend(store, message_id)
        [again] = self.claim(store, "b")

        assert again.idempotency_key != first[0].idempotency_key and again.attempts == 1

    def test_requeueing_dead_rows_makes_new_requests(self, store: S) -> None:
        ids = self.enqueue(store, 2)
        claimed = self.claim(store, "a")
        store.ack("a", [m.reject("bad") for m in claimed], [])

        requeued = store.requeue_dead([ids[0]])
        [again] = self.claim(store, "b")

        assert requeued == 1 and again.id == ids[0]
        assert again.idempotency_key != claimed[0].idempotency_key and again.attempts == 1
        assert self.row(store, ids[1]).state is State.DEAD

    def test_a_requeued_row_says_so_in_its_status(self, store: S) -> None:
        [message_id] = self.enqueue(store, 1)
        [claimed] = self.claim(store, "a")
        store.ack("a", [claimed.reject("Message is empty")], [])

        store.requeue_dead([message_id])

        assert self.row(store, message_id).status == "requeued: by outbox retry"

    def test_requeueing_all_dead_rows(self, store: S) -> None:
        self.enqueue(store, 3)
        claimed = self.claim(store, "a")
        store.ack("a", [m.reject("bad") for m in claimed], [])

        assert store.requeue_dead(None) == 3 and store.unfinished() == 3

    # --- per-user ordering ------------------------------------------------

    def test_per_user_claims_take_one_row_per_user_in_id_order(self, store: S) -> None:
        a = self.enqueue(store, 3, user_id=1)
        b = self.enqueue(store, 2, user_id=2)

        claimed = self.claim(store, "x", per_user=True)

        assert sorted(m.id for m in claimed) == [a[0], b[0]]

    def test_per_user_a_row_in_flight_holds_back_its_users_later_rows(self, store: S) -> None:
        a = self.enqueue(store, 2, user_id=1)
        self.claim(store, "x", per_user=True)

        assert self.claim(store, "y", per_user=True, at=T0 + timedelta(seconds=1)) == []
        assert [m.id for m in self.claim(store, "z", per_user=True, at=T0 + LEASE)] == [a[0]]

    def test_per_user_a_row_waiting_for_retry_holds_back_its_users_later_rows(
        self, store: S
    ) -> None:
        a = self.enqueue(store, 2, user_id=1)
        b = self.enqueue(store, 1, user_id=2)
        first = self.claim(store, "x", per_user=True)
        held = next(m for m in first if m.id == a[0])
        store.ack("x", [held.mark_failed(UNAVAILABLE, POLICY, T0, 0.0)], [])
        store.ack("x", [m.mark_sent(OK, T0) for m in first if m.id != a[0]], [])

        later = self.claim(store, "y", per_user=True, at=T0 + timedelta(seconds=1))

        assert later == [] and self.row(store, b[0]).state is State.SENT

    def test_per_user_the_next_row_goes_once_the_previous_is_sent(self, store: S) -> None:
        a = self.enqueue(store, 2, user_id=1)
        first = self.claim(store, "x", per_user=True)
        self.send_ok(store, "x", first)

        second = self.claim(store, "y", per_user=True)

        assert [m.id for m in second] == [a[1]]

    # --- admin ---------------------------------------------------------------

    def test_enqueued_rows_are_pending_with_their_type_and_no_key(self, store: S) -> None:
        [message_id] = store.enqueue([NewMessage(user_id=9, body="x", message_type="json")])

        row = self.row(store, message_id)

        assert row.state is State.PENDING and row.user_id == 9 and row.body == "x"
        assert row.message_type == "json" and row.idempotency_key is None and row.attempts == 0

    def test_the_overview_counts_states_leases_and_recent_dead(self, store: S) -> None:
        self.enqueue(store, 4)
        claimed = self.claim(store, "a", limit=3)
        store.ack("a", [claimed[0].reject("Message is empty"), claimed[1].mark_sent(OK, T0)], [])

        overview = store.overview(T0 + timedelta(seconds=5))

        assert overview.counts == {0: 1, 1: 1, 2: 1, 3: 1}
        assert overview.leases == {"w-a": 1}
        assert [m.status for m in overview.recent_dead] == ["invalid: Message is empty"]

    def test_the_overview_counts_every_state_even_when_no_row_is_in_it(self, store: S) -> None:
        self.enqueue(store, 1)

        overview = store.overview(T0)

        assert overview.counts == {0: 0, 1: 1, 2: 0, 3: 0}
        assert overview.leases == {} and overview.recent_dead == ()

    def test_the_oldest_due_age_counts_from_the_retry_time_of_a_retried_row(self, store: S) -> None:
        self.enqueue(store, 1)
        [message] = self.claim(store, "a")
        failed = message.mark_failed(UNAVAILABLE, POLICY, T0, jitter=0.0)
        store.ack("a", [failed], [])

        waiting = store.oldest_due_age(self.retry_time(failed) + timedelta(seconds=7))

        assert store.oldest_due_age(self.retry_time(failed) - timedelta(seconds=1)) is None
        assert waiting == 7.0

    def test_the_oldest_due_age_of_a_fresh_row_counts_from_when_it_was_enqueued(
        self, store: S
    ) -> None:
        before = datetime.now(UTC)
        self.enqueue(store, 1)
        after = datetime.now(UTC)

        waiting = store.oldest_due_age(after + timedelta(seconds=7))

        assert waiting is not None
        assert 7.0 <= waiting <= 7.0 + (after - before).total_seconds()

    def test_due_and_unfinished_counts(self, store: S) -> None:
        self.enqueue(store, 3)
        self.claim(store, "a", limit=1)

        assert store.due(T0) == 2 and store.unfinished() == 3
        assert store.due(T0 + LEASE) == 3

    def test_at_the_boundaries_a_row_is_due_in_the_domain_exactly_when_the_store_claims_it(
        self, store: S
    ) -> None:
        at = T0 + timedelta(hours=1)
        retry_now, retry_later, expiring, sent, dead = self.enqueue(store, 5)
        held = self.claim(store, "a", at=T0)
        store.defer("a", [retry_now], until=at)
        store.defer("a", [retry_later], until=at + timedelta(seconds=1))
        by_id = {m.id: m for m in held}
        self.send_ok(store, "a", [by_id[sent]])
        store.ack("a", [by_id[dead].reject("bad")], [])
        [lease_ends_now] = self.claim(store, "b", at=at - LEASE)  # the lapsed `expiring`
        [leased_past_now] = self.enqueue(store, 1)
        [lease_ends_later] = self.claim(store, "c", at=at - LEASE + timedelta(seconds=1))
        [fresh] = self.enqueue(store, 1)

        in_domain = {m.id for m in self.all_rows(store) if m.is_due(at)}
        counted = store.due(at)
        claimed = {m.id for m in self.claim(store, "z", limit=100, at=at)}

        assert lease_ends_now.id == expiring and lease_ends_later.id == leased_past_now
        assert in_domain == {fresh, retry_now, expiring} == claimed
        assert counted == len(in_domain)

    def test_pruning_history_drops_only_older_attempts(self, store: S) -> None:
        [message_id] = self.enqueue(store, 1)
        [claimed] = self.claim(store, "a")
        failed = claimed.mark_failed(UNAVAILABLE, POLICY, T0, 0.0)
        store.ack("a", [failed], [self.attempt(claimed, UNAVAILABLE, at=T0)])
        later = self.retry_time(failed)
        [again] = self.claim(store, "b", at=later)
        store.ack("b", [again.mark_sent(OK, later)], [self.attempt(again, at=later)])

        pruned = store.prune_history(later)

        assert pruned == 1
        assert [a.attempt for a in store.history_of(message_id)] == [2]

    def test_an_empty_ack_writes_nothing(self, store: S) -> None:
        assert store.ack("a", [], []).written == 0

    # --- the lifecycle under random interleavings ------------------------

    def test_random_interleavings_keep_the_lifecycle_rules(self, store: S) -> None:
        contract = self

        class OnThisStore(OutboxLifecycle[S]):
            def __init__(self) -> None:
                hooks = Hooks(upstream_resend=contract.upstream_resend, all_rows=contract.all_rows)
                super().__init__(contract.emptied(store), hooks)

        run_state_machine_as_test(OnThisStore, settings=self.lifecycle)
