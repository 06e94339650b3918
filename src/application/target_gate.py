"""Each prepared request goes through its target's breaker and concurrency limit: sent now,
queued behind the target's limit, held back while its breaker is open, or deferred when a
crawling target's backlog exceeds its share of the claim capacity."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from application.ack_buffer import AckBuffer
from application.breaker_effects import BreakerEffects
from application.dispatcher import Dispatcher, Settled
from application.observer import DispatchObserver, NullObserver
from application.target_pool import Target, TargetPool
from domain.breaker import TargetHealth
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import Message

log = logging.getLogger(__name__)
_CRAWL_SECONDS = 0.5


class TargetGate:
    def __init__(
        self,
        dispatcher: Dispatcher,
        pool: TargetPool,
        acks: AckBuffer,
        effects: BreakerEffects,
        *,
        capacity: int,
    ) -> None:
        self.dispatcher = dispatcher
        self.observer: DispatchObserver = NullObserver()
        self.closing = False
        self._pool = pool
        self._acks = acks
        self._effects = effects
        self._capacity = capacity
        self._backlog_bound = dispatcher.settings.concurrency

    async def route(self, token: str, message: Message) -> None:
        if self.closing or self._acks.lapsed(token):  # another worker may have it: do not send
            self._acks.stage(token, self.dispatcher.release(message))
            return
        prepared = self.dispatcher.prepare(message)
        if isinstance(prepared, Settled):
            self._acks.stage(token, prepared)
            return
        target = self._pool.of(prepared.url)
        now = self.dispatcher.clock.now()
        if not target.breaker.allows(now):
            self._acks.stage(token, self._effects.held_back(message, target, now))
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
        share = max(self._backlog_bound, self._capacity // self._pool.busy(now))
        if len(target.backlog) < share or (target.latency or 0.0) < _CRAWL_SECONDS:
            target.backlog.append((token, message, prepared))
            return
        # whole seconds, so the rows sent back together share one statement
        until = now.replace(microsecond=0) + timedelta(seconds=1 + math.ceil(target.backlog_wait()))
        reason = "busy (at its concurrency limit)"
        self._acks.stage(token, self._effects.deferred(message, target, reason, until))

    async def _drain(self, target: Target) -> None:
        while target.backlog and not self.closing:
            now = self.dispatcher.clock.now()
            if not target.breaker.allows(now):
                self._effects.hold_backlog(target, now)
                return
            if not self._pool.admits(target, now):
                return
            token, message, prepared = target.backlog.popleft()
            if self._acks.lapsed(token):
                self._acks.stage(token, self.dispatcher.release(message))
                continue
            await self._transmit(token, message, prepared, target)

    async def _transmit(
        self, token: str, message: Message, prepared: DeliveryRequest, target: Target
    ) -> None:
        now = self.dispatcher.clock.now()
        before, was_paused = target.breaker.state, target.breaker.paused
        target.breaker = target.breaker.begin(now)
        self._effects.transition(target, before, now, paused=was_paused)
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
            # a row kept to probe delivered: the target is back, whoever held its rows back
            if target.resumes_on(message.status, settled.attempt.result, now):
                self._effects.resume(target.key, held_back_only=False)
        self._acks.stage(token, settled)

    def _answered(self, target: Target, result: DeliveryResult) -> None:
        now = self.dispatcher.clock.now()
        before, was_paused = target.breaker.state, target.breaker.paused
        target.breaker = target.breaker.record(result, now)
        target.adapt(result, self._pool.cap(now))
        target.active_at = now
        self.observer.target_answered(target.key, result)
        self.observer.target_load(target.key, target.in_flight, int(target.limit))
        self._effects.transition(target, before, now, paused=was_paused)

    def release_backlogs(self) -> None:
        """On stopping: every row still queued behind a target goes back to the table."""
        for target in self._pool.all():
            while target.backlog:
                token, message, _ = target.backlog.popleft()
                self._acks.stage(token, self.dispatcher.release(message))

    def target_health(self) -> list[TargetHealth]:
        """This worker's view of each target it has sent to."""
        now = self.dispatcher.clock.now()
        cap = self._pool.cap(now)
        return [target.health(cap, now) for target in self._pool.all()]
