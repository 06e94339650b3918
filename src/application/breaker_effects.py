"""What follows from a target's breaker: its health reported, its rows held back while it is
open (deferred without spending an attempt), and resumed at once when it closes again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from application.ack_buffer import AckBuffer
from application.dispatcher import Dispatcher, Outcome, Settled
from application.observer import DispatchObserver, NullObserver
from application.offload import Offload
from application.target_pool import Target, TargetPool
from application.target_writes import TargetWrites
from domain import status
from domain.breaker import BreakerState
from domain.model import Message

log = logging.getLogger(__name__)
_PROBE_GRACE = 1.0  # seconds past a probe time for the row kept for it to have been claimed


class BreakerEffects:
    def __init__(
        self,
        dispatcher: Dispatcher,
        pool: TargetPool,
        acks: AckBuffer,
        *,
        offload: Offload,
        wake: Callable[[], None],
    ) -> None:
        self.dispatcher = dispatcher
        self.observer: DispatchObserver = NullObserver()
        self._pool = pool
        self._acks = acks
        self._wake = wake
        self._writes = TargetWrites(dispatcher, pool, offload, wake)
        self._watches: set[asyncio.Task[None]] = set()

    async def join(self) -> None:
        """Wait for the reports and resumes still being written (probe watches just stop)."""
        for watch in self._watches:
            watch.cancel()
        await asyncio.gather(*self._watches, return_exceptions=True)
        await self._writes.join()

    def resume(self, key: str, *, held_back_only: bool) -> None:
        self._writes.resume(key, held_back_only=held_back_only)

    def transition(
        self, target: Target, before: BreakerState, now: datetime, *, paused: bool
    ) -> None:
        """Report the target's health when its breaker changed (or was never reported)."""
        after = target.breaker.state
        if after is not before or not target.reported:
            target.reported = True
            health = target.health(self._pool.cap(now), now)
            self.observer.target_changed(health)  # metrics now, the table in the background
            self._writes.report(health)
        if after is BreakerState.CLOSED and before is not after:
            self._closed(target, now, paused=paused)
        elif after is BreakerState.OPEN and before is not after:
            self._opened(target, before, now)

    def _closed(self, target: Target, now: datetime, *, paused: bool) -> None:
        log.info("target %s is healthy again: circuit closed", target.key)
        if paused and not target.parked:
            # rows held back for a Retry-After pause are due at its end already; making every
            # held row due would also release those other workers' open breakers hold, to be
            # claimed and held back again (two workers re-claimed each row about forty times)
            self._wake()
            return
        # after an outage its rows in retry backoff go too; after a Retry-After pause only
        # those held back, so no row goes before the Retry-After it was given
        self.resume(target.key, held_back_only=paused)
        target.resumed(now)

    def _opened(self, target: Target, before: BreakerState, now: datetime) -> None:
        breaker = target.breaker
        if before is BreakerState.CLOSED:
            log.warning(
                "target %s is unavailable (%s): circuit open, its rows wait until %s",
                target.key,
                breaker.last_error,
                breaker.resumes_at(now).isoformat(timespec="seconds"),
            )
        else:  # a failed probe: the cool-down grows, which is what stretches a slow recovery
            log.info(
                "target %s: the probe failed (%s); still unavailable, next probe at %s",
                target.key,
                breaker.last_error,
                breaker.resumes_at(now).isoformat(timespec="seconds"),
            )
        self.hold_backlog(target, now)
        self._watch(target, breaker.resumes_at(now), now)

    def _watch(self, target: Target, probe_at: datetime, now: datetime) -> None:
        """At the breaker's probe time, claim at once rather than after an idle delay. The row
        kept for a probe can be gone: another worker made it due early (its own pause ended)
        and sent it, and it failed. If no probe went out shortly after, the rows this worker
        held back are made due, so that one of them probes: else every row would wait for a
        far spare or the park bound while the target may well be back."""
        delay = max((probe_at - now).total_seconds(), 0.0)

        async def watch() -> None:
            await asyncio.sleep(delay)
            self._wake()
            if target.breaker.paused:  # its rows are all due at the pause end
                return
            await asyncio.sleep(_PROBE_GRACE)
            breaker = target.breaker
            if breaker.state is BreakerState.OPEN and breaker.probe_at == probe_at:
                log.info("target %s: no row came to probe it; its held rows due again", target.key)
                self.resume(target.key, held_back_only=True)

        task = asyncio.get_running_loop().create_task(watch())
        self._watches.add(task)
        task.add_done_callback(self._watches.discard)

    def hold_backlog(self, target: Target, now: datetime) -> None:
        while target.backlog:
            token, message, _ = target.backlog.popleft()
            self._acks.stage(token, self.held_back(message, target, now))

    def held_back(self, message: Message, target: Target, now: datetime) -> Settled:
        until, probe = target.hold(now, kept=status.kept_to_probe(message.status))
        kept = status.KEPT_TO_PROBE if probe else ""  # first, so no cut of a long line drops it
        reason = f"unavailable{kept} (circuit open: {target.breaker.last_error})"
        return self.deferred(message, target, reason, until)

    def deferred(self, message: Message, target: Target, reason: str, until: datetime) -> Settled:
        made = max(message.attempts - 1, 0)
        line = status.waiting(
            target.key,
            f"{reason}, {made} of {self.dispatcher.policy.max_attempts} attempts made",
            until,
        )
        return Settled(message=message.defer(until, line), outcome=Outcome.DEFERRED)
