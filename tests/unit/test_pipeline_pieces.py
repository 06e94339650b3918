"""Each piece of the pipeline on its own, over the in-memory store and a manual clock."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import pytest

from adapters.clock import ManualClock
from adapters.in_memory import InMemoryOutboxStore, RecordingMessageSender
from application.ack_buffer import AckBuffer, Health
from application.claimer import Claimer
from application.dispatcher import Claim, Dispatcher, DispatchSettings, Outcome, TargetUrls
from application.leases import LeaseKeeper
from application.message_type_registry import discover
from application.offload import inline
from application.ports import NewMessage
from application.senders import Senders
from domain.model import Message, State
from domain.retry import RetryPolicy
from tests.unit.loop import settings, settle, until

LEASE = 30.0


def dispatcher_over(store: InMemoryOutboxStore, clock: ManualClock) -> Dispatcher:
    return Dispatcher(
        store=store,
        sender=RecordingMessageSender(),
        clock=clock,
        types=discover(),
        targets=TargetUrls(default="https://example.test/hooks"),
        policy=RetryPolicy(),
        rng=random.Random(1),
        settings=DispatchSettings(owner="t", batch_size=10, lease_seconds=LEASE, concurrency=2),
    )


def acks_for(dispatcher: Dispatcher, flush_size: int = 100) -> AckBuffer:
    return AckBuffer(
        dispatcher,
        flush_size=flush_size,
        flush_seconds=0.0,
        failure_backoff_max=0.0,
        offload=inline,
        health=Health(),
    )


def claimed(count: int) -> tuple[InMemoryOutboxStore, ManualClock, Dispatcher, Claim]:
    store, clock = InMemoryOutboxStore(), ManualClock()
    store.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(count)])
    dispatcher = dispatcher_over(store, clock)
    return store, clock, dispatcher, dispatcher.claim(10)


def test_the_ack_buffer_forgets_a_claim_once_every_row_is_written() -> None:
    store, clock, dispatcher, claim = claimed(3)
    acks = acks_for(dispatcher)
    acks.track(claim, clock.now())
    first, second, third = claim.messages
    later = clock.now() + timedelta(minutes=1)

    acks.stage(claim.token, dispatcher.release(first))
    acks.stage(claim.token, dispatcher.release(second))
    asyncio.run(acks.flush())
    held_between = (acks.held(), acks.tracked_claims())
    acks.stage(claim.token, _deferred(third, later))
    asyncio.run(acks.flush())

    assert held_between == (1, {claim.token})
    assert (acks.held(), acks.tracked_claims()) == (0, set())
    assert (acks.summary.released, acks.summary.deferred) == (2, 1)
    assert store.get(third.id).next_attempt_at == later  # type: ignore[union-attr]


def test_the_ack_buffer_counts_outcomes_refused_for_a_lost_lease() -> None:
    store, clock, dispatcher, claim = claimed(2)
    acks = acks_for(dispatcher)
    acks.track(claim, clock.now())
    clock.advance(LEASE + 1)
    now = clock.now()
    store.claim(owner="other", token="other", limit=10, now=now, lease_until=now.replace(year=2027))

    for message in claim.messages:
        acks.stage(claim.token, dispatcher.release(message))
    asyncio.run(acks.flush())

    assert (acks.summary.refused, acks.summary.released, acks.tracked_claims()) == (2, 0, set())


def test_the_ack_buffer_flushes_at_once_when_it_holds_a_full_batch() -> None:
    _, clock, dispatcher, claim = claimed(2)
    acks = acks_for(dispatcher, flush_size=2)
    acks.track(claim, clock.now())
    closing = asyncio.Event()

    async def scenario() -> None:
        flusher = asyncio.create_task(acks.run(closing))
        for message in claim.messages:
            acks.stage(claim.token, dispatcher.release(message))
        await until(lambda: acks.held() == 0)
        closing.set()
        await flusher

    asyncio.run(scenario())

    assert acks.summary.released == 2 and acks.room.is_set()


def test_a_renewed_lease_keeps_the_claim_from_lapsing() -> None:
    _, clock, dispatcher, claim = claimed(1)
    acks = acks_for(dispatcher)
    acks.track(claim, clock.now())
    keeper = LeaseKeeper(dispatcher, acks, inline)
    clock.advance(LEASE - 1)

    asyncio.run(keeper.renew())
    clock.advance(2)

    assert not acks.lapsed(claim.token)


def test_a_claim_taken_over_is_not_renewed_and_lapses() -> None:
    store, clock, dispatcher, claim = claimed(1)
    acks = acks_for(dispatcher)
    acks.track(claim, clock.now())
    keeper = LeaseKeeper(dispatcher, acks, inline)
    clock.advance(LEASE + 1)
    now = clock.now()
    store.claim(owner="other", token="other", limit=10, now=now, lease_until=now.replace(year=2027))

    asyncio.run(keeper.renew())

    assert acks.lapsed(claim.token)


def renew_every_third_of_a_lease(keeper: LeaseKeeper, clock: ManualClock, seconds: float) -> None:
    for _ in range(int(seconds // (LEASE / 3))):
        clock.advance(LEASE / 3)
        asyncio.run(keeper.renew())


def test_rows_stuck_with_no_outcome_lapse_and_are_claimed_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A row lost inside the pipeline (a bug: here nothing routes it) must not be held for
    ever by renewals: after `stall_seconds` without a move the keeper says so once, stops
    renewing, and once the lease lapses stops counting the rows, which are due again."""
    store, clock, dispatcher, claim = claimed(2)
    acks = acks_for(dispatcher)
    acks.track(claim, clock.now())
    keeper = LeaseKeeper(dispatcher, acks, inline, stall_seconds=60)

    renew_every_third_of_a_lease(keeper, clock, 50)
    renewed_while_waiting = (keeper.stalled, acks.lapsed(claim.token))
    renew_every_third_of_a_lease(keeper, clock, 30)
    stalled_at_80 = (keeper.stalled, acks.held())
    renew_every_third_of_a_lease(keeper, clock, 30)
    now = clock.now()
    again = store.claim(owner="w2", token="t2", limit=10, now=now, lease_until=now + timedelta(1))

    assert renewed_while_waiting == (False, False)
    assert stalled_at_80 == (True, 2)
    assert (acks.held(), acks.lapsed(claim.token), len(again)) == (0, True, 2)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "2 row(s) held with no outcome for 60 s" in errors[0].message


