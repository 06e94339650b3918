"""What the dispatch pipeline reports as it goes; metrics and progress bars implement it."""

from __future__ import annotations

from typing import Protocol

from application.service import Settled


class DispatchObserver(Protocol):
    def claimed(self, count: int) -> None:
        """A claim returned `count` rows."""
        ...

    def settled(self, settled: Settled) -> None:
        """One message's outcome was written (sent, retried, dead, invalid or released)."""
        ...

    def in_flight(self, count: int) -> None:
        """Messages claimed and not yet acked, now."""
        ...


class NullObserver:
    def claimed(self, count: int) -> None:
        pass

    def settled(self, settled: Settled) -> None:
        pass

    def in_flight(self, count: int) -> None:
        pass
