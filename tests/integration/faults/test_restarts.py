"""Graceful restarts: SIGTERM a worker and start a new one, in a loop, while rows stream."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from adapters.sql.store import SqlOutboxStore
from tests.integration.faults.fault_receiver import FaultReceiver, Faults
from tests.integration.faults.fleet import Fleet, fault_env, feed, settle, top_up, wait_for
from tests.integration.faults.invariants import assert_invariants
from tests.integration.faults.scale import report, scaled
from tests.integration.worker_harness import SECRET

pytestmark = pytest.mark.faults
WORKERS = 2


def test_workers_restarted_with_sigterm_finish_their_rows_and_send_nothing_twice(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    restarts = scaled(5, 40)
    written = feed(store, scaled(3000, 50_000), "restart")
    rng = random.Random(12)
    codes: list[int] = []
    drained: list[float] = []

    with (
        FaultReceiver(secret=SECRET, faults=Faults(latency_seconds=0.01)) as receiver,
        Fleet(fault_env(database_url, receiver.url), tmp_path) as fleet,
    ):
        for _ in range(WORKERS):
            fleet.start()
        while len(codes) < restarts:
            time.sleep(rng.uniform(0.3, 1.2))
            top_up(store, written, len(codes))
            wait_for(lambda: bool(fleet.ready()), 30, "a worker past start-up")
            worker = rng.choice(fleet.ready())
            started = time.monotonic()
            worker.signal(signal.SIGTERM)
            codes.append(worker.wait(timeout=30))
            drained.append(time.monotonic() - started)
            fleet.start()
        settle(store, timeout=scaled(120, 900))
        codes += fleet.stop_all()

    tally = assert_invariants(store, written, receiver.deliveries(), held_at_faults=0)
    report(
        f"restarts[{database}]: {restarts} SIGTERM restarts, {WORKERS} workers, "
        f"slowest exit {max(drained):.1f} s, {tally.figures()}"
    )
    assert codes == [0] * len(codes), fleet.logs()[-3000:]
    assert "no new claims; finishing in-flight messages" in fleet.logs()
