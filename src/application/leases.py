"""Lease renewal: every third of a lease, each claim still held is extended by a lease."""

from __future__ import annotations

import asyncio
import logging

from application.ack_buffer import AckBuffer
from application.dispatcher import Dispatcher
from application.offload import Offload
from domain.errors import one_line

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, dispatcher: Dispatcher, claims: AckBuffer, offload: Offload) -> None:
        self.dispatcher = dispatcher
        self.claims = claims
        self._offload = offload

    async def run(self) -> None:
        interval = self.dispatcher.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            await self.renew()

    async def renew(self) -> None:
        """Renew the claims held now; a claim whose rows were taken over stays lapsed."""
        tokens = self.claims.claims()
        if not tokens:
            return
        try:
            until, renewed = await self._offload(self.dispatcher.renew, tokens)
        except Exception as error:
            log.warning("lease renewal failed (%s)", one_line(error))
            return
        self.claims.renewed(renewed, until)
