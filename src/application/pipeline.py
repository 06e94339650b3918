"""The dispatch pipeline: a claimer feeds a bounded queue, senders drain it, an acker batches.

Claims of the next batch overlap the sends of the last; at most `capacity` messages are held
(claimed and not yet acked) at any time, and nothing is kept about a message after its ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from datetime import datetime

import attrs

from application.observer import DispatchObserver, NullObserver
from application.service import Dispatcher, Kind, Settled, Summary
from domain.model import Message

log = logging.getLogger(__name__)
_FAILURES = frozenset({Kind.RETRIED, Kind.DEAD, Kind.INVALID})


@attrs.frozen(kw_only=True)
class PipelineSettings:
    poll_interval: float = 1.0
    flush_size: int = 500
    flush_seconds: float = 0.02
    capacity: int | None = None
    min_idle_seconds: float = 0.01
    failure_backoff_max: float = 30.0


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
            self._release_queued()
            await self._queue.join()
            for task in (*senders, heartbeat):
                task.cancel()
            closing.set()
            await acker
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
                if self._lapsed(token):  # another worker may have it by now: do not send it too
                    self._stage(token, self.dispatcher.release(message))
                else:
                    self._stage(token, await self._deliver(message))
            finally:
                self._queue.task_done()

    def _lapsed(self, token: str) -> bool:
        until = self._lease_until.get(token)
        return until is not None and self.dispatcher.clock.now() >= until

    async def _deliver(self, message: Message) -> Settled:
        try:
            return await self.dispatcher.deliver(message)
        except Exception as error:  # never lose track of a claimed row: hand it back
            log.exception("delivering message %d failed unexpectedly: %s", message.id, error)
            return self.dispatcher.release(message)

    def _release_queued(self) -> None:
        while not self._queue.empty():
            token, message = self._queue.get_nowait()
            self._stage(token, self.dispatcher.release(message))
            self._queue.task_done()

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
        return [r for token, items in batches.items() for r in self.dispatcher.ack(token, items)]

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
                if item.kind in _FAILURES:
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
