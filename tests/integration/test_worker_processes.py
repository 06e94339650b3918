"""`outbox worker --processes N`: real supervisor, real children, a real receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from tests.integration.http_servers import serving
from tests.integration.sql_stores import migrated_store
from tests.integration.worker_harness import (
    WorkerProcess,
    states,
    wait_until,
    worker_env,
)

RECEIVED = web.AppKey("received", list)


class SlowReceiver:
    """Answers 200 after a short pause, so that each child holds rows in flight."""

    def __init__(self, base_url: str, received: list[int]) -> None:
        self.url = f"{base_url}/hooks"
        self.received = received

    def counts(self) -> Counter[int]:
        return Counter(self.received)


@pytest.fixture
def receiver() -> Iterator[SlowReceiver]:
    async def hook(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        await asyncio.sleep(0.05)
        request.app[RECEIVED].append(int(body["id"]))
        return web.Response(status=200)

    app = web.Application()
    app[RECEIVED] = []
    app.router.add_post("/hooks", hook)
    with serving(app) as base_url:
        yield SlowReceiver(base_url, app[RECEIVED])


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url"))


@pytest.fixture
def store(database_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(database_url)
    yield store
    store.close()


def enqueue(store: SqlOutboxStore, count: int) -> list[int]:
    return store.enqueue([NewMessage(user_id=1 + i % 7, body=f"hello {i}") for i in range(count)])


@pytest.fixture
def started() -> Iterator[list[WorkerProcess]]:
    """Supervisors still running when a test fails are killed (their children follow)."""
    processes: list[WorkerProcess] = []
    yield processes
    for process in processes:
        if process.process.poll() is None:
            process.kill()


def supervisor(
    started: list[WorkerProcess], env: dict[str, str], log: Path, processes: int
) -> WorkerProcess:
    started.append(WorkerProcess(env | {"OUTBOX_PROCESSES": str(processes)}, log))
    return started[-1]


def running_supervisor(
    started: list[WorkerProcess], env: dict[str, str], log: Path, processes: int
) -> WorkerProcess:
    """A supervisor whose children are all up (healthy), so that each one gets rows."""
    worker = supervisor(started, env, log, processes)
    port = int(env["OUTBOX_METRICS_PORT"])
    wait_until(lambda: _get(port, "/healthz").status_code == 200, 120, "all children healthy")
    return worker


def small_batches(database_url: str, receiver: SlowReceiver, **extra: str) -> dict[str, str]:
    """Batches small enough that every child gets rows; a short lease for the crash test."""
    return worker_env(
        database_url,
        receiver.url,
        OUTBOX_METRICS_PORT=str(_free_port()),
        OUTBOX_BATCH_SIZE="20",
        OUTBOX_CONCURRENCY="8",
        OUTBOX_HTTP_TIMEOUT="1",
        OUTBOX_LEASE_SECONDS="2",
        **extra,
    )


def owners_while_sending(store: SqlOutboxStore, until_sent: int, timeout: float) -> set[str]:
    """The lease owners seen holding rows until `until_sent` rows are sent."""
    seen: set[str] = set()

    def sent_all() -> bool:
        seen.update(store.overview(_now(), dead_limit=0).leases)
        return states(store)[0] >= until_sent

    wait_until(sent_all, timeout, f"{until_sent} rows sent")
    return seen


def test_n_worker_processes_deliver_every_row_once_and_sigterm_exits_0_with_nothing_in_flight(
    store: SqlOutboxStore,
    database_url: str,
    receiver: SlowReceiver,
    tmp_path: Path,
    started: list[WorkerProcess],
) -> None:
    env = small_batches(database_url, receiver)
    worker = running_supervisor(started, env, tmp_path / "w.log", 3)

    ids = enqueue(store, 400)
    owners = owners_while_sending(store, 400, 90)
    more = enqueue(store, 400)  # still streaming when the signal arrives
    wait_until(lambda: states(store)[2] > 0, 30, "rows in flight")
    worker.signal(signal.SIGTERM)
    code = worker.wait(timeout=30)

    assert code == 0, worker.output()
    assert len(owners) == 3
    assert states(store)[2] == 0
    counts = receiver.counts()
    assert all(counts[i] == 1 for i in ids)
    assert max(counts.values()) == 1
    assert states(store)[0] == len(counts) > len(ids)
    assert set(counts) <= set(ids) | set(more)


def test_a_killed_worker_process_is_restarted_and_its_rows_are_delivered_after_its_lease(
    sqlite_url: str,
    receiver: SlowReceiver,
    tmp_path: Path,
    started: list[WorkerProcess],
) -> None:
    store = migrated_store(sqlite_url)
    env = small_batches(sqlite_url, receiver)
    worker = running_supervisor(started, env, tmp_path / "w.log", 2)
    ids = enqueue(store, 600)
    try:
        wait_until(lambda: len(store.overview(_now(), 0).leases) == 2, 60, "two children claiming")
        victim, held = next(iter(store.overview(_now(), 0).leases.items()))
        os.kill(int(victim.rsplit(":", 1)[1]), signal.SIGKILL)

        wait_until(lambda: states(store)[0] == 600, 90, "every row sent")
        port = int(env["OUTBOX_METRICS_PORT"])
        wait_until(lambda: _get(port, "/healthz").status_code == 200, 120, "the restarted child")
        code = worker.stop(timeout=30)
    finally:
        store.close()

    assert code == 0, worker.output()
    assert held > 0
    assert set(receiver.counts()) == set(ids)
    assert "was killed by SIGKILL; restarting" in worker.output()
    assert worker.output().count("started mode=worker") == 3


def test_one_metrics_endpoint_adds_up_the_worker_processes_and_healthz_is_ok(
    sqlite_url: str,
    receiver: SlowReceiver,
    tmp_path: Path,
    started: list[WorkerProcess],
) -> None:
    store = migrated_store(sqlite_url)
    env = small_batches(sqlite_url, receiver)
    port = int(env["OUTBOX_METRICS_PORT"])
    worker = running_supervisor(started, env, tmp_path / "w.log", 2)
    enqueue(store, 300)
    try:
        owners = owners_while_sending(store, 300, 90)
        metrics = _metrics_once(port, 'outbox_messages_total{outcome="sent"} 300.0')
        code = worker.stop(timeout=30)
    finally:
        store.close()

    assert code == 0, worker.output()
    assert len(owners) == 2
    assert 'outbox_messages_total{outcome="sent"} 300.0' in metrics
    assert "outbox_messages_claimed_total 300.0" in metrics
    assert "outbox_worker_processes 2.0" in metrics
    assert metrics.count("outbox_worker_heartbeat_timestamp_seconds{pid=") == 2


def test_healthz_is_unhealthy_while_a_worker_process_is_missing(
    sqlite_url: str,
    receiver: SlowReceiver,
    tmp_path: Path,
    started: list[WorkerProcess],
) -> None:
    migrated_store(sqlite_url).close()
    env = small_batches(sqlite_url, receiver)
    port = int(env["OUTBOX_METRICS_PORT"])
    worker = running_supervisor(started, env, tmp_path / "w.log", 2)
    child = _children(worker.pid)[0]

    os.kill(child, signal.SIGKILL)
    wait_until(lambda: _get(port, "/healthz").status_code == 503, 10, "unhealthy")
    wait_until(lambda: _get(port, "/healthz").status_code == 200, 60, "healthy again")
    code = worker.stop(timeout=30)

    assert code == 0, worker.output()


def test_a_configuration_error_exits_2_once_with_one_line_and_starts_no_child(
    sqlite_url: str,
    receiver: SlowReceiver,
    tmp_path: Path,
    started: list[WorkerProcess],
) -> None:
    env = small_batches(sqlite_url, receiver, OUTBOX_TABLE="NoSuchTable")
    worker = supervisor(started, env, tmp_path / "w.log", 3)

    code = worker.wait(timeout=60)

    assert code == 2
    lines = worker.output().strip().splitlines()
    assert lines == [
        "outbox: error: table 'NoSuchTable' does not exist: run `outbox migrate` first"
    ]


def test_a_bad_process_count_is_one_line_naming_the_variable(
    sqlite_url: str,
    receiver: SlowReceiver,
    tmp_path: Path,
    started: list[WorkerProcess],
) -> None:
    worker = supervisor(started, small_batches(sqlite_url, receiver), tmp_path / "w.log", 0)

    code = worker.wait(timeout=60)

    assert code == 2
    assert worker.output().strip() == (
        "outbox: error: OUTBOX_PROCESSES must be auto or a number between 1 and 256, got '0'"
    )


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _metrics_once(port: int, line: str) -> str:
    """The /metrics text once it holds `line` (a child counts just after it writes the ack)."""
    wait_until(lambda: line in _get(port, "/metrics").text, 30, line)
    return _get(port, "/metrics").text


def _get(port: int, path: str) -> httpx.Response:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.TransportError:
        return httpx.Response(599)


def _free_port() -> int:
    from tests.integration.http_servers import closed_port

    return closed_port()


def _now() -> datetime:
    return datetime.now(UTC)
