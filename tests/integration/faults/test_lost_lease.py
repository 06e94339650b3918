"""Lost lease: a worker frozen (SIGSTOP) past its lease while another takes its rows over;
resumed (SIGCONT), its late outcomes are refused and overwrite nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.sql.store import SqlOutboxStore
from tests.integration.faults.fault_receiver import FaultReceiver, Faults
from tests.integration.faults.fleet import (
    CAPACITY,
    CONCURRENCY,
    FAULT_SETTINGS,
    Fleet,
    fault_env,
    feed,
    held_by,
    settle,
    wait_for,
)
from tests.integration.faults.invariants import assert_invariants
from tests.integration.faults.scale import report, scaled
from tests.integration.worker_harness import SECRET

pytestmark = pytest.mark.faults
LEASE = float(FAULT_SETTINGS["OUTBOX_LEASE_SECONDS"])
DISPATCHER_COLUMNS = (  # the columns an ack writes (README: "Columns the dispatcher adds")
    "ToSend", "Status", "Attempts", "NextAttemptAt", "LeaseOwner",
    "LeaseUntil", "LeaseToken", "IdempotencyKey", "SentAt",
)  # fmt: skip


def test_a_worker_paused_past_its_lease_cannot_overwrite_what_the_next_worker_did(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    written = feed(store, scaled(400, 4000), "lost lease")
    slow = Faults(latency_seconds=0.3)  # keeps a full pipeline of rows in flight

    with (
        FaultReceiver(secret=SECRET, faults=slow) as receiver,
        Fleet(fault_env(database_url, receiver.url), tmp_path) as fleet,
    ):
        paused = fleet.start()
        wait_for(lambda: held_by(store, paused.pid) >= CAPACITY // 2, 30, "rows in flight")
        paused.signal(signal.SIGSTOP)
        frozen_at, held = time.monotonic(), held_by(store, paused.pid)
        fleet.start()
        settle(store, timeout=scaled(60, 300))
        frozen = time.monotonic() - frozen_at
        taken_over = lifecycle(store)
        resumed_at = time.monotonic()
        paused.signal(signal.SIGCONT)
        wait_for(lambda: "lost lease" in paused.output(), 30, "the resumed worker's refusal")
        time.sleep(1.0)  # let it try whatever else it had queued
        codes = fleet.stop_all()

    deliveries = receiver.deliveries()
    tally = assert_invariants(store, written, deliveries, held_at_faults=held)
    late = sum(1 for d in deliveries if d.at > resumed_at)  # the other worker was done by then
    report(
        f"lost-lease[{database}]: worker frozen {frozen:.1f} s (lease {LEASE:g} s) holding "
        f"{held} rows, {late} POSTed after it resumed, {refused(paused.output())} late outcomes "
        f"refused, {tally.figures()}"
    )
    assert frozen > LEASE
    # only the sends already under way when it froze go out, not the rows it had queued
    assert late <= CONCURRENCY and tally.duplicates <= CONCURRENCY + tally.lost_responses
    assert lifecycle(store) == taken_over, "the resumed worker overwrote the new claim's outcome"
    assert codes == [0, 0], fleet.logs()[-3000:]


def lifecycle(store: SqlOutboxStore) -> tuple[list[tuple[object, ...]], int]:
    """Every dispatcher column of every row, and the size of the attempt history."""
    columns = [store.table.c[name] for name in DISPATCHER_COLUMNS]
    rows = select(store.table.c.ID, *columns).order_by(store.table.c.ID)
    with store.engine.connect() as conn:
        history = conn.execute(select(func.count()).select_from(store.history)).scalar_one()
        return [tuple(row) for row in conn.execute(rows)], int(history)


def refused(log: str) -> int:
    """Outcomes the resumed worker could not write, from its `refused=` summary line."""
    summary = [line for line in log.splitlines() if line.startswith("summary:")]
    return int(summary[-1].split("refused=")[1]) if summary else -1
