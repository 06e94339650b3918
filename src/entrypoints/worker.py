"""The worker runtime: preflight checks, the pipeline, signals, metrics, NOTIFY, maintenance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from aiohttp import web

from adapters.sql.migrate import check_schema
from adapters.ssrf_guard import check_target
from application.dispatcher import Summary
from application.pipeline import Pipeline
from application.ports import OutboxStore
from entrypoints.allocator import limit_arenas, release_free_memory
from entrypoints.container import Container, hold_sender_pool, release
from entrypoints.metrics import Liveness, PrometheusObserver, metrics_app

log = logging.getLogger("outbox.worker")
Mode = Literal["worker", "drain", "settle"]
T = TypeVar("T")
MAINTENANCE_SECONDS = 5.0
PRUNE_EVERY = 720  # maintenance rounds: about an hour


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where it is installed (10-20 % more messages per CPU second here)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def preflight(container: Container) -> None:
    """Everything that must hold before the first claim; raises with one clear line."""
    settings = container.settings()
    dispatcher = container.dispatcher()
    for url in {dispatcher.targets.default, *dispatcher.targets.by_type.values()}:
        check_target(url, allow_private=settings.allow_private_targets)
    if settings.database_url != "memory://":
        check_schema(container.engine(), settings.table)


async def run(
    container: Container,
    mode: Mode = "worker",
    on_progress: Callable[[Summary], None] | None = None,
    stop: asyncio.Event | None = None,
) -> Summary:
    limit_arenas()  # before the SQL threads start: each would grow a heap of its own
    preflight(container)
    settings = container.settings()
    pipeline: Pipeline = container.pipeline()
    observer = PrometheusObserver()
    # a drain serving no /metrics has no reader of the per-message series: they would only
    # cost CPU, so its pipeline keeps the null observer (a worker's children are read by
    # the supervisor even without a port)
    if mode == "worker" or settings.metrics_port:
        pipeline.observer = observer
    if on_progress is not None:
        pipeline.on_progress = on_progress
    stop = stop or asyncio.Event()
    liveness = Liveness(stale_after=max(30.0, 3 * settings.poll_interval))
    _install_signals(stop)
    beat = _heartbeat(observer, lambda: pipeline.healthy)
    helpers = [asyncio.create_task(_maintain(container, observer, liveness, beat))]
    if supports := _supports_notify(settings.database_url):
        from adapters.sql import notify

        helpers.append(
            asyncio.create_task(notify.listen(settings.database_url, settings.table, pipeline.wake))
        )
    runner = await _serve_metrics(
        settings.metrics_port, observer, lambda: pipeline.healthy and liveness.alive()
    )
    log.info(
        "started mode=%s owner=%s batch=%d concurrency=%d notify=%s",
        mode,
        container.dispatcher().settings.owner,
        settings.batch_size,
        settings.concurrency,
        supports,
    )
    await hold_sender_pool(container)
    try:
        return await _dispatch(container, pipeline, mode, stop)
    finally:
        await _close(container, helpers, runner)


def _supports_notify(database_url: str) -> bool:
    """Imports the listener (and psycopg) only for PostgreSQL: the other stores start faster."""
    if not database_url.startswith("postgresql"):
        return False
    from adapters.sql import notify

    return notify.supports_notify(database_url)


async def _dispatch(
    container: Container, pipeline: Pipeline, mode: Mode, stop: asyncio.Event
) -> Summary:
    if mode == "worker":
        return await pipeline.run(stop)
    store = container.store()
    poll = container.settings().poll_interval
    while True:
        summary = await pipeline.run(stop, until_idle=True)
        if mode == "drain" or stop.is_set() or await asyncio.to_thread(store.unfinished) == 0:
            return summary
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll)


def _heartbeat(observer: PrometheusObserver, healthy: Callable[[], bool]) -> Callable[[], None]:
    """What `outbox worker --processes N` reads for its /healthz (see entrypoints.supervisor)."""
    return lambda: observer.heartbeat.set(time.time() if healthy() else 0.0)


async def _maintain(
    container: Container,
    observer: PrometheusObserver,
    liveness: Liveness,
    beat: Callable[[], None],
) -> None:
    store, clock = container.store(), container.clock()
    keep = timedelta(days=container.settings().history_days)
    rounds = 0
    while True:
        liveness.tick()
        beat()
        with contextlib.suppress(Exception):
            age = await asyncio.to_thread(store.oldest_due_age, clock.now())
            observer.oldest_pending.set(age or 0.0)
        if rounds % PRUNE_EVERY == 0:
            await _prune(store, clock.now() - keep)
        release_free_memory()
        rounds += 1
        await asyncio.sleep(MAINTENANCE_SECONDS)


async def _prune(store: OutboxStore, older_than: datetime) -> None:
    try:
        pruned = await asyncio.to_thread(store.prune_history, older_than)
        if pruned:
            log.info("pruned %d attempt history rows", pruned)
    except Exception as error:
        log.warning("pruning attempt history failed (%s)", type(error).__name__)


async def _serve_metrics(
    port: int, observer: PrometheusObserver, healthy: Callable[[], bool]
) -> web.AppRunner | None:
    if not port:
        return None
    runner = web.AppRunner(metrics_app(observer, healthy), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    log.info("metrics and health on :%d (/metrics, /healthz)", port)
    return runner


def _install_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning(
                "second %s: exiting now; leases return unfinished rows", signal.Signals(signum).name
            )
            os._exit(128 + signum)
        log.info("%s: no new claims; finishing in-flight messages", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)


async def _close(
    container: Container, helpers: list[asyncio.Task[None]], runner: web.AppRunner | None
) -> None:
    for task in helpers:
        task.cancel()
    await asyncio.gather(*helpers, return_exceptions=True)
    if runner is not None:
        await runner.cleanup()
    await _quietly(release(container))


async def _quietly(awaitable: Awaitable[None]) -> None:
    with contextlib.suppress(Exception):
        await awaitable
