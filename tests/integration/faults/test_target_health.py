"""Receivers that fail for minutes or crawl: breakers hold rows back without spending attempts,
a Retry-After pauses the whole target, and a slow target cannot slow the others down."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from tests.integration.faults.fault_receiver import Delivery, FaultReceiver, Faults
from tests.integration.faults.fleet import Fleet, feed, settle, wait_for
from tests.integration.faults.invariants import Snapshot, assert_invariants, upstream
from tests.integration.faults.scale import is_long, report
from tests.integration.worker_harness import SECRET, worker_env

pytestmark = pytest.mark.faults
OUTAGE_ROWS = 500
RECOVERY_BOUND = 120.0  # seconds from recovery to the last row sent
OUTAGE_REQUEST_BOUND = 100


def default_retry_env(database_url: str, target_url: str, **extra: str) -> dict[str, str]:
    """The worker's defaults for everything about retries and breakers (the harness shortens
    the exponential ones; drop them so the Standard Webhooks schedule applies)."""
    env = worker_env(database_url, target_url, **extra)
    for name in ("OUTBOX_RETRY_BASE_SECONDS", "OUTBOX_RETRY_MAX_SECONDS", "OUTBOX_MAX_ATTEMPTS"):
        env.pop(name, None)
    return env


def attempts_and_history(store: SqlOutboxStore) -> tuple[int, int, int]:
    """(sum of Attempts, attempts in the history, rows whose Attempts differ from history)."""
    t, h = store.table.c, store.history.c
    per_row = select(h.MessageID, func.count().label("n")).group_by(h.MessageID).subquery("per_row")
    mismatched = (
        select(func.count())
        .select_from(store.table.outerjoin(per_row, per_row.c.MessageID == t.ID))
        .where(func.coalesce(per_row.c.n, 0) != t.Attempts)
    )
    with store.engine.connect() as conn:
        total = int(conn.execute(select(func.coalesce(func.sum(t.Attempts), 0))).scalar_one())
        history = int(conn.execute(select(func.count()).select_from(store.history)).scalar_one())
        return total, history, int(conn.execute(mismatched).scalar_one())


def dead_rows(store: SqlOutboxStore) -> int:
    t = store.table.c
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(t.ToSend == 3)).scalar_one())


@pytest.fixture
def one_database_unless_long(database: str) -> Iterator[None]:
    """The outage scenarios are minutes long: PostgreSQL only in the default suite."""
    if database == "sqlite" and not is_long():
        pytest.skip("a four-minute outage runs on PostgreSQL only unless OUTBOX_FAULTS_SCALE=long")
    yield


@pytest.mark.outage
@pytest.mark.usefixtures("one_database_unless_long")
def test_a_receiver_answering_503_for_four_minutes_loses_nothing_with_the_default_retries(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    written = feed(store, OUTAGE_ROWS, "503 outage")

    with FaultReceiver(secret=SECRET, faults=Faults(error_503=1.0), seed=3) as receiver:
        env = default_retry_env(database_url, receiver.url)
        with Fleet(env, tmp_path) as fleet:
            fleet.start()
            fleet.start()
            time.sleep(240)
            recovered = time.monotonic()
            receiver.faults = Faults()
            settle(store, timeout=RECOVERY_BOUND + 120)
            codes = fleet.stop_all()
        deliveries = receiver.deliveries()
        logs = fleet.logs()

    check_outage(store, written, deliveries, recovered, codes, f"503-outage[{database}]")
    # each worker's breaker opens at most once (no flapping). Closing again is not required:
    # a worker whose breaker never opened (fewer failures than the threshold) can deliver
    # every row after the recovery before the other worker's next probe is due (seen: 6 s)
    opened, closed = logs.count("circuit open"), logs.count("circuit closed")
    assert 1 <= opened <= 2 and closed <= opened


@pytest.mark.outage
@pytest.mark.skipif(not is_long(), reason="a ten-minute outage: OUTBOX_FAULTS_SCALE=long only")
def test_a_receiver_refusing_connections_for_ten_minutes_loses_nothing(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    written = feed(store, OUTAGE_ROWS, "refused outage")

    with FaultReceiver(secret=SECRET, seed=4) as receiver:
        env = default_retry_env(database_url, receiver.url)
        with Fleet(env, tmp_path) as fleet:
            with receiver.down():
                fleet.start()
                fleet.start()
                time.sleep(600)
            recovered = time.monotonic()
            settle(store, timeout=RECOVERY_BOUND + 120)
            codes = fleet.stop_all()
        deliveries = receiver.deliveries()

    check_outage(store, written, deliveries, recovered, codes, f"refused-outage[{database}]")


def check_outage(
    store: SqlOutboxStore,
    written: Snapshot,
    deliveries: list[Delivery],
    recovered: float,
    codes: list[int],
    label: str,
) -> None:
    attempts, history, mismatched = attempts_and_history(store)
    during = attempts - sum(1 for d in deliveries if d.at >= recovered)
    last_sent = max(d.at for d in deliveries if d.processed) - recovered
    tally = assert_invariants(store, written, deliveries, held_at_faults=0)
    report(
        f"{label}: {during} requests during the outage for {OUTAGE_ROWS} rows, last row sent "
        f"{last_sent:.1f} s after recovery, {attempts} attempts in all, {tally.figures()}"
    )
    assert codes == [0, 0]
    assert dead_rows(store) == 0
    assert during <= OUTAGE_REQUEST_BOUND
    assert last_sent <= RECOVERY_BOUND
    assert mismatched == 0 and attempts == history  # waiting behind the breaker spent nothing


def typed_rows(store: SqlOutboxStore, count: int, message_type: str, label: str) -> Snapshot:
    body = '{"n": %d, "label": "%s"}' if message_type == "json" else "%d %s"
    batch = [
        NewMessage(user_id=1 + i % 20, body=body % (i, label), message_type=message_type)
        for i in range(count)
    ]
    ids = store.enqueue(batch)
    return {i: upstream(m.user_id, m.body, m.message_type) for i, m in zip(ids, batch, strict=True)}


def time_to_deliver(receiver: FaultReceiver, seen_before: int, count: int, start: float) -> float:
    wait_for(
        lambda: sum(d.processed for d in receiver.deliveries()) >= seen_before + count,
        120,
        f"{count} rows delivered",
    )
    return max(d.at for d in receiver.deliveries() if d.processed) - start


def test_rows_for_a_fast_target_are_not_held_up_by_a_target_taking_two_seconds(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    fast_rows, slow_rows = 1000, 100
    slow_faults = Faults(latency_seconds=2.0)

    with (
        FaultReceiver(secret=SECRET, seed=5) as fast,
        FaultReceiver(secret=SECRET, faults=slow_faults, seed=6) as slow,
    ):
        env = worker_env(
            database_url,
            fast.url,
            OUTBOX_TARGET_URLS=f"json={slow.url}",
            OUTBOX_HTTP_TIMEOUT="10",  # the slow target answers in time, only slowly
            OUTBOX_LEASE_SECONDS="30",
        )
        with Fleet(env, tmp_path) as fleet:
            fleet.start()
            wait_for(lambda: bool(fleet.ready()), 30, "the worker started")
            written = typed_rows(store, 200, "default", "warm-up")
            time_to_deliver(fast, 0, 200, time.monotonic())
            start = time.monotonic()
            written |= typed_rows(store, fast_rows, "default", "alone")
            alone = time_to_deliver(fast, 200, fast_rows, start)
            start = time.monotonic()
            written |= typed_rows(store, slow_rows, "json", "slow")
            written |= typed_rows(store, fast_rows, "default", "beside the slow one")
            beside = time_to_deliver(fast, 200 + fast_rows, fast_rows, start)
            settle(store, timeout=120)
            codes = fleet.stop_all()
        deliveries = fast.deliveries() + slow.deliveries()

    tally = assert_invariants(store, written, deliveries, held_at_faults=0)
    report(
        f"slow-target[{database}]: {fast_rows} fast rows alone {alone:.2f} s, beside "
        f"{slow_rows} rows to a 2 s target {beside:.2f} s ({beside / alone:.2f} x), "
        f"{tally.figures()}"
    )
    assert codes == [0]
    assert beside <= 1.5 * alone + 1.0


def test_a_429_with_retry_after_pauses_that_target_while_the_others_keep_going(
    store: SqlOutboxStore, database_url: str, database: str, tmp_path: Path
) -> None:
    pause = 5

    with (
        # slow enough that its 400 rows are still going out when it starts to throttle (a fast
        # worker could otherwise deliver them all between two polls of the test)
        FaultReceiver(secret=SECRET, faults=Faults(latency_seconds=0.2), seed=7) as throttled,
        FaultReceiver(secret=SECRET, faults=Faults(latency_seconds=0.2), seed=8) as other,
    ):
        env = worker_env(database_url, throttled.url, OUTBOX_TARGET_URLS=f"json={other.url}")
        written = typed_rows(store, 400, "default", "throttled")
        written |= typed_rows(store, 1500, "json", "other")
        with Fleet(env, tmp_path) as fleet:
            fleet.start()
            wait_for(lambda: len(throttled.deliveries()) >= 20, 60, "the throttled target busy")
            throttled.faults = Faults(too_many=1.0, retry_after_seconds=pause)
            wait_for(lambda: any(d.outcome == "429" for d in throttled.deliveries()), 30, "a 429")
            throttled.faults = Faults()
            settle(store, timeout=120)
            codes = fleet.stop_all()
        to_throttled, to_other = throttled.deliveries(), other.deliveries()

    first_429 = min(d.at for d in to_throttled if d.outcome == "429")
    in_pause = [d for d in to_throttled if first_429 + 1.0 <= d.at < first_429 + pause]
    next_after = min((d.at for d in to_throttled if d.at >= first_429 + 1.0), default=0.0)
    others_meanwhile = [d for d in to_other if first_429 + 1.0 <= d.at < first_429 + pause]
    tally = assert_invariants(store, written, to_throttled + to_other, held_at_faults=0)
    report(
        f"retry-after[{database}]: {Counter(d.outcome for d in to_throttled)}, next request "
        f"{next_after - first_429:.2f} s after the first 429, {len(others_meanwhile)} to the "
        f"other target meanwhile, {tally.figures()}"
    )
    assert codes == [0]
    assert in_pause == []
    assert len(others_meanwhile) > 0
