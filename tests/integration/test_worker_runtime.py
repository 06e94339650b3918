"""A real `outbox worker` process against SQLite and PostgreSQL and the local receiver."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from entrypoints.receiver import STATE, build_app
from tests.integration.http_servers import serving
from tests.integration.sql_stores import migrated_store
from tests.integration.worker_harness import (
    SECRET,
    running_worker,
    states,
    wait_until,
    worker_env,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def store(database_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(database_url)
    yield store
    store.close()


@pytest.fixture
def receiver() -> Iterator[tuple[str, object]]:
    app = build_app(secret=SECRET)
    with serving(app) as base_url:
        yield base_url, app[STATE]


def enqueue(store: SqlOutboxStore, count: int, users: int = 1, body: str = "hello") -> list[int]:
    return store.enqueue(
        [NewMessage(user_id=1 + i % users, body=f"{body} {i}") for i in range(count)]
    )


def test_rows_enqueued_while_the_worker_runs_are_all_delivered_and_sigterm_exits_cleanly(
    store: SqlOutboxStore, database_url: str, receiver: tuple[str, object], tmp_path: Path
) -> None:
    base_url, state = receiver
    env = worker_env(database_url, f"{base_url}/hooks")

    with running_worker(env, tmp_path / "worker.log") as worker:
        enqueue(store, 300)
        wait_until(lambda: states(store)[0] >= 100, 30, "first rows sent")
        enqueue(store, 300)
        wait_until(lambda: states(store)[0] == 600, 60, "all rows sent")
        enqueue(store, 2000)  # still streaming when the signal arrives
        time.sleep(0.3)
        worker.signal(signal.SIGTERM)
        code = worker.wait(timeout=20)

    assert code == 0, worker.output()
    assert states(store)[2] == 0
    assert state.bad_signatures == 0  # type: ignore[attr-defined]
    assert state.received >= states(store)[0]  # type: ignore[attr-defined]


def test_per_user_ordering_delivers_each_users_messages_in_id_order_despite_failures(
    store: SqlOutboxStore, database_url: str, tmp_path: Path
) -> None:
    ids = enqueue(store, 120, users=6)
    user_of = {message_id: 1 + i % 6 for i, message_id in enumerate(ids)}
    app = build_app(secret=SECRET, fail_rate=0.3)

    with serving(app) as base_url:
        env = worker_env(
            database_url, f"{base_url}/hooks", OUTBOX_ORDERING="per-user", OUTBOX_MAX_ATTEMPTS="50"
        )
        with running_worker(env, tmp_path / "worker.log") as worker:
            wait_until(lambda: states(store)[0] == 120, 90, "all rows sent")
            assert worker.stop() == 0

    accepted = [int(str(d.message_id)) for d in app[STATE].deliveries if d.status == 200]
    for user in range(1, 7):
        mine = [m for m in accepted if user_of[m] == user]
        assert mine == sorted(mine), f"user {user} out of order: {mine}"


@pytest.mark.postgres
def test_an_idle_worker_wakes_on_notify_faster_than_its_poll_interval(
    pg_url: str, receiver: tuple[str, object], tmp_path: Path
) -> None:
    store = migrated_store(pg_url)
    base_url, _ = receiver
    env = worker_env(pg_url, f"{base_url}/hooks", OUTBOX_POLL_INTERVAL="30")

    with running_worker(env, tmp_path / "worker.log") as worker:
        enqueue(store, 1)
        wait_until(lambda: states(store)[0] == 1, 20, "first row sent")  # the start-up claim
        time.sleep(7.0)  # idle long enough for the polling backoff to reach several seconds
        started = time.monotonic()
        enqueue(store, 1)
        wait_until(lambda: states(store)[0] == 2, 20, "woken row sent")
        waited = time.monotonic() - started
        assert worker.stop() == 0

    assert waited < 1.0, f"took {waited:.1f} s: NOTIFY did not wake the idle worker"
    store.close()


@pytest.mark.postgres
def test_the_worker_survives_its_database_connections_being_terminated(
    pg_url: str, receiver: tuple[str, object], tmp_path: Path
) -> None:
    store = migrated_store(pg_url)
    base_url, _ = receiver
    env = worker_env(pg_url, f"{base_url}/hooks")

    with running_worker(env, tmp_path / "worker.log") as worker:
        enqueue(store, 200)
        wait_until(lambda: states(store)[0] == 200, 30, "first rows sent")
        _terminate_backends_of(store, worker.pid)
        enqueue(store, 200)
        wait_until(lambda: states(store)[0] == 400, 60, "rows after the outage sent")
        assert worker.stop() == 0, worker.output()

    assert states(store)[2] == 0
    store.close()


def test_the_worker_survives_a_locked_sqlite_database(
    sqlite_url: str, receiver: tuple[str, object], tmp_path: Path
) -> None:
    store = migrated_store(sqlite_url)
    base_url, _ = receiver
    env = worker_env(sqlite_url, f"{base_url}/hooks")

    with running_worker(env, tmp_path / "worker.log") as worker:
        enqueue(store, 100)
        wait_until(lambda: states(store)[0] == 100, 30, "first rows sent")
        with store.engine.connect() as blocker:
            blocker.exec_driver_sql("COMMIT")  # leave SQLAlchemy's BEGIN IMMEDIATE
            blocker.exec_driver_sql("BEGIN EXCLUSIVE")
            time.sleep(3)
            blocker.exec_driver_sql("ROLLBACK")
        enqueue(store, 100)
        wait_until(lambda: states(store)[0] == 200, 60, "rows after the lock sent")
        assert worker.stop() == 0, worker.output()
    store.close()


def test_healthz_and_metrics_answer_and_count_what_the_receiver_saw(
    sqlite_url: str, receiver: tuple[str, object], tmp_path: Path
) -> None:
    from tests.integration.http_servers import closed_port

    store = migrated_store(sqlite_url)
    base_url, state = receiver
    port = closed_port()
    env = worker_env(sqlite_url, f"{base_url}/hooks", OUTBOX_METRICS_PORT=str(port))

    with running_worker(env, tmp_path / "worker.log") as worker:
        enqueue(store, 50)
        store.enqueue([NewMessage(user_id=1, body="")])
        wait_until(lambda: states(store)[1] == 0 and states(store)[2] == 0, 30, "rows settled")
        wait_until(lambda: _reachable(port), 10, "metrics port")
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert worker.stop() == 0

    assert health.status_code == 200
    assert 'outbox_messages_total{outcome="sent"} 50.0' in metrics
    assert 'outbox_messages_total{outcome="invalid"} 1.0' in metrics
    assert "outbox_messages_claimed_total 51.0" in metrics
    for name in (
        "outbox_send_latency_seconds_bucket",
        "outbox_claim_batch_size_bucket",
        "outbox_oldest_pending_age_seconds",
        "outbox_in_flight",
    ):
        assert name in metrics
    assert state.received == 50  # type: ignore[attr-defined]
    assert SECRET not in metrics
    store.close()


def _reachable(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 503)
    except httpx.HTTPError:
        return False


def _terminate_backends_of(store: SqlOutboxStore, worker_pid: int) -> None:
    with store.engine.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = :name"
            ),
            {"name": f"outbox-dispatcher/{worker_pid}"},
        ).scalar_one()
    assert ended >= 1
