"""Receiver faults: 500/503, 429 with Retry-After, answers beyond the timeout, connections
reset mid-response, and a receiver that goes away for a while and comes back."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.sql.store import SqlOutboxStore
from tests.integration.faults.fault_receiver import RESET, SLOW, Delivery, FaultReceiver, Faults
from tests.integration.faults.fleet import Fleet, fault_env, feed, settle, wait_for
from tests.integration.faults.invariants import assert_invariants
from tests.integration.faults.scale import report, scaled
from tests.integration.worker_harness import SECRET

pytestmark = pytest.mark.faults
FAULTS = Faults(
    error_500=0.08,
    error_503=0.08,
    too_many=0.05,
    slow=0.02,
    reset=0.04,
    retry_after_seconds=1,
    slow_seconds=3.0,  # beyond OUTBOX_HTTP_TIMEOUT (2 s)
)


def test_a_failing_receiver_gets_every_row_in_the_end_with_retries_honouring_retry_after(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    rows, outage = scaled(1500, 20_000), scaled(3, 15)
    written = feed(store, rows, "receiver faults")
    env = fault_env(database_url, "", OUTBOX_RETRY_MAX_SECONDS="2")

    with FaultReceiver(secret=SECRET, faults=FAULTS, seed=13) as receiver:
        with Fleet(env | {"OUTBOX_TARGET_URL": receiver.url}, tmp_path) as fleet:
            fleet.start()
            fleet.start()
            wait_for(lambda: len(receiver.deliveries()) > rows // 3, 120, "a third delivered")
            with receiver.down():
                time.sleep(outage)
            settle(store, timeout=scaled(180, 1200))
            codes = fleet.stop_all()
        deliveries = receiver.deliveries()

    faults = Counter(d.outcome for d in deliveries)
    tally = assert_invariants(store, written, deliveries, held_at_faults=0)
    errors = attempt_errors(store)
    report(
        f"receiver-faults[{database}]: {len(deliveries)} POSTs ({faults['500']} 500s, "
        f"{faults['503']} 503s, {faults['429']} 429s, {faults[SLOW]} slow, {faults[RESET]} "
        f"resets, down {outage} s: {errors.get('ConnectError', 0)} refused), {tally.figures()}"
    )
    assert codes == [0, 0]
    assert early_after_429(deliveries, FAULTS.retry_after_seconds) == []
    assert errors.get("ConnectError", 0) > 0, errors  # the outage was seen
    assert faults[SLOW] == 0 or errors.get("ReadTimeout", 0) + errors.get("AttemptTimeout", 0)


def early_after_429(deliveries: list[Delivery], retry_after: float) -> list[str]:
    """Keys sent again sooner than the Retry-After of the 429 they got."""
    early: list[str] = []
    last_429: dict[str | None, float] = {}
    for delivery in sorted(deliveries, key=lambda d: d.at):
        answered = last_429.pop(delivery.key, None)
        if answered is not None and delivery.at - answered < retry_after - 0.05:
            early.append(f"{delivery.key} after {delivery.at - answered:.2f} s")
        if delivery.outcome == "429":
            last_429[delivery.key] = delivery.at
    return early


def attempt_errors(store: SqlOutboxStore) -> dict[str, int]:
    """Failed attempts in the attempt history, by error class (HTTP statuses excluded)."""
    h = store.history.c
    query = select(h.Error, func.count()).where(h.Error.is_not(None)).group_by(h.Error)
    with store.engine.connect() as conn:
        return {str(error): int(n) for error, n in conn.execute(query)}
