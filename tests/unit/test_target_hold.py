"""Rows held back behind an open breaker: probe rows, spares, parked rows, and who resumes them."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from adapters.clock import ManualClock
from adapters.in_memory import InMemoryOutboxStore
from application import breaker_effects
from application.dispatcher import Dispatcher, DispatchSettings, TargetUrls
from application.message_type_registry import discover
from application.offload import inline
from application.pipeline import Pipeline
from application.ports import NewMessage
from application.target_pool import Target, TargetSettings
from domain import status
from domain.breaker import Breaker, BreakerSettings, BreakerState
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import State
from domain.retry import RetrySchedule
from tests.unit.loop import settings, settle, until

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = BreakerSettings(
    failures=1, cooldown_seconds=5, cooldown_max_seconds=60, park_seconds=300
)
DOWN = DeliveryResult(status_code=None, latency_ms=1.0, error="ConnectError")
UP = DeliveryResult(status_code=200, latency_ms=1.0)
URL = "https://hooks.example.test/in"


def open_target(now: datetime) -> Target:
    return Target(key="t", breaker=Breaker(settings=SETTINGS).record(DOWN, now))


def seconds(moments: list[tuple[datetime, bool]], since: datetime) -> list[tuple[float, bool]]:
    return [((when - since).total_seconds(), probe) for when, probe in moments]


def test_one_row_per_probe_then_spares_up_to_the_park_bound_then_parked() -> None:
    target = open_target(T0)

    held = [target.hold(T0) for _ in range(8)]

    assert seconds(held, T0) == [
        (5, True),  # due at the probe
        (65, True),  # spares, one per longest cool-down, so every later probe finds a row
        (125, True),
        (185, True),
        (245, True),
        (305, False),  # parked until the bound, all in one statement
        (305, False),
        (305, False),
    ]


def test_each_later_cool_down_keeps_one_more_spare_so_the_chain_never_runs_out() -> None:
    target = open_target(T0)
    for _ in range(6):
        target.hold(T0)
    later = T0 + timedelta(seconds=5)
    target.breaker = target.breaker.begin(later).record(DOWN, later)  # the probe failed

    held = [target.hold(later) for _ in range(3)]

    assert seconds(held, T0) == [(15, True), (305, True), (315, False)]


def test_a_new_outage_starts_its_spares_again_at_its_own_probe() -> None:
    target = open_target(T0)
    for _ in range(6):
        target.hold(T0)
    back = T0 + timedelta(seconds=5)
    target.breaker = target.breaker.begin(back).record(UP, back)
    again = T0 + timedelta(seconds=100)
    target.breaker = target.breaker.record(DOWN, again)

    held = [target.hold(again) for _ in range(2)]

    assert seconds(held, again) == [(5, True), (65, True)]


def test_a_row_kept_to_probe_made_due_early_stays_a_probe_once_every_spare_is_used() -> None:
    target = open_target(T0)
    for _ in range(8):
        target.hold(T0)  # the probe row and every spare chosen: the rest are parked

    assert seconds([target.hold(T0), target.hold(T0, kept=True)], T0) == [(305, False), (5, True)]


def test_rows_held_back_by_a_retry_after_pause_all_go_at_its_end() -> None:
    target = Target(key="t", breaker=Breaker(settings=SETTINGS))
    throttled = DeliveryResult(status_code=429, latency_ms=1.0, retry_after_seconds=7)
    target.breaker = target.breaker.record(throttled, T0)

    assert seconds([target.hold(T0) for _ in range(3)], T0) == [(7, False)] * 3
    assert seconds([target.hold(T0, kept=True)], T0) == [(7, True)]  # another worker's probe


def test_a_row_kept_to_probe_that_went_through_resumes_the_target_once_per_cool_down() -> None:
    target = Target(key="t", breaker=Breaker(settings=SETTINGS))
    kept = status.waiting("t", "unavailable (x)" + status.KEPT_TO_PROBE, T0)
    parked = status.waiting("t", "unavailable (x)", T0)

    assert not target.resumes_on(parked, UP, T0)
    assert not target.resumes_on(kept, DOWN, T0)
    assert target.resumes_on(kept, UP, T0)
    assert not target.resumes_on(kept, UP, T0 + timedelta(seconds=4))
    assert target.resumes_on(kept, UP, T0 + timedelta(seconds=5))
    assert not target.resumes_on(None, UP, T0 + timedelta(seconds=60))


class Receiver:
    def __init__(self) -> None:
        self.up = False
        self.requests = 0

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        self.requests += 1
        return UP if self.up else DOWN

    async def aclose(self) -> None:
        pass


def worker(
    store: InMemoryOutboxStore, receiver: Receiver, clock: ManualClock, name: str
) -> Pipeline:
    dispatcher = Dispatcher(
        store=store,
        sender=receiver,
        clock=clock,
        types=discover(),
        targets=TargetUrls(default=URL, by_type={}),
        policy=RetrySchedule(steps=(600.0, 600.0, 600.0)),
        rng=random.Random(3),
        settings=DispatchSettings(owner=name, batch_size=50, concurrency=4),
    )
    targets = TargetSettings(concurrency=4, breaker=SETTINGS)
    return Pipeline(dispatcher, settings(targets=targets), offload=inline)


def test_rows_one_worker_parked_go_when_another_worker_delivers_its_probe_row() -> None:
    store, clock, receiver = InMemoryOutboxStore(), ManualClock(T0), Receiver()
    store.enqueue([NewMessage(user_id=1, body="hi", message_type="default") for _ in range(40)])
    asyncio.run(worker(store, receiver, clock, "b").run(asyncio.Event(), until_idle=True))
    parked = [m for m in store.all() if m.attempts == 0]
    assert len(parked) >= 30 and all(m.state is State.PENDING for m in parked)
    receiver.up = True
    clock.advance(6)  # past b's probe time, long before its parked rows come due

    async def other_worker() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker(store, receiver, clock, "a").run(stop))
        await until(lambda: all(m.state is State.SENT for m in store.all()))
        stop.set()
        await task

    asyncio.run(other_worker())

    assert all(m.state is State.SENT for m in store.all())
    assert all(m.attempts == 1 for m in store.all() if m.id in {p.id for p in parked})


def test_rows_held_back_go_again_when_no_row_came_to_probe_the_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(breaker_effects, "_PROBE_GRACE", 0.0)
    store, clock = InMemoryOutboxStore(), ManualClock(T0)
    store.enqueue([NewMessage(user_id=1, body="hi") for _ in range(3)])
    pipeline = worker(store, Receiver(), clock, "b")
    claimed = store.claim(owner="b", token="t", limit=3, now=T0, lease_until=T0)
    parked = T0 + timedelta(seconds=300)  # the probe row went to another worker: all parked
    store.defer("t", [m.id for m in claimed], parked, status.waiting(URL, "unavailable", parked))
    target = pipeline.gate._pool.of(URL)

    async def open_then_wait() -> None:
        target.breaker = target.breaker.record(DOWN, T0)  # probe at T0 + 5 s: none comes
        pipeline.effects._watch(target, target.breaker.resumes_at(T0), T0 + timedelta(seconds=5))
        await settle()
        await pipeline.effects.join()

    asyncio.run(open_then_wait())

    assert [m.next_attempt_at for m in store.all()] == [clock.now()] * 3


PAUSE = DeliveryResult(status_code=429, latency_ms=1.0, retry_after_seconds=1.0)


@pytest.mark.parametrize("parked", [False, True])
def test_the_end_of_a_retry_after_pause_leaves_rows_other_workers_hold_back_alone(
    parked: bool,
) -> None:
    """Rows held back for a pause are due at its end anyway; making every held row due would
    also release those another worker's open breaker parked, to be claimed and held again."""
    store, clock = InMemoryOutboxStore(), ManualClock(T0)
    store.enqueue([NewMessage(user_id=1, body="hi") for _ in range(3)])
    pipeline = worker(store, Receiver(), clock, "a")
    claimed = store.claim(owner="b", token="t", limit=3, now=T0, lease_until=T0)
    later = T0 + timedelta(seconds=300)  # parked by worker b, whose breaker is open
    store.defer("t", [m.id for m in claimed], later, status.waiting(URL, "unavailable", later))
    target = pipeline.gate._pool.of(URL)
    target.breaker = target.breaker.record(PAUSE, T0)
    target.parked = parked  # whether worker a itself parked rows beyond a probe meanwhile
    clock.advance(2)
    target.breaker = target.breaker.begin(clock.now())  # the pause is over: closed again

    async def close() -> None:
        pipeline.effects.transition(target, BreakerState.OPEN, clock.now(), paused=True)
        await settle()
        await pipeline.effects.join()

    asyncio.run(close())

    expected = clock.now() if parked else later
    assert [m.next_attempt_at for m in store.all()] == [expected] * 3


def test_a_failed_probe_is_logged_with_the_next_probe_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Closed → open says the target is unavailable; a failed probe (half-open → open) says so
    too, with the grown cool-down: else a slow recovery reads as silence in the log."""
    store, clock = InMemoryOutboxStore(), ManualClock(T0)
    pipeline = worker(store, Receiver(), clock, "a")
    target = pipeline.gate._pool.of(URL)
    target.breaker = Breaker(settings=SETTINGS).record(DOWN, T0)
    clock.advance(5)
    target.breaker = target.breaker.begin(clock.now()).record(DOWN, clock.now())

    async def fail_the_probe() -> None:
        pipeline.effects.transition(target, BreakerState.HALF_OPEN, clock.now(), paused=False)
        await settle()
        await pipeline.effects.join()

    with caplog.at_level("INFO", logger="application.breaker_effects"):
        asyncio.run(fail_the_probe())

    next_probe = (clock.now() + timedelta(seconds=10)).isoformat(timespec="seconds")
    expected = f"(ConnectError in 1 ms); still unavailable, next probe at {next_probe}"
    assert "the probe failed" in caplog.text and expected in caplog.text
