"""The database writes a breaker's changes call for, made in the background so that no send
waits for them: a target's health for `outbox status`, and its waiting rows made due again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from application.dispatcher import Dispatcher
from application.offload import Offload
from application.target_pool import TargetPool
from domain.breaker import TargetHealth
from domain.errors import one_line

log = logging.getLogger(__name__)


class TargetWrites:
    def __init__(
        self, dispatcher: Dispatcher, pool: TargetPool, offload: Offload, wake: Callable[[], None]
    ) -> None:
        self.dispatcher = dispatcher
        self._pool = pool
        self._offload = offload
        self._wake = wake
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, health: TargetHealth) -> None:
        """Best effort: a failed write leaves the table a report behind, nothing else."""

        async def write() -> None:
            try:
                await self._offload(self.dispatcher.report_target, health)
            except Exception as error:
                log.warning(
                    "recording the health of %s failed (%s)", health.target, one_line(error)
                )

        self._background(write())

    def resume(self, key: str, *, held_back_only: bool) -> None:
        """Make the target's waiting rows due now, then claim at once."""
        types, excluding = self._pool.message_types(key)
        now = self.dispatcher.clock.now()

        async def resume() -> None:
            try:
                count = await self._offload(
                    lambda: self.dispatcher.resume(
                        now, types=types, excluding=excluding, held_back_only=held_back_only
                    )
                )
            except Exception as error:
                log.warning("resuming rows for %s failed (%s)", key, one_line(error))
                return
            log.info("target %s: %d waiting row(s) due again", key, count)
            self._wake()

        self._background(resume())

    async def join(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
