"""At most `concurrency` rows routed at once. Claimed rows wait in a deque; a task is started
for each free slot and takes row after row until none is left, so a busy worker keeps its
tasks and an idle one has none, and no row goes through a queue's futures on its way.

Senders are counted by `_running`, which a sender leaves in the same step in which it finds
nothing left to take: a finished task stays in `_tasks` until the loop runs its done-callback,
and rows submitted in between would otherwise wait for a sender that has already gone."""

from __future__ import annotations

import asyncio
from collections import deque

from application.ack_buffer import AckBuffer
from application.dispatcher import Dispatcher
from application.target_gate import TargetGate
from domain.model import Message


class Senders:
    def __init__(
        self, dispatcher: Dispatcher, gate: TargetGate, acks: AckBuffer, *, concurrency: int
    ) -> None:
        self.dispatcher = dispatcher
        self._gate = gate
        self._acks = acks
        self._concurrency = concurrency
        self._waiting: deque[tuple[str, Message]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0

    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, token: str, messages: tuple[Message, ...]) -> None:
        self._waiting.extend((token, message) for message in messages)
        loop = asyncio.get_running_loop()
        while self._running < min(self._concurrency, len(self._waiting)):
            self._running += 1
            task = loop.create_task(self._send())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self) -> None:
        try:
            while self._waiting:
                token, message = self._waiting.popleft()
                await self._gate.route(token, message)
        finally:
            self._running -= 1

    def release_waiting(self) -> None:
        """On stopping: rows not yet routed go back to the table, due at once."""
        while self._waiting:
            token, message = self._waiting.popleft()
            self._acks.stage(token, self.dispatcher.release(message))

    async def join(self) -> None:
        """Wait until every row taken has been routed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
