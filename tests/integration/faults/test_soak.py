"""Soak: one worker, a long stream of rows, its memory sampled from /proc as it goes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adapters.sql.store import SqlOutboxStore
from tests.integration.faults.fault_receiver import FaultReceiver
from tests.integration.faults.fleet import Fleet, fault_env, feed, rss_kib, settle, wait_for
from tests.integration.faults.invariants import assert_invariants
from tests.integration.faults.scale import report, scaled
from tests.integration.worker_harness import SECRET

pytestmark = pytest.mark.faults
SHIPPED_DEFAULTS = ("OUTBOX_BATCH_SIZE", "OUTBOX_CONCURRENCY")  # not overridden here
GROWTH_KIB = 16 * 1024  # most the worker may grow between the first tenth and the end


def test_one_worker_sends_a_long_stream_with_flat_memory(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    rows = scaled(20_000, 200_000)
    written = feed(store, rows, "soak", users=1000)
    rss: dict[str, int] = {}
    env = {k: v for k, v in fault_env(database_url, "").items() if k not in SHIPPED_DEFAULTS}

    with (
        FaultReceiver(secret=SECRET) as receiver,
        Fleet(env | {"OUTBOX_TARGET_URL": receiver.url}, tmp_path) as fleet,
    ):
        worker = fleet.start()
        wait_for(lambda: bool(fleet.ready()), 30, "the worker started")
        started, rss["start"] = time.monotonic(), rss_kib(worker.pid)
        for label, fraction in (("10%", 0.1), ("middle", 0.5)):
            wait_for(received(receiver, int(rows * fraction)), 600, label, poll=0.05)
            rss[label] = rss_kib(worker.pid)
        settle(store, timeout=scaled(300, 1800))
        elapsed, rss["end"] = time.monotonic() - started, rss_kib(worker.pid)
        codes = fleet.stop_all()

    tally = assert_invariants(store, written, receiver.deliveries(), held_at_faults=0)
    mib = {label: f"{kib / 1024:.0f}" for label, kib in rss.items()}
    report(
        f"soak[{database}]: 1 worker ({shipped_defaults(worker.output())}), "
        f"{rows / elapsed:.0f} rows/s over {elapsed:.0f} s, RSS MiB "
        f"start {mib['start']} / 10% {mib['10%']} / middle {mib['middle']} / end {mib['end']}, "
        f"{tally.figures()}"
    )
    assert codes == [0]
    assert rss["end"] - rss["10%"] <= GROWTH_KIB, f"worker memory grew: {mib}"


def received(receiver: FaultReceiver, goal: int) -> Callable[[], bool]:
    return lambda: len(receiver.deliveries()) >= goal


def shipped_defaults(log: str) -> str:
    found = re.search(r"batch=(\d+) concurrency=(\d+)", log)
    return f"batch {found[1]}, concurrency {found[2]}" if found else "?"
