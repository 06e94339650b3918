"""The claim loop: claims a batch whenever there is room, backs off when idle or failing.

At most `capacity` rows are held (claimed and not yet acked or deferred); the claimer waits
for an ack to make room, for a wake-up (a NOTIFY, a target resumed) or for its idle delay,
which doubles up to `poll_interval` while claims come back short.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING

from application.ack_buffer import AckBuffer, Health, failure_delay
from application.dispatcher import Dispatcher
from application.observer import DispatchObserver, NullObserver
from application.offload import Offload
from application.senders import Senders
from domain.errors import one_line

if TYPE_CHECKING:
    from application.pipeline import PipelineSettings

log = logging.getLogger(__name__)


class Claimer:
    def __init__(
        self,
        dispatcher: Dispatcher,
        acks: AckBuffer,
        senders: Senders,
        *,
        capacity: int,
        timing: PipelineSettings,
        offload: Offload,
        health: Health,
        rng: random.Random,
    ) -> None:
        self.dispatcher = dispatcher
        self.observer: DispatchObserver = NullObserver()
        self.capacity = capacity
        self._acks = acks
        self._senders = senders
        self._timing = timing
        self._offload = offload
        self._health = health
        self._rng = rng
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event, until_idle: bool) -> None:
        batch = self.dispatcher.settings.batch_size
        idle = self._timing.min_idle_seconds
        failures = 0
        while not stop.is_set():
            limit = min(batch, self.capacity - self._acks.held())
            if limit < min(batch, self.capacity // 2):
                await self._wait_any(stop, self._acks.room, timeout=self._timing.poll_interval)
                continue
            try:
                claimed = await self._claim(limit)
            except Exception as error:
                failures += 1
                await self._failed(stop, error, failures)
                continue
            failures = 0
            if claimed == limit:
                idle = self._timing.min_idle_seconds
                continue
            if until_idle and claimed == 0 and self._acks.held() == 0:
                return
            wait = self._acks.room if claimed == 0 and self._acks.held() else self._wake
            await self._wait_any(stop, wait, self._wake, timeout=self._jitter(idle))
            idle = min(idle * 2, self._timing.poll_interval)

    async def _claim(self, limit: int) -> int:
        self._wake.clear()
        started = self.dispatcher.clock.now()
        claim = await self._offload(self.dispatcher.claim, limit)
        self._health.ok = True
        if claim.messages:
            self._acks.track(claim, started)
            self._senders.submit(claim.token, claim.messages)
            log.info("claimed %d row(s) under lease %s", len(claim.messages), claim.token)
        self._acks.summary.claimed += len(claim.messages)
        self.observer.claimed(len(claim.messages))
        self.observer.in_flight(self._acks.held())
        return len(claim.messages)

    async def _failed(self, stop: asyncio.Event, error: Exception, failures: int) -> None:
        self._health.ok = False
        delay = failure_delay(failures, self._timing.failure_backoff_max)
        log.warning("claim failed (%s); retrying in %.1f s", one_line(error), delay)
        await self._wait_any(stop, timeout=self._jitter(delay))

    def _jitter(self, seconds: float) -> float:
        return seconds * (0.5 + self._rng.random() / 2)

    async def _wait_any(self, stop: asyncio.Event, *events: asyncio.Event, timeout: float) -> None:
        waiters = [asyncio.create_task(e.wait()) for e in (stop, *events)]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._acks.room.clear()
