"""The dispatch pipeline: a claimer feeds a bounded queue, senders drain it, an acker batches.

Claims of the next batch overlap the sends of the last; at most `capacity` messages are held
(claimed and not yet acked) at any time, and nothing is kept about a message after its ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import attrs

from application.dispatcher import Dispatcher, Outcome, Settled, Summary
from application.observer import DispatchObserver, NullObserver
from application.target_pool import Target, TargetPool, TargetSettings
from domain import status
from domain.breaker import BreakerState, TargetHealth
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import Message

log = logging.getLogger(__name__)
_FAILURES = frozenset({Outcome.RETRIED, Outcome.DEAD, Outcome.INVALID})
_CRAWL_SECONDS = 0.5


@attrs.frozen(kw_only=True)
class PipelineSettings:
    poll_interval: float = 1.0
    flush_size: int = 500
    flush_seconds: float = 0.02
    capacity: int | None = None
    min_idle_seconds: float = 0.01
    failure_backoff_max: float = 30.0
    targets: TargetSettings = attrs.field(factory=TargetSettings)


class Pipeline:
    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: PipelineSettings,
        *,
        observer: DispatchObserver | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.observer = observer or NullObserver()
        self.summary = Summary()
        batch = dispatcher.settings.batch_size
        self.capacity = settings.capacity or 2 * batch + dispatcher.settings.concurrency
        self._rng = rng or random.Random()
        self._queue: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
        self._outstanding: dict[str, int] = {}
        self._lease_until: dict[str, datetime] = {}  # per claim, as of the last renewal
        self._staged: dict[str, list[Settled]] = {}
        self._staged_count = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._pool = TargetPool(
            settings.targets, dispatcher.targets.by_type, dispatcher.targets.default
        )
        self._backlog_bound = dispatcher.settings.concurrency
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_progress: Callable[[Summary], None] = lambda summary: None
        self.healthy = True

    def wake(self) -> None:
        """Claim now instead of waiting out the idle delay (e.g. on a PostgreSQL NOTIFY)."""
        self._wake.set()

    def held(self) -> int:
        return sum(self._outstanding.values())

    def tracked_claims(self) -> set[str]:
        """Tokens of claims with any per-claim state left: empty once every claim settled."""
        return {*self._outstanding, *self._lease_until, *self._staged}

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> Summary:
        """Dispatch until `stop` is set (or, with `until_idle`, until nothing is due)."""
        self._closing = False
        senders = [
            asyncio.create_task(self._send_loop())
            for _ in range(self.dispatcher.settings.concurrency)
        ]
        closing = asyncio.Event()
        acker = asyncio.create_task(self._ack_loop(closing))
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        try:
            await self._claim_loop(stop, until_idle)
        finally:
            self._closing = True
            self._release_queued()
            await self._queue.join()
            self._release_queued()
            for task in (*senders, heartbeat):
                task.cancel()
            closing.set()
            await acker
            await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.summary

    # --- claiming ------------------------------------------------------------

    async def _claim_loop(self, stop: asyncio.Event, until_idle: bool) -> None:
        batch = self.dispatcher.settings.batch_size
        idle = self.settings.min_idle_seconds
        failures = 0
        while not stop.is_set():
            limit = min(batch, self.capacity - self.held())
            if limit < min(batch, self.capacity // 2):
                await self._wait_any(stop, self._room, timeout=self.settings.poll_interval)
                continue
            try:
                claimed = await self._claim(limit)
                failures = 0
                self.healthy = True
            except Exception as error:
                failures += 1
                self.healthy = False
                delay = min(self.settings.failure_backoff_max, 0.1 * 2 ** min(failures, 10))
                log.warning("claim failed (%s); retrying in %.1f s", _describe(error), delay)
                await self._wait_any(stop, timeout=delay * (0.5 + self._rng.random() / 2))
                continue
            if claimed == limit:
                idle = self.settings.min_idle_seconds
                continue
            if until_idle and claimed == 0 and self.held() == 0:
                return
            wait = self._room if claimed == 0 and self.held() else self._wake
            await self._wait_any(
                stop, wait, self._wake, timeout=idle * (0.5 + self._rng.random() / 2)
            )
            idle = min(idle * 2, self.settings.poll_interval)

    async def _claim(self, limit: int) -> int:
        self._wake.clear()
        started = self.dispatcher.clock.now()
        claim = await asyncio.to_thread(self.dispatcher.claim, limit)
        if claim.messages:
            self._outstanding[claim.token] = len(claim.messages)
            self._lease_until[claim.token] = self.dispatcher.lease_until(started)
            for message in claim.messages:
                self._queue.put_nowait((claim.token, message))
        if claim.messages:
            log.info("claimed %d row(s) under lease %s", len(claim.messages), claim.token)
        self.summary.claimed += len(claim.messages)
        self.observer.claimed(len(claim.messages))
        self.observer.in_flight(self.held())
        return len(claim.messages)

    async def _wait_any(self, stop: asyncio.Event, *events: asyncio.Event, timeout: float) -> None:
        waiters = [asyncio.create_task(e.wait()) for e in (stop, *events)]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._room.clear()

    # --- sending ---------------------------------------------------------------

    async def _send_loop(self) -> None:
        while True:
            token, message = await self._queue.get()
            try:
                await self._route(token, message)
            finally:
                self._queue.task_done()

    async def _route(self, token: str, message: Message) -> None:
        if self._closing or self._lapsed(token):  # another worker may have it: do not send it
            self._stage(token, self.dispatcher.release(message))
            return
        prepared = self.dispatcher.prepare(message)
        if isinstance(prepared, Settled):
            self._stage(token, prepared)
            return
        target = self._pool.of(prepared.url)
        now = self.dispatcher.clock.now()
        if not target.breaker.allows(now):
            self._stage(token, self._held_back(message, target, now))
        elif not self._pool.admits(target, now):
            self._queue_behind(token, message, prepared, target, now)
        else:
            await self._transmit(token, message, prepared, target)
            await self._drain(target)

    def _queue_behind(
        self, token: str, message: Message, prepared: DeliveryRequest, target: Target, now: datetime
    ) -> None:
        """A target at its limit: its rows wait here without holding a sender. A target that
        crawls (answers slower than half a second on average) gets what exceeds its share of
        the claim capacity sent back to the table, due when its backlog should have drained,
        so it cannot crowd out the rows of other targets; a faster one keeps them, as they
        will be gone in a moment (and latency measured under load is too noisy to tell more)."""
        share = max(self._backlog_bound, self.capacity // self._pool.busy(now))
        if len(target.backlog) < share or (target.latency or 0.0) < _CRAWL_SECONDS:
            target.backlog.append((token, message, prepared))
            return
        # whole seconds, so the rows sent back together share one statement
        until = now.replace(microsecond=0) + timedelta(seconds=1 + math.ceil(target.backlog_wait()))
        self._stage(
            token, self._deferred(message, target, "busy (at its concurrency limit)", until)
        )

    async def _drain(self, target: Target) -> None:
        while target.backlog and not self._closing:
            now = self.dispatcher.clock.now()
            if not target.breaker.allows(now):
                self._hold_backlog(target, now)
                return
            if not self._pool.admits(target, now):
                return
            token, message, prepared = target.backlog.popleft()
            if self._lapsed(token):
                self._stage(token, self.dispatcher.release(message))
                continue
            await self._transmit(token, message, prepared, target)

    async def _transmit(
        self, token: str, message: Message, prepared: DeliveryRequest, target: Target
    ) -> None:
        now = self.dispatcher.clock.now()
        before, was_paused = target.breaker.state, target.breaker.paused
        target.breaker = target.breaker.begin(now)
        self._transition(target, before, now, paused=was_paused)
        target.in_flight += 1
        self.observer.target_load(target.key, target.in_flight, int(target.limit))
        try:
            settled = await self.dispatcher.transmit(message, prepared)
        except Exception as error:  # never lose track of a claimed row: hand it back
            log.exception("delivering message %d failed unexpectedly: %s", message.id, error)
            settled = self.dispatcher.release(message)
        finally:
            target.in_flight -= 1
        if settled.attempt is not None:
            self._answered(target, settled.attempt.result)
            if target.resumes_on(message.status, settled.attempt.result, now):
                self._resume(target.key, held_back_only=False)
        self._stage(token, settled)

    def _answered(self, target: Target, result: DeliveryResult) -> None:
        now = self.dispatcher.clock.now()
        before, was_paused = target.breaker.state, target.breaker.paused
        target.breaker = target.breaker.record(result, now)
        target.adapt(result, self._pool.cap(now))
        target.active_at = now
        self.observer.target_answered(target.key, result)
        self.observer.target_load(target.key, target.in_flight, int(target.limit))
        self._transition(target, before, now, paused=was_paused)

    def _transition(
        self, target: Target, before: BreakerState, now: datetime, *, paused: bool
    ) -> None:
        """Report the target's health when its breaker changed (or was never reported)."""
        after = target.breaker.state
        if after is not before or not target.reported:
            target.reported = True
            self._report(target.health(self._pool.cap(now), now))
        if after is not before:
            self._breaker_changed(target, before, now, paused=paused)

    def _breaker_changed(
        self, target: Target, before: BreakerState, now: datetime, *, paused: bool
    ) -> None:
        breaker = target.breaker
        if breaker.state is BreakerState.CLOSED:
            log.info("target %s is healthy again: circuit closed", target.key)
            # after an outage its rows in retry backoff go too; after a Retry-After pause only
            # those held back, so no row goes before the Retry-After it was given
            self._resume(target.key, held_back_only=paused)
            target.resumed(now)
        elif breaker.state is BreakerState.OPEN:
            if before is BreakerState.CLOSED:
                log.warning(
                    "target %s is unavailable (%s): circuit open, its rows wait until %s",
                    target.key,
                    breaker.last_error,
                    breaker.resumes_at(now).isoformat(timespec="seconds"),
                )
            self._hold_backlog(target, now)

    def _hold_backlog(self, target: Target, now: datetime) -> None:
        while target.backlog:
            token, message, _ = target.backlog.popleft()
            self._stage(token, self._held_back(message, target, now))

    def _held_back(self, message: Message, target: Target, now: datetime) -> Settled:
        until, probe = target.hold(now)
        kept = status.KEPT_TO_PROBE if probe else ""  # first, so no cut of a long line drops it
        reason = f"unavailable{kept} (circuit open: {target.breaker.last_error})"
        return self._deferred(message, target, reason, until)

    def _deferred(self, message: Message, target: Target, reason: str, until: datetime) -> Settled:
        made = max(message.attempts - 1, 0)
        line = status.waiting(
            target.key,
            f"{reason}, {made} of {self.dispatcher.policy.max_attempts} attempts made",
            until,
        )
        return Settled(message=message.defer(until, line), outcome=Outcome.DEFERRED)

    def _report(self, health: TargetHealth) -> None:
        """Metrics now; the table for `outbox status` in the background (best effort)."""
        self.observer.target_changed(health)
        health = attrs.evolve(health, reported_by=self.dispatcher.settings.owner)

        async def write() -> None:
            try:
                await asyncio.to_thread(self.dispatcher.store.report_target, health)
            except Exception as error:
                log.warning(
                    "recording the health of %s failed (%s)", health.target, _describe(error)
                )

        self._background(write())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _resume(self, key: str, *, held_back_only: bool) -> None:
        types, excluding = self._pool.message_types(key)
        now = self.dispatcher.clock.now()

        async def resume() -> None:
            try:
                count = await asyncio.to_thread(
                    self.dispatcher.store.resume,
                    now,
                    types=types,
                    excluding=excluding,
                    held_back_only=held_back_only,
                )
            except Exception as error:
                log.warning("resuming rows for %s failed (%s)", key, _describe(error))
                return
            log.info("target %s: %d waiting row(s) due again", key, count)
            self.wake()

        self._background(resume())

    def _lapsed(self, token: str) -> bool:
        until = self._lease_until.get(token)
        return until is not None and self.dispatcher.clock.now() >= until

    def _release_queued(self) -> None:
        while not self._queue.empty():
            token, message = self._queue.get_nowait()
            self._stage(token, self.dispatcher.release(message))
            self._queue.task_done()
        for target in self._pool.all():
            while target.backlog:
                token, message, _ = target.backlog.popleft()
                self._stage(token, self.dispatcher.release(message))

    def _stage(self, token: str, settled: Settled) -> None:
        self._staged.setdefault(token, []).append(settled)
        self._staged_count += 1
        if self._staged_count >= self.settings.flush_size:
            self._flush_now.set()

    # --- acking ------------------------------------------------------------------

    async def _ack_loop(self, closing: asyncio.Event) -> None:
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self.settings.flush_seconds)
            self._flush_now.clear()
            if await self._flush():
                failures = 0
            else:
                failures += 1
                await asyncio.sleep(
                    min(self.settings.failure_backoff_max, 0.1 * 2 ** min(failures, 10))
                )
            if closing.is_set() and (not self._staged or failures >= 5):
                return

    async def _flush(self) -> bool:
        if not self._staged:
            return True
        batches, self._staged, self._staged_count = self._staged, {}, 0
        try:
            refused = await asyncio.to_thread(self._ack_all, batches)
        except Exception as error:
            log.warning("ack failed (%s); will retry", _describe(error))
            for token, items in batches.items():
                self._staged.setdefault(token, []).extend(items)
                self._staged_count += len(items)
            self.healthy = False
            return False
        self._acked(batches, refused)
        return True

    def _ack_all(self, batches: dict[str, list[Settled]]) -> list[Settled]:
        refused: list[Settled] = []
        for token, items in batches.items():
            deferred = [item for item in items if item.outcome is Outcome.DEFERRED]
            rest = [item for item in items if item.outcome is not Outcome.DEFERRED]
            if rest:
                refused += self.dispatcher.ack(token, rest)
            if deferred:
                refused += self._defer(token, deferred)
        return refused

    def _defer(self, token: str, items: list[Settled]) -> list[Settled]:
        """One statement per (time, line): rows held back together share both."""
        groups: dict[tuple[datetime | None, str | None], list[Settled]] = {}
        for item in items:
            groups.setdefault((item.message.next_attempt_at, item.message.status), []).append(item)
        refused: list[Settled] = []
        for (until, line), group in groups.items():
            assert until is not None
            result = self.dispatcher.store.defer(token, [i.message.id for i in group], until, line)
            lost = set(result.refused_ids)
            refused += [item for item in group if item.message.id in lost]
        return refused

    def target_health(self) -> list[TargetHealth]:
        """This worker's view of each target it has sent to."""
        now = self.dispatcher.clock.now()
        cap = self._pool.cap(now)
        return [target.health(cap, now) for target in self._pool.all()]

    def _acked(self, batches: dict[str, list[Settled]], refused: list[Settled]) -> None:
        lost = {id(item) for item in refused}
        for token, items in batches.items():
            left = self._outstanding.get(token, 0) - len(items)
            if left > 0:
                self._outstanding[token] = left
            else:
                self._outstanding.pop(token, None)
                self._lease_until.pop(token, None)
            written = [item for item in items if id(item) not in lost]
            self.summary.count(written)
            for item in written:
                self.observer.settled(item)
                if item.outcome in _FAILURES:
                    log.warning("message %d %s", item.message.id, item.message.status)
        self.summary.refused += len(refused)
        self.healthy = True
        self.observer.in_flight(self.held())
        self._room.set()
        self.on_progress(self.summary)

    # --- leases ---------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        interval = self.dispatcher.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            tokens = list(self._outstanding)
            if tokens:
                try:
                    until = self.dispatcher.lease_until(self.dispatcher.clock.now())
                    renewed = await asyncio.to_thread(self._renew, tokens, until)
                except Exception as error:
                    log.warning("lease renewal failed (%s)", _describe(error))
                    continue
                for token in renewed:
                    if token in self._lease_until:
                        self._lease_until[token] = until

    def _renew(self, tokens: list[str], until: datetime) -> list[str]:
        """Renew each claim's lease; returns the tokens that still held rows."""
        return [token for token in tokens if self.dispatcher.store.renew(token, until)]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
