"""Per-target breakers and limits in the pipeline, over the in-memory adapters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from adapters.clock import ManualClock
from adapters.in_memory import InMemoryOutboxStore
from application.dispatcher import Dispatcher, DispatchSettings, TargetUrls
from application.message_type_registry import discover
from application.offload import inline
from application.pipeline import Pipeline
from application.ports import NewMessage
from application.target_pool import TargetSettings, target_key
from domain.breaker import BreakerSettings, BreakerState
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import State
from domain.retry import RetrySchedule
from tests.unit.loop import settings, until

FAST = "https://fast.example.test/hooks"
SLOW = "https://slow.example.test:8443/hooks"


class Receivers:
    """Answers per URL; `hold` keeps a URL's requests open until released."""

    def __init__(self, answer: Callable[[DeliveryRequest], int] = lambda r: 200) -> None:
        self.answer = answer
        self.requests: list[DeliveryRequest] = []
        self.hold = asyncio.Event()
        self.held_url: str | None = None

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        self.requests.append(request)
        if request.url == self.held_url:
            await self.hold.wait()
        return DeliveryResult(status_code=self.answer(request), latency_ms=1.0)

    async def aclose(self) -> None:
        pass

    def to(self, url: str) -> list[DeliveryRequest]:
        return [r for r in self.requests if r.url == url]


def build(store: InMemoryOutboxStore, sender: Receivers, clock: ManualClock) -> Pipeline:
    dispatcher = Dispatcher(
        store=store,
        sender=sender,
        clock=clock,
        types=discover(),
        targets=TargetUrls(default=FAST, by_type={"json": SLOW}),
        policy=RetrySchedule(steps=(1.0, 1.0, 1.0)),
        rng=random.Random(3),
        settings=DispatchSettings(owner="t", batch_size=50, concurrency=8),
    )
    breaker = BreakerSettings(failures=3, cooldown_seconds=30, cooldown_max_seconds=60)
    timing = settings(targets=TargetSettings(concurrency=8, breaker=breaker))
    return Pipeline(dispatcher, timing, rng=random.Random(3), offload=inline)


def enqueue(store: InMemoryOutboxStore, count: int, kind: str = "default") -> None:
    body = '{"n": 1}' if kind == "json" else "hello"
    store.enqueue([NewMessage(user_id=1, body=body, message_type=kind) for _ in range(count)])


def test_rows_behind_an_open_breaker_wait_without_spending_attempts() -> None:
    store, clock = InMemoryOutboxStore(), ManualClock()
    enqueue(store, 60)
    sender = Receivers(lambda r: 503)
    pipeline = build(store, sender, clock)

    asyncio.run(pipeline.run(asyncio.Event(), until_idle=True))

    rows = store.all()
    assert len(sender.requests) < 20
    assert sum(m.attempts for m in rows) == len(sender.requests)
    untried = [m for m in rows if m.attempts == 0]
    assert len(untried) >= 40
    assert all(m.state is State.PENDING for m in untried)
    assert all((m.status or "").startswith("waiting: ") for m in untried)
    health = {h.target: h.state for h in pipeline.target_health()}
    assert health["https://fast.example.test:443"] is BreakerState.OPEN


def test_a_recovered_target_gets_its_waiting_rows_at_once() -> None:
    store, clock = InMemoryOutboxStore(), ManualClock()
    enqueue(store, 60)
    down = True
    sender = Receivers(lambda r: 503 if down else 200)
    pipeline = build(store, sender, clock)
    failed_requests = 0

    async def until_sent() -> None:
        nonlocal down, failed_requests
        await pipeline.run(asyncio.Event(), until_idle=True)
        failed_requests = len(sender.requests)
        down = False
        clock.advance(31)  # past the cool-down: the probe goes, then the rest
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        await until(lambda: all(m.state is State.SENT for m in store.all()))
        stop.set()
        await task

    asyncio.run(until_sent())

    assert all(m.state is State.SENT for m in store.all())
    assert len(sender.requests) == failed_requests + 60
    assert {h.state for h in pipeline.target_health()} == {BreakerState.CLOSED}


def test_a_target_that_holds_its_requests_cannot_take_every_sender() -> None:
    store, clock = InMemoryOutboxStore(), ManualClock()
    enqueue(store, 40, kind="json")
    enqueue(store, 200)
    sender = Receivers()
    sender.held_url = SLOW
    pipeline = build(store, sender, clock)
    slow_while_held = 0

    async def scenario() -> None:
        nonlocal slow_while_held
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        await until(lambda: len(sender.to(FAST)) == 200)
        slow_while_held = len(sender.to(SLOW))
        stop.set()
        sender.hold.set()
        await task

    asyncio.run(scenario())

    assert len(sender.to(FAST)) == 200
    assert 1 <= slow_while_held <= 4  # a fair share of the 8 senders, at most


def test_a_410_marks_the_row_dead_saying_the_receiver_asked_to_stop() -> None:
    store, clock = InMemoryOutboxStore(), ManualClock()
    enqueue(store, 1)
    pipeline = build(store, Receivers(lambda r: 410), clock)

    asyncio.run(pipeline.run(asyncio.Event(), until_idle=True))

    [row] = store.all()
    assert row.state is State.DEAD and row.attempts == 1
    assert "the receiver asked to stop sending (410 Gone)" in (row.status or "")


def test_a_target_key_is_scheme_host_and_port() -> None:
    assert target_key("HTTPS://Hooks.Example.com/a?b") == "https://hooks.example.com:443"
    assert target_key("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080"
