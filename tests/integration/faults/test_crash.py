"""Crash: several workers, one killed with SIGKILL again and again and replaced."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from adapters.sql.store import SqlOutboxStore
from tests.integration.faults.fault_receiver import FaultReceiver, Faults
from tests.integration.faults.fleet import (
    CAPACITY,
    Fleet,
    fault_env,
    feed,
    held_by,
    settle,
    top_up,
)
from tests.integration.faults.invariants import assert_invariants
from tests.integration.faults.scale import report, scaled
from tests.integration.worker_harness import SECRET

pytestmark = pytest.mark.faults
WORKERS = 3


def test_workers_killed_mid_run_lose_nothing_and_resend_only_what_they_held(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    kills = scaled(6, 40)
    written = feed(store, scaled(3000, 50_000), "crash")
    rng = random.Random(11)
    held: list[int] = []

    with (
        FaultReceiver(secret=SECRET, faults=Faults(latency_seconds=0.01)) as receiver,
        Fleet(fault_env(database_url, receiver.url), tmp_path) as fleet,
    ):
        for _ in range(WORKERS):
            fleet.start()
        while len(held) < kills:
            time.sleep(rng.uniform(0.5, 1.5))
            top_up(store, written, len(held))
            holders = [w for w in fleet.alive() if held_by(store, w.pid)]
            if holders:
                victim = rng.choice(holders)
                victim.kill()
                held.append(held_by(store, victim.pid))
                fleet.start()
        settle(store, timeout=scaled(120, 900))
        codes = fleet.stop_all()

    tally = assert_invariants(store, written, receiver.deliveries(), held_at_faults=sum(held))
    report(f"crash[{database}]: {len(held)} kills, {WORKERS} workers, {tally.figures()}")
    assert all(n <= CAPACITY for n in held), held
    assert codes == [0] * WORKERS, fleet.logs()[-3000:]
