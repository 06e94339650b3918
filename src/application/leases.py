"""Lease renewal: every third of a lease, each claim still held is extended by a lease.

Unless the pipeline is stuck: rows held with no outcome while nothing has moved (no claim, no
outcome) for `stall_seconds`. Every request ends within its deadline and every row held back
is written back at once, so that is a bug, not a slow receiver. The keeper then says so once,
stops renewing, and once the leases have lapsed stops counting those rows: they are due again,
this worker or another claims them, and a stuck copy that surfaces later is released, not sent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from application.ack_buffer import AckBuffer
from application.dispatcher import Dispatcher
from application.offload import Offload
from domain.errors import one_line

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        dispatcher: Dispatcher,
        claims: AckBuffer,
        offload: Offload,
        *,
        stall_seconds: float = 60.0,
    ) -> None:
        self.dispatcher = dispatcher
        self.claims = claims
        self.stalled = False
        self._offload = offload
        self._stall_seconds = stall_seconds
        self._still: tuple[int, datetime] | None = None  # (moves, unchanged since)

    async def run(self) -> None:
        interval = self.dispatcher.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            await self.renew()

    async def renew(self) -> None:
        """Renew the claims held now; a claim whose rows were taken over stays lapsed."""
        if self._stuck():
            return
        tokens = self.claims.claims()
        if not tokens:
            return
        try:
            until, renewed = await self._offload(self.dispatcher.renew, tokens)
        except Exception as error:
            log.warning("lease renewal failed (%s)", one_line(error))
            return
        self.claims.renewed(renewed, until)

    def _stuck(self) -> bool:
        now = self.dispatcher.clock.now()
        moves, unsettled = self.claims.moves, self.claims.unsettled()
        if unsettled <= 0 or self._still is None or self._still[0] != moves:
            if self.stalled:
                log.warning("the pipeline moves again")
            self._still, self.stalled = (moves, now), False
            return False
        if not self.stalled and (now - self._still[1]).total_seconds() >= self._stall_seconds:
            self.stalled = True
            log.error(
                "%d row(s) held with no outcome for %.0f s: the pipeline is stuck (a bug; please "
                "report it). Their leases are no longer renewed, so they go out again once they "
                "lapse; /healthz reports unhealthy meanwhile",
                unsettled,
                self._stall_seconds,
            )
        if self.stalled and (count := self.claims.abandon_lapsed()):
            log.warning("%d stuck row(s) left to be claimed again: their leases lapsed", count)
        return self.stalled