def test_a_slow_pipeline_that_still_moves_is_not_stuck() -> None:
    _, clock, dispatcher, claim = claimed(10)
    acks = acks_for(dispatcher)
    acks.track(claim, clock.now())
    keeper = LeaseKeeper(dispatcher, acks, inline, stall_seconds=60)

    for message in claim.messages[:9]:  # one outcome every 20 s, for three minutes
        renew_every_third_of_a_lease(keeper, clock, 20)
        acks.stage(claim.token, dispatcher.release(message))
        asyncio.run(acks.flush())

    assert not keeper.stalled and not acks.lapsed(claim.token) and acks.held() == 1


def test_outcomes_waiting_for_the_database_are_not_stuck_rows() -> None:
    """The database away: every row has its outcome, waiting for the flush; nothing moves."""
    _, clock, dispatcher, claim = claimed(3)
    acks = acks_for(dispatcher)
    acks.track(claim, clock.now())
    keeper = LeaseKeeper(dispatcher, acks, inline, stall_seconds=60)
    for message in claim.messages:
        acks.stage(claim.token, dispatcher.release(message))

    renew_every_third_of_a_lease(keeper, clock, 180)

    assert not keeper.stalled and acks.held() == 3 and acks.unsettled() == 0


class GatedRoutes:
    """Stands in for the target gate: counts the routes under way, each held until released."""

    def __init__(self) -> None:
        self.open = 0
        self.most = 0
        self.gate = asyncio.Event()

    async def route(self, token: str, message: Message) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        await self.gate.wait()
        self.open -= 1


def test_the_senders_route_at_most_their_concurrency_at_once() -> None:
    _, _, dispatcher, claim = claimed(10)
    acks = acks_for(dispatcher)
    routes = GatedRoutes()
    senders = Senders(dispatcher, routes, acks, concurrency=3)  # type: ignore[arg-type]

    async def scenario() -> int:
        senders.submit(claim.token, claim.messages)
        await until(lambda: routes.open == 3)
        waiting = senders.waiting()
        routes.gate.set()
        await senders.join()
        return waiting

    waiting = asyncio.run(scenario())

    assert (waiting, routes.most, senders.waiting()) == (7, 3, 0)


