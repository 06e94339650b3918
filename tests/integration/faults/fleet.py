"""Worker processes a scenario starts, kills, stops and watches; and the rows it feeds them."""

from __future__ import annotations

import random
import signal
import socket
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from tests.integration.faults.invariants import Snapshot, upstream
from tests.integration.worker_harness import WorkerProcess, worker_env

Completed = subprocess.CompletedProcess[str]
# Short enough for a scenario to see leases expire and retries happen within seconds.
FAULT_SETTINGS = {
    "OUTBOX_BATCH_SIZE": "50",
    "OUTBOX_CONCURRENCY": "16",
    "OUTBOX_LEASE_SECONDS": "4",
    "OUTBOX_HTTP_TIMEOUT": "2",
    "OUTBOX_CONNECT_TIMEOUT": "1",
    "OUTBOX_MAX_ATTEMPTS": "30",
    "OUTBOX_RETRY_BASE_SECONDS": "0.05",
    "OUTBOX_RETRY_MAX_SECONDS": "1",
}
BATCH = int(FAULT_SETTINGS["OUTBOX_BATCH_SIZE"])
CONCURRENCY = int(FAULT_SETTINGS["OUTBOX_CONCURRENCY"])
TOP_UP = 1000
CAPACITY = 2 * BATCH + CONCURRENCY  # most rows one worker holds at once (the pipeline's bound)


def fault_env(database_url: str, target_url: str, **extra: str) -> dict[str, str]:
    return worker_env(database_url, target_url, **(FAULT_SETTINGS | extra))


class Fleet:
    """The workers of one scenario; whatever is still running at the end is killed."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[WorkerProcess] = []

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.alive():
            worker.kill()

    def start(self, **extra: str) -> WorkerProcess:
        log = self.log_dir / f"worker-{len(self.started) + 1}.log"
        worker = WorkerProcess(self.env | extra, log)
        self.started.append(worker)
        return worker

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.started if w.process.poll() is None]

    def ready(self) -> list[WorkerProcess]:
        """Running workers past start-up: their signal handlers are installed."""
        return [w for w in self.alive() if "started mode=" in w.output()]

    def stop_all(self, timeout: float = 30.0) -> list[int]:
        # A worker still importing (the first ~0.1 s) has no handler yet and dies by SIGTERM.
        deadline = time.monotonic() + timeout
        while set(self.alive()) - set(self.ready()) and time.monotonic() < deadline:
            time.sleep(0.05)
        running = self.alive()
        for worker in running:
            worker.signal(signal.SIGTERM)
        return [worker.wait(timeout) for worker in running]

    def logs(self) -> str:
        return "\n".join(w.output() for w in self.started)


def owner(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}"


def held_by(store: SqlOutboxStore, pid: int) -> int:
    """Rows in flight under a lease of this worker: all it could send again after a crash."""
    t = store.table.c
    query = select(func.count()).where(t.ToSend == 2, t.LeaseOwner == owner(pid))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def feed(store: SqlOutboxStore, count: int, label: str, users: int = 50, seed: int = 1) -> Snapshot:
    """Enqueue `count` rows of varied text, 5,000 per transaction; returns what was written."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + " éß€😀\t"
    written: Snapshot = {}
    for start in range(0, count, 5000):
        batch = [
            NewMessage(
                user_id=1 + i % users,
                body=f"{label} {i} " + "".join(rng.choices(alphabet, k=rng.randint(0, 60))),
            )
            for i in range(start, min(count, start + 5000))
        ]
        for row_id, m in zip(store.enqueue(batch), batch, strict=True):
            written[row_id] = upstream(m.user_id, m.body, m.message_type)
    return written


def top_up(store: SqlOutboxStore, written: Snapshot, round_: int) -> None:
    """Upstream keeps inserting while faults happen, so the rows never run out mid-scenario."""
    if store.unfinished() < TOP_UP:
        written.update(feed(store, TOP_UP, f"top-up {round_}", seed=100 + round_))


def settle(store: SqlOutboxStore, timeout: float, poll: float = 0.25) -> None:
    """Wait until no row is pending or in flight."""
    wait_for(lambda: store.unfinished() == 0, timeout, "every row sent or dead", poll)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> Completed:
    """`outbox <args>` as its own process: exit code, stdout and stderr."""
    return subprocess.run(
        [sys.executable, "-m", "entrypoints", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
