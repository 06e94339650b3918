"""What a perpetual worker keeps: nothing per claim, message or label once a claim settles."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import weakref
from datetime import timedelta
from pathlib import Path
from typing import Any

from adapters.clock import ManualClock
from adapters.in_memory import InMemoryOutboxStore
from application.ports import NewMessage
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import Message
from entrypoints.allocator import release_free_memory
from entrypoints.metrics import PrometheusObserver
from tests.unit.test_pipeline import WeakSender, pipeline_over


class GatedSender:
    """Holds every send until the gate opens; `first` is set when the first send arrives."""

    def __init__(self, status: int = 200) -> None:
        self.first = asyncio.Event()
        self.gate = asyncio.Event()
        self.status = status

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        self.first.set()
        await self.gate.wait()
        return DeliveryResult(status_code=self.status, latency_ms=0.1)

    async def aclose(self) -> None:
        pass


class ClaimRecordingStore(InMemoryOutboxStore):
    """The in-memory store, keeping weak references to every message it hands out."""

    def __init__(self) -> None:
        super().__init__(history_limit=10)
        self.claimed: list[weakref.ref[Message]] = []

    def claim(self, **kwargs: Any) -> list[Message]:
        claimed = super().claim(**kwargs)
        self.claimed += [weakref.ref(m) for m in claimed]
        return claimed


def test_claims_whose_outcomes_were_all_refused_leave_no_per_claim_state() -> None:
    store = InMemoryOutboxStore()
    store.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(20)])
    clock, sender = ManualClock(), GatedSender()
    pipeline = pipeline_over(store, sender, batch=10, clock=clock)

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(pipeline.run(stop))
        await sender.first.wait()
        clock.advance(31)  # the leases lapse and another worker takes every row
        now = clock.now()
        store.claim(
            owner="other", token="other", limit=100, now=now, lease_until=now + timedelta(1)
        )
        stop.set()
        sender.gate.set()
        await task

    asyncio.run(scenario())

    assert pipeline.summary.claimed > 0
    assert pipeline.summary.refused == pipeline.summary.claimed
    assert pipeline.tracked_claims() == set() and pipeline.held() == 0


def test_settled_claims_leave_no_per_claim_state_whatever_their_outcomes() -> None:
    store = InMemoryOutboxStore(history_limit=10)
    store.enqueue([NewMessage(user_id=1, body=f"m{i}") for i in range(300)])
    store.enqueue([NewMessage(user_id=1, body="") for _ in range(50)])  # invalid: never sent
    pipeline = pipeline_over(store, GatedSender(status=503), batch=40)

    async def scenario() -> None:
        pipeline.dispatcher.sender.gate.set()  # type: ignore[attr-defined]
        await pipeline.run(asyncio.Event(), until_idle=True)

    asyncio.run(scenario())

    summary = pipeline.summary  # the breaker opens after a few 503s and defers the rest
    assert summary.retried > 0 and summary.deferred > 0
    assert summary.retried + summary.deferred == 300 and summary.invalid == 50
    assert pipeline.tracked_claims() == set() and pipeline.held() == 0


def test_no_claimed_message_outlives_its_ack() -> None:
    store = ClaimRecordingStore()
    store.enqueue([NewMessage(user_id=i % 7 + 1, body=f"m{i}") for i in range(2000)])
    pipeline = pipeline_over(store, WeakSender(), batch=100)

    summary = asyncio.run(pipeline.run(asyncio.Event(), until_idle=True))
    gc.collect()

    assert summary.sent == 2000 and len(store.claimed) == 2000
    assert [ref() for ref in store.claimed if ref() is not None] == []


def test_metrics_get_no_label_per_message_user_or_claim() -> None:
    store = InMemoryOutboxStore(history_limit=10)
    pipeline = pipeline_over(store, WeakSender(), batch=50)
    observer = PrometheusObserver()
    pipeline.observer = observer

    async def run(users: int, count: int) -> int:
        store.enqueue([NewMessage(user_id=i % users + 1, body=f"m{i}") for i in range(count)])
        store.enqueue([NewMessage(user_id=1, body="")])  # one invalid per run
        await pipeline.run(asyncio.Event(), until_idle=True)
        return sum(len(metric.samples) for metric in observer.registry.collect())

    async def scenario() -> tuple[int, int]:
        return await run(users=1, count=10), await run(users=500, count=1000)

    first, later = asyncio.run(scenario())

    assert pipeline.summary.sent == 1010
    assert later == first


def test_releasing_free_memory_gives_freed_heap_pages_back_to_the_system() -> None:
    kept, freed = _fragmented_heap(blocks=16_384, block_bytes=4096, keep_every=64)
    before = _rss_kib()

    released = release_free_memory()

    assert released
    assert before - _rss_kib() > freed // 1024 // 2  # at least half of what was freed
    assert len(kept) == 16_384 // 64


def test_threads_started_after_limiting_arenas_share_two() -> None:
    counts = [_arenas_after_busy_threads(limit) for limit in (False, True)]

    assert counts[0] > 2  # control: unlimited, each busy thread takes an arena of its own
    assert counts[1] <= 2


_ARENAS_SCRIPT = """
import ctypes, sys, tempfile, threading
from entrypoints.allocator import limit_arenas
if sys.argv[1] == "1":
    limit_arenas()
start = threading.Barrier(6)
def busy():
    start.wait()
    kept = [bytearray(1000) for _ in range(20000)]
threads = [threading.Thread(target=busy) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
with tempfile.NamedTemporaryFile() as out:
    handle = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    print(open(out.name).read().count("<heap nr="))
"""


def _arenas_after_busy_threads(limit: bool) -> int:
    """malloc arenas in a fresh interpreter after six threads allocated at once."""
    done = subprocess.run(
        [sys.executable, "-c", _ARENAS_SCRIPT, "1" if limit else "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def _fragmented_heap(blocks: int, block_bytes: int, keep_every: int) -> tuple[list[bytes], int]:
    """Allocate and touch `blocks` heap blocks, free all but one in `keep_every`."""
    every = [b"x" * block_bytes for _ in range(blocks)]  # malloc'ed (> 512 bytes), written
    kept = every[::keep_every]  # scattered survivors: free() alone cannot shrink the heap
    del every
    return kept, (blocks - len(kept)) * block_bytes


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")
