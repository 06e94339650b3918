"""The dispatch pipeline: a claimer feeds the senders, each row passes its target's gate, an
ack buffer writes the outcomes in batches, a lease keeper renews the claims still held.

Claims of the next batch overlap the sends of the last; at most `capacity` messages are held
(claimed and not yet acked) at any time, and nothing is kept about a message after its ack.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import attrs

from application.ack_buffer import AckBuffer, Health
from application.breaker_effects import BreakerEffects
from application.claimer import Claimer
from application.dispatcher import Dispatcher, Summary
from application.leases import LeaseKeeper
from application.observer import DispatchObserver, NullObserver
from application.offload import Offload
from application.senders import Senders
from application.target_gate import TargetGate
from application.target_pool import TargetPool, TargetSettings
from domain.breaker import TargetHealth


@attrs.frozen(kw_only=True)
class PipelineSettings:
    poll_interval: float = 1.0
    flush_size: int = 500
    flush_seconds: float = 0.02
    capacity: int | None = None
    min_idle_seconds: float = 0.01
    failure_backoff_max: float = 30.0
    stall_seconds: float = 60.0  # rows held with no outcome this long: stuck (see leases.py)
    targets: TargetSettings = attrs.field(factory=TargetSettings)


class Pipeline:
    def __init__(
        self,
        dispatcher: Dispatcher,
        settings: PipelineSettings,
        *,
        observer: DispatchObserver | None = None,
        rng: random.Random | None = None,
        offload: Offload = asyncio.to_thread,
    ) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        batch, concurrency = dispatcher.settings.batch_size, dispatcher.settings.concurrency
        self.capacity = settings.capacity or 2 * batch + concurrency
        self._health = Health()
        self.acks = self._ack_buffer(offload)
        targets = dispatcher.targets
        pool = TargetPool(settings.targets, targets.by_type, targets.default)
        self.effects = BreakerEffects(dispatcher, pool, self.acks, offload=offload, wake=self.wake)
        self.gate = TargetGate(dispatcher, pool, self.acks, self.effects, capacity=self.capacity)
        self.senders = Senders(dispatcher, self.gate, self.acks, concurrency=concurrency)
        self.claimer = self._claimer(offload, rng or random.Random())
        self.leases = LeaseKeeper(
            dispatcher, self.acks, offload, stall_seconds=settings.stall_seconds
        )
        self.observer = observer or NullObserver()

    def _ack_buffer(self, offload: Offload) -> AckBuffer:
        return AckBuffer(
            self.dispatcher,
            flush_size=self.settings.flush_size,
            flush_seconds=self.settings.flush_seconds,
            failure_backoff_max=self.settings.failure_backoff_max,
            offload=offload,
            health=self._health,
        )

    def _claimer(self, offload: Offload, rng: random.Random) -> Claimer:
        return Claimer(
            self.dispatcher,
            self.acks,
            self.senders,
            capacity=self.capacity,
            timing=self.settings,
            offload=offload,
            health=self._health,
            rng=rng,
        )

    @property
    def observer(self) -> DispatchObserver:
        return self.acks.observer

    @observer.setter
    def observer(self, observer: DispatchObserver) -> None:
        for piece in (self.acks, self.effects, self.gate, self.claimer):
            piece.observer = observer

    @property
    def on_progress(self) -> Callable[[Summary], None]:
        return self.acks.on_progress

    @on_progress.setter
    def on_progress(self, callback: Callable[[Summary], None]) -> None:
        self.acks.on_progress = callback

    @property
    def summary(self) -> Summary:
        return self.acks.summary

    @property
    def healthy(self) -> bool:
        """Whether the last claim and the last ack reached the database, and rows move."""
        return self._health.ok and not self.leases.stalled

    def wake(self) -> None:
        """Claim now instead of waiting out the idle delay (e.g. on a PostgreSQL NOTIFY)."""
        self.claimer.wake()

    def held(self) -> int:
        return self.acks.held()

    def tracked_claims(self) -> set[str]:
        """Tokens of claims with any per-claim state left: empty once every claim settled."""
        return self.acks.tracked_claims()

    def target_health(self) -> list[TargetHealth]:
        """This worker's view of each target it has sent to."""
        return self.gate.target_health()

    async def run(self, stop: asyncio.Event, *, until_idle: bool = False) -> Summary:
        """Dispatch until `stop` is set (or, with `until_idle`, until nothing is due)."""
        self.gate.closing = False
        closing = asyncio.Event()
        acker = asyncio.create_task(self.acks.run(closing))
        renewals = asyncio.create_task(self.leases.run())
        try:
            await self.claimer.run(stop, until_idle)
        finally:
            await self._stop_sending()
            renewals.cancel()
            closing.set()
            await acker
            await self.effects.join()
        return self.summary

    async def _stop_sending(self) -> None:
        """Rows not yet sent go back to the table; sends under way finish and are acked."""
        self.gate.closing = True
        self.senders.release_waiting()
        self.gate.release_backlogs()
        await self.senders.join()
        self.senders.release_waiting()
        self.gate.release_backlogs()
