"""What the dispatch pipeline reports as it goes; metrics and progress bars implement it."""

from __future__ import annotations

from typing import Protocol

from application.dispatcher import Settled
from domain.breaker import TargetHealth
from domain.delivery import DeliveryResult


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

    def target_changed(self, health: TargetHealth) -> None:
        """A target's breaker changed state (or its health is reported afresh)."""
        ...

    def target_load(self, target: str, in_flight: int, limit: int) -> None:
        """Requests to `target` in flight now, and its current concurrency limit."""
        ...

    def target_answered(self, target: str, result: DeliveryResult) -> None:
        """One request to `target` came back, or failed, with `result`."""
        ...


class NullObserver:
    def claimed(self, count: int) -> None:
        pass

    def settled(self, settled: Settled) -> None:
        pass

    def in_flight(self, count: int) -> None:
        pass

    def target_changed(self, health: TargetHealth) -> None:
        pass

    def target_load(self, target: str, in_flight: int, limit: int) -> None:
        pass

    def target_answered(self, target: str, result: DeliveryResult) -> None:
        pass
