"""Real worker processes and a real receiver for the runtime and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from adapters.sql.store import SqlOutboxStore

SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLXRoZS13b3JrZXItdGVzdHM="


def worker_env(database_url: str, target_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    env.update(
        OUTBOX_DATABASE_URL=database_url,
        OUTBOX_TARGET_URL=target_url,
        OUTBOX_SIGNING_SECRET=SECRET,
        OUTBOX_ALLOW_PRIVATE_TARGETS="true",
        OUTBOX_POLL_INTERVAL="0.2",
        OUTBOX_RETRY_BASE_SECONDS="0.05",
        OUTBOX_RETRY_MAX_SECONDS="0.5",
        OUTBOX_HTTP_TIMEOUT="2",
        OUTBOX_LEASE_SECONDS="5",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class WorkerProcess:
    """`outbox worker` (or another command) as a child process with its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path, command: str = "worker") -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", command],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_worker(env: dict[str, str], log_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(env, log_path)
    try:
        yield worker
    finally:
        if worker.process.poll() is None:
            worker.kill()


def wait_until(predicate: Callable[[], bool], timeout: float, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")


def receiver_stats(base_url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{base_url}/stats", timeout=5).json())


def states(store: SqlOutboxStore) -> dict[int, int]:
    overview = store.overview(_now(), dead_limit=0)
    return {state: overview.counts.get(state, 0) for state in (0, 1, 2, 3)}


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
