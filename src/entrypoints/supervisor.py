"""`outbox worker --processes N`: N independent workers, restarted when they die, one /metrics.

Each child is a fresh interpreter (`python -m entrypoints worker`), so no engine, client or event
loop crosses a fork. The children count into prometheus_client's multiprocess files in a
directory of this run's own (removed on exit); the supervisor serves their sum on
OUTBOX_METRICS_PORT, and its /healthz is 200 only while every child runs and its heartbeat
(written by its maintenance loop while its pipeline is healthy) is fresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from entrypoints.container import MEMORY_URL, Container
from entrypoints.metrics import HEARTBEAT, metrics_app
from entrypoints.worker import preflight

log = logging.getLogger("outbox.supervisor")
STARTUP_ERROR = 2  # `outbox worker` exits 2 on a configuration, schema or target error
PR_SET_PDEATHSIG = 1
FIRST_BACKOFF, MAX_BACKOFF, STEADY_SECONDS = 1.0, 30.0, 60.0


@dataclass
class Slot:
    """One of the N places a worker process runs in; the process changes on a restart."""

    index: int
    process: asyncio.subprocess.Process | None = None
    signalled: int | None = None  # pid last sent the stop signal


class ChildMetrics:
    """The children's multiprocess files added up, plus the supervisor's own counters."""

    def __init__(self, directory: str, processes: int) -> None:
        self.directory = directory
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=directory)  # type: ignore[no-untyped-call]
        self.restarts = Counter(
            "outbox_worker_restarts",
            "Worker processes restarted after dying",
            registry=self.registry,
        )
        Gauge("outbox_worker_processes", "Worker processes configured", registry=self.registry).set(
            processes
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def heartbeats(self) -> dict[int, float]:
        """The latest heartbeat of each live child, by pid."""
        beats: dict[int, float] = {}
        collector = MultiProcessCollector(None, path=self.directory)  # type: ignore[no-untyped-call]
        for metric in collector.collect():  # type: ignore[no-untyped-call]
            if metric.name == HEARTBEAT:
                beats.update({int(s.labels["pid"]): s.value for s in metric.samples})
        return beats


class Supervisor:
    def __init__(
        self, processes: int, env: Mapping[str, str], metrics: ChildMetrics, stale_after: float
    ) -> None:
        self.slots = [Slot(index) for index in range(processes)]
        self.env = dict(env)
        self.metrics = metrics
        self.stale_after = stale_after
        self.stop = asyncio.Event()
        self.startup_error = False

    async def run(self) -> int:
        codes = await asyncio.gather(*(self._keep(slot) for slot in self.slots))
        if self.startup_error:
            return STARTUP_ERROR
        failed = next((code for code in codes if code != 0), 0)
        return 128 - failed if failed < 0 else failed  # killed by signal N: 128 + N, as a shell

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        again = self.stop.is_set()
        log.info(
            "%s: %s %d worker process(es)",
            name,
            "forwarding again to" if again else "no new claims; finishing in-flight messages in",
            len(self.slots),
        )
        self.stop.set()
        for slot in self.slots:
            self._signal(slot, signum, force=again)

    def healthy(self) -> bool:
        beats, now = self.metrics.heartbeats(), time.time()
        return all(
            slot.process is not None
            and slot.process.returncode is None
            and now - beats.get(slot.process.pid, 0.0) < self.stale_after
            for slot in self.slots
        )

    async def _keep(self, slot: Slot) -> int:
        backoff = FIRST_BACKOFF
        while not self.stop.is_set():
            started = time.monotonic()
            code = await self._run_child(slot)
            if self.stop.is_set():
                return code
            if code == STARTUP_ERROR:
                log.error("worker process %d stopped on a start-up error; stopping", slot.index)
                self.startup_error = True
                self.on_signal(signal.SIGTERM)
                return code
            backoff = FIRST_BACKOFF if time.monotonic() - started > STEADY_SECONDS else backoff
            log.warning(
                "worker process %d %s; restarting in %.0f s", slot.index, _ended(code), backoff
            )
            self.metrics.restarts.inc()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), backoff)
            backoff = min(MAX_BACKOFF, 2 * backoff)
        return 0

    async def _run_child(self, slot: Slot) -> int:
        slot.process = process = await asyncio.create_subprocess_exec(
            *CHILD_COMMAND, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )
        if self.stop.is_set():  # the signal came while it was starting
            self._signal(slot, signal.SIGTERM)
        code = await process.wait()
        mark_process_dead(process.pid, self.metrics.directory)  # type: ignore[no-untyped-call]
        return code

    def _signal(self, slot: Slot, signum: int, *, force: bool = False) -> None:
        process = slot.process
        if process is None or process.returncode is not None:
            return
        if force or slot.signalled != process.pid:
            slot.signalled = process.pid
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)


CHILD_COMMAND = (sys.executable, "-m", "entrypoints", "worker")


def _ended(code: int) -> str:
    return f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM it when the supervisor dies, even by SIGKILL,
    so that no worker outlives its supervisor unsupervised. A new session keeps a terminal's
    Ctrl-C from reaching the children twice (directly and forwarded)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def child_env(metrics_dir: str) -> dict[str, str]:
    """The supervisor's environment for a child: one process, no port of its own."""
    return os.environ | {
        "OUTBOX_PROCESSES": "1",
        "OUTBOX_METRICS_PORT": "0",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }


def check(container: Container) -> None:
    """Start-up errors once, in the supervisor, before any child starts."""
    from entrypoints.config import ConfigError

    settings = container.settings()
    if settings.database_url == MEMORY_URL:
        raise ConfigError("OUTBOX_PROCESSES above 1 needs a shared database, not memory://")
    try:
        preflight(container)
    finally:
        container.store().close()


async def supervise(container: Container, processes: int) -> int:
    """Run `processes` workers until SIGTERM/SIGINT; the exit code to leave with."""
    check(container)
    settings = container.settings()
    metrics_dir = tempfile.mkdtemp(prefix="outbox-metrics-")
    try:
        metrics = ChildMetrics(metrics_dir, processes)
        stale_after = max(30.0, 3 * settings.poll_interval)
        supervisor = Supervisor(processes, child_env(metrics_dir), metrics, stale_after)
        _install_signals(supervisor)
        runner = await _serve(settings.metrics_port, metrics, supervisor)
        log.info("started %d worker processes", processes)
        try:
            return await supervisor.run()
        finally:
            if runner is not None:
                await runner.cleanup()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _install_signals(supervisor: Supervisor) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, supervisor.on_signal, signum)


async def _serve(port: int, metrics: ChildMetrics, supervisor: Supervisor) -> web.AppRunner | None:
    if not port:
        return None
    runner = web.AppRunner(metrics_app(metrics, supervisor.healthy), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    log.info("metrics and health of all worker processes on :%d (/metrics, /healthz)", port)
    return runner
