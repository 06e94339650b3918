"""Outcomes staged per claim and written in batches: by size or every `flush_seconds`.

It also keeps the per-claim bookkeeping (rows outstanding, lease end), so that nothing is kept
about a claim once each of its rows has been acked or deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import attrs

from application.dispatcher import Claim, Dispatcher, Outcome, Settled, Summary
from application.observer import DispatchObserver, NullObserver
from application.offload import Offload
from domain.errors import one_line

log = logging.getLogger(__name__)
_FAILURES = frozenset({Outcome.RETRIED, Outcome.DEAD, Outcome.INVALID})


def failure_delay(failures: int, most: float) -> float:
    """Seconds to wait after `failures` database errors in a row: doubling from 0.2 s."""
    return min(most, 0.1 * 2.0 ** min(failures, 10))


@attrs.define
class Health:
    """Whether the last claim and the last ack reached the database (the latest wins)."""

    ok: bool = True


class AckBuffer:
    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        flush_size: int,
        flush_seconds: float,
        failure_backoff_max: float,
        offload: Offload,
        health: Health,
    ) -> None:
        self.dispatcher = dispatcher
        self.summary = Summary()
        self.observer: DispatchObserver = NullObserver()
        self.on_progress: Callable[[Summary], None] = lambda summary: None
        self.room = asyncio.Event()  # set after each ack: the claimer may have room again
        self._flush_size = flush_size
        self._flush_seconds = flush_seconds
        self._backoff_max = failure_backoff_max
        self._offload = offload
        self._health = health
        self._outstanding: dict[str, int] = {}
        self._lease_until: dict[str, datetime] = {}  # per claim, as of the last renewal
        self._staged: dict[str, list[Settled]] = {}
        self._staged_count = 0
        self._flush_now = asyncio.Event()
        self.moves = 0  # claims taken + outcomes staged, ever: it moves while rows do

    def unsettled(self) -> int:
        """Rows held that have no outcome yet (not even one waiting for its flush)."""
        return self.held() - self._staged_count

    def held(self) -> int:
        return sum(self._outstanding.values())

    def tracked_claims(self) -> set[str]:
        """Tokens of claims with any per-claim state left: empty once every claim settled."""
        return {*self._outstanding, *self._lease_until, *self._staged}

    def claims(self) -> list[str]:
        return list(self._outstanding)

    def track(self, claim: Claim, started: datetime) -> None:
        self.moves += 1
        self._outstanding[claim.token] = len(claim.messages)
        self._lease_until[claim.token] = self.dispatcher.lease_until(started)

    def renewed(self, tokens: list[str], until: datetime) -> None:
        for token in tokens:
            if token in self._lease_until:
                self._lease_until[token] = until

    def abandon_lapsed(self) -> int:
        """Stop counting the rows of claims whose lease has lapsed (a stuck pipeline's: see
        LeaseKeeper); they are due again for any worker. Their lease end is kept, so a row
        that surfaces later is released, not sent. Returns how many rows."""
        lapsed = [token for token in self._outstanding if self.lapsed(token)]
        return sum(self._outstanding.pop(token) for token in lapsed)

    def lapsed(self, token: str) -> bool:
        until = self._lease_until.get(token)
        return until is not None and self.dispatcher.clock.now() >= until

    def stage(self, token: str, settled: Settled) -> None:
        self._staged.setdefault(token, []).append(settled)
        self._staged_count += 1
        self.moves += 1
        if self._staged_count >= self._flush_size:
            self._flush_now.set()

    async def run(self, closing: asyncio.Event) -> None:
        """Flush until `closing` is set and nothing is left (or the database stays away)."""
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), self._flush_seconds)
            self._flush_now.clear()
            if await self.flush():
                failures = 0
            else:
                failures += 1
                await asyncio.sleep(failure_delay(failures, self._backoff_max))
            if closing.is_set() and (not self._staged or failures >= 5):
                return

    async def flush(self) -> bool:
        if not self._staged:
            return True
        batches, self._staged, self._staged_count = self._staged, {}, 0
        try:
            refused = await self._offload(self._ack_all, batches)
        except Exception as error:
            log.warning("ack failed (%s); will retry", one_line(error))
            for token, items in batches.items():
                self._staged.setdefault(token, []).extend(items)
                self._staged_count += len(items)
            self._health.ok = False
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
                refused += self.dispatcher.defer(token, deferred)
        return refused

    def _acked(self, batches: dict[str, list[Settled]], refused: list[Settled]) -> None:
        lost = {id(item) for item in refused}
        for token, items in batches.items():
            self._settled(token, len(items))
            written = [item for item in items if id(item) not in lost]
            self.summary.count(written)
            for item in written:
                self.observer.settled(item)
                if item.outcome in _FAILURES:
                    log.warning("message %d %s", item.message.id, item.message.status)
        self.summary.refused += len(refused)
        self._health.ok = True
        self.observer.in_flight(self.held())
        self.room.set()
        self.on_progress(self.summary)

    def _settled(self, token: str, count: int) -> None:
        left = self._outstanding.get(token, 0) - count
        if left > 0:
            self._outstanding[token] = left
        else:
            self._outstanding.pop(token, None)
            self._lease_until.pop(token, None)
