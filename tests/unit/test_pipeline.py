"""The pipeline over the in-memory adapters: everything delivered, nothing kept afterwards."""

from __future__ import annotations

import asyncio
import gc
import random
import weakref
from datetime import timedelta

from adapters.clock import ManualClock
from adapters.in_memory import InMemoryOutboxStore
from application.dispatcher import Dispatcher, DispatchSettings, TargetUrls
from application.message_type_registry import discover
from application.offload import inline
from application.pipeline import Pipeline
from application.ports import MessageSender, NewMessage
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import State
from domain.retry import RetryPolicy
from tests.unit.loop import settings, settle, until


class WeakSender:
    """Answers 200 and keeps only weak references to what it was given."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.seen: list[weakref.ref[DeliveryRequest]] = []
        self.gate = gate

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        self.seen.append(weakref.ref(request))
        if self.gate is not None:
            await self.gate.wait()
        return DeliveryResult(status_code=200, latency_ms=0.1)

    async def aclose(self) -> None:
        pass


def pipeline_over(
    store: InMemoryOutboxStore,
    sender: MessageSender,
    batch: int = 50,
    clock: ManualClock | None = None,
) -> Pipeline:
    """A pipeline whose database calls run inline and whose waits are yields to the loop."""
    dispatcher = Dispatcher(
        store=store,
        sender=sender,
        clock=clock or ManualClock(),
        types=discover(),
        targets=TargetUrls(default="https://example.test/hooks"),
        policy=RetryPolicy(),
        rng=random.Random(7),
        settings=DispatchSettings(owner="t", batch_size=batch, concurrency=8),
    )
    return Pipeline(dispatcher, settings(flush_size=100), rng=random.Random(7), offload=inline)


def test_a_long_run_keeps_no_per_message_objects_alive() -> None:
    store = InMemoryOutboxStore(history_limit=10)
    store.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(3000)])
    sender = WeakSender()
    pipeline = pipeline_over(store, sender)

    summary = asyncio.run(pipeline.run(asyncio.Event(), until_idle=True))
    gc.collect()

    assert summary.sent == 3000 and store.unfinished() == 0
    assert len(sender.seen) == 3000
    assert sum(ref() is not None for ref in sender.seen) == 0
    assert pipeline.held() == 0


def test_the_pipeline_never_holds_more_than_its_capacity() -> None:
    store = InMemoryOutboxStore()
    store.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(1000)])
    gate = asyncio.Event()
    pipeline = pipeline_over(store, WeakSender(gate), batch=50)
    high_water = 0

    async def scenario() -> None:
        nonlocal high_water
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        await until(lambda: pipeline.held() >= 100)  # two batches: less room than a batch left
        await settle()  # the claimer had every chance to claim more
        high_water = sum(m.state is State.IN_FLIGHT for m in store.all())
        stop.set()
        gate.set()
        await task

    asyncio.run(scenario())

    assert 50 < high_water <= pipeline.capacity


def test_stopping_releases_queued_rows_so_they_are_claimable_at_once() -> None:
    store = InMemoryOutboxStore()
    store.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(500)])
    gate = asyncio.Event()
    sender = WeakSender(gate)
    pipeline = pipeline_over(store, sender, batch=50)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        await until(lambda: pipeline.held() >= 100 and len(sender.seen) == 8)
        stop.set()
        await until(lambda: pipeline.gate.closing)  # the claimer saw the stop, sends still out
        gate.set()
        await task

    asyncio.run(scenario())

    rows = store.all()
    assert not any(m.state is State.IN_FLIGHT for m in rows)
    assert pipeline.summary.released > 0
    assert pipeline.summary.sent + pipeline.summary.released == pipeline.summary.claimed
    released = [m for m in rows if m.state is State.PENDING and m.idempotency_key is not None]
    assert len(released) == pipeline.summary.released and all(m.attempts == 0 for m in released)


def test_a_worker_whose_lease_lapsed_sends_none_of_its_queued_rows() -> None:
    store = InMemoryOutboxStore()
    store.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(50)])
    gate, clock = asyncio.Event(), ManualClock()
    sender = WeakSender(gate)
    pipeline = pipeline_over(store, sender, batch=50, clock=clock)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        await until(lambda: len(sender.seen) == 8)  # all 50 claimed, 8 sends held at the gate
        clock.advance(300)  # the worker was frozen past its lease ...
        now = clock.now()  # ... and another worker took the rows over
        lease_end = now + timedelta(minutes=1)
        store.claim(owner="other", token="other", limit=50, now=now, lease_until=lease_end)
        gate.set()
        await until(lambda: pipeline.summary.refused == 50)
        await settle()  # time to send any row it should not
        stop.set()
        await task

    asyncio.run(scenario())

    assert len(sender.seen) == 8
    assert pipeline.summary.refused == 50
    assert all(m.lease_token == "other" for m in store.all())