class Routes:
    """Stands in for the target gate: records each row routed, at once."""

    def __init__(self) -> None:
        self.routed: list[int] = []

    async def route(self, token: str, message: Message) -> None:
        self.routed.append(message.id)


def test_rows_submitted_as_the_last_sender_finishes_are_still_routed() -> None:
    """A sender that found nothing left is done before the loop runs its done-callbacks;
    rows submitted in between must start a sender of their own, not count on that one."""
    _, _, dispatcher, claim = claimed(2)
    first, second = claim.messages
    routes = Routes()
    senders = Senders(dispatcher, routes, acks_for(dispatcher), concurrency=2)  # type: ignore[arg-type]

    async def scenario() -> None:
        senders.submit(claim.token, (first,))
        # runs right after the sender's only step, before its done-callback
        asyncio.get_running_loop().call_soon(senders.submit, claim.token, (second,))
        await until(lambda: len(routes.routed) == 2, steps=50)

    asyncio.run(scenario())

    assert routes.routed == [first.id, second.id] and senders.waiting() == 0


def test_stopping_the_senders_releases_the_rows_not_yet_routed() -> None:
    store, clock, dispatcher, claim = claimed(5)
    acks = acks_for(dispatcher)
    acks.track(claim, clock.now())
    routes = GatedRoutes()
    senders = Senders(dispatcher, routes, acks, concurrency=2)  # type: ignore[arg-type]

    async def scenario() -> None:
        senders.submit(claim.token, claim.messages)
        await until(lambda: routes.open == 2)
        senders.release_waiting()
        await acks.flush()

    asyncio.run(scenario())

    assert acks.summary.released == 3 and acks.held() == 2
    assert sum(m.state is State.PENDING for m in store.all()) == 3


class FailingOnce(InMemoryOutboxStore):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def claim(self, **kwargs: Any) -> list[Message]:
        if not self.failed:
            self.failed = True
            raise ConnectionError("database away")
        return super().claim(**kwargs)


def test_the_claimer_reports_a_failed_claim_and_recovers() -> None:
    store, clock = FailingOnce(), ManualClock()
    store.enqueue([NewMessage(user_id=1, body="m")])
    dispatcher = dispatcher_over(store, clock)
    acks, health = acks_for(dispatcher), Health()
    senders = Senders(dispatcher, GatedRoutes(), acks, concurrency=2)  # type: ignore[arg-type]
    timing = settings(failure_backoff_max=0.0)
    claimer = Claimer(
        dispatcher, acks, senders, capacity=10, timing=timing, offload=inline,
        health=health, rng=random.Random(1),
    )  # fmt: skip
    stop = asyncio.Event()
    seen: list[bool] = []

    async def scenario() -> None:
        task = asyncio.create_task(claimer.run(stop, until_idle=False))
        await until(lambda: store.failed)
        seen.append(health.ok)
        await until(lambda: acks.held() == 1)
        seen.append(health.ok)
        stop.set()
        await task

    asyncio.run(scenario())

    assert seen == [False, True] and acks.summary.claimed == 1


def test_the_claimer_waits_for_room_rather_than_claim_a_short_batch() -> None:
    store, clock = InMemoryOutboxStore(), ManualClock()
    store.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(30)])
    dispatcher = dispatcher_over(store, clock)
    acks = acks_for(dispatcher)
    senders = Senders(dispatcher, GatedRoutes(), acks, concurrency=2)  # type: ignore[arg-type]
    claimer = Claimer(
        dispatcher, acks, senders, capacity=15, timing=settings(), offload=inline,
        health=Health(), rng=random.Random(1),
    )  # fmt: skip
    stop = asyncio.Event()

    async def scenario() -> None:
        task = asyncio.create_task(claimer.run(stop, until_idle=False))
        await until(lambda: acks.held() >= 10)
        await settle()  # nothing is acked: no room is made
        stop.set()
        await task

    asyncio.run(scenario())

    # a batch of 10; the 5 left of the capacity are less than half a batch's worth of room
    assert (acks.held(), sum(m.state is State.PENDING for m in store.all())) == (10, 20)


def _deferred(message: Message, until: Any) -> Any:
    from application.dispatcher import Settled

    return Settled(message=message.defer(until, "waiting: test"), outcome=Outcome.DEFERRED)
