"""A circuit breaker per target: closed → open → half-open (one probe) → closed or open again.

Pure: every transition takes `now`; nothing here reads a clock. A failure is what says the
target itself is unwell (connection errors, timeouts, 5xx, 429); any other answer shows it alive.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

import attrs

from domain.delivery import DeliveryResult

_UNWELL_CODES = frozenset({408, 429})
_PAUSE_CODES = frozenset({429, 503})
_CONGESTED_CODES = frozenset({408, 429, 503})


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@attrs.frozen(kw_only=True)
class BreakerSettings:
    failures: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    ratio: float = attrs.field(
        default=0.5, validator=[attrs.validators.gt(0.0), attrs.validators.le(1.0)]
    )
    window_seconds: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    min_requests: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    cooldown_seconds: float = attrs.field(default=5.0, validator=attrs.validators.gt(0.0))
    cooldown_max_seconds: float = attrs.field(default=60.0, validator=attrs.validators.gt(0.0))
    pause_max_seconds: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0.0))
    # how long rows held back behind an open breaker may stay parked (a few are kept for probes)
    park_seconds: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0.0))


@attrs.frozen(kw_only=True)
class TargetHealth:
    """What operators see per target: breaker state since when, the last error, the load."""

    target: str
    state: BreakerState
    since: datetime | None
    last_error: str | None
    in_flight: int = 0
    limit: int = 0
    updated_at: datetime | None = None
    reported_by: str | None = None


def is_failure(result: DeliveryResult) -> bool:
    code = result.status_code
    return code is None or code >= 500 or code in _UNWELL_CODES


def is_congested(result: DeliveryResult) -> bool:
    """Does the answer say the target is overloaded (408, 429, 503, a timeout)? Other failures
    (a 500, a refused connection) are errors, not load: they open the breaker, not the limit."""
    if result.status_code is not None:
        return result.status_code in _CONGESTED_CODES
    return "Timeout" in (result.error or "")


def pause_of(result: DeliveryResult) -> float | None:
    """Seconds the receiver asked the whole target to wait (429/503 with Retry-After)."""
    if result.status_code in _PAUSE_CODES and result.retry_after_seconds is not None:
        return max(result.retry_after_seconds, 0.0)
    return None


@attrs.frozen(kw_only=True)
class Breaker:
    """One target's breaker. `buckets` holds (second, successes, failures) of the recent window,
    counted from the first failure in it (so the failure ratio is over the answers since)."""

    settings: BreakerSettings = attrs.field(factory=BreakerSettings)
    state: BreakerState = BreakerState.CLOSED
    since: datetime | None = None
    consecutive: int = 0
    buckets: tuple[tuple[int, int, int], ...] = ()
    cooldown: float = 0.0
    probe_at: datetime | None = None
    last_error: str | None = None
    paused: bool = False  # opened by a Retry-After, not by failures

    def allows(self, now: datetime) -> bool:
        """May a request go to the target now? Open: not until `probe_at`; half-open: the probe
        is out, so not until it reports (or its deadline `probe_at` passes)."""
        return self.state is BreakerState.CLOSED or (
            self.probe_at is not None and now >= self.probe_at
        )

    def begin(self, now: datetime) -> Breaker:
        """A request is going out; past an open breaker's cool-down it is the one probe, and
        past a Retry-After pause the breaker simply closes (the receiver named the time)."""
        if self.state is BreakerState.CLOSED:
            return self
        if not self.allows(now):
            raise ValueError("the breaker does not allow a request now")
        if self.paused:  # the receiver said when to come back: no probe, full speed again
            return Breaker(settings=self.settings, since=now, last_error=self.last_error)
        deadline = now + timedelta(seconds=max(self.cooldown, self.settings.cooldown_seconds))
        return attrs.evolve(self, state=BreakerState.HALF_OPEN, probe_at=deadline)

    def record(self, result: DeliveryResult, now: datetime) -> Breaker:
        """The outcome of a request to this target."""
        pause = pause_of(result)
        if pause is not None:
            return self._open(now, result, min(pause, self.settings.pause_max_seconds), grow=False)
        if not is_failure(result):
            return self._succeeded(now)
        if self.state is BreakerState.OPEN:
            return self  # a request sent before the breaker opened: already counted against it
        if self.state is BreakerState.HALF_OPEN:
            return self._open(now, result, None, grow=True)
        return self._failed(now, result)

    def resumes_at(self, now: datetime) -> datetime:
        """When a row held back now should come due again: the next probe, or now if closed."""
        if self.probe_at is None or self.state is BreakerState.CLOSED:
            return now
        return max(now, self.probe_at)

    def _succeeded(self, now: datetime) -> Breaker:
        if self.state is BreakerState.OPEN:
            return self  # answered before the breaker opened: the probe decides
        if self.state is BreakerState.HALF_OPEN:
            return Breaker(settings=self.settings, since=now, last_error=self.last_error)
        if not self.buckets:
            return self  # the window counts from its first failure: a healthy target costs nothing
        buckets = self._counted(now, ok=True)
        if not any(bad for _, _, bad in buckets):
            buckets = ()
        return attrs.evolve(self, consecutive=0, buckets=buckets)

    def _failed(self, now: datetime, result: DeliveryResult) -> Breaker:
        counted = attrs.evolve(
            self,
            consecutive=self.consecutive + 1,
            buckets=self._counted(now, ok=False),
            last_error=result.describe(),
        )
        if counted.consecutive >= self.settings.failures or counted._ratio_exceeded():
            return counted._open(now, result, None, grow=True)
        return counted

    def _open(
        self, now: datetime, result: DeliveryResult, pause: float | None, *, grow: bool
    ) -> Breaker:
        s = self.settings
        cooldown = self.cooldown
        if grow:
            cooldown = min(s.cooldown_max_seconds, max(s.cooldown_seconds, cooldown * 2))
        wait = pause if pause is not None else cooldown
        reopened = self.state is not BreakerState.CLOSED
        return attrs.evolve(
            self,
            state=BreakerState.OPEN,
            since=self.since if reopened and self.since is not None else now,
            consecutive=0,
            buckets=(),
            cooldown=cooldown,
            probe_at=now + timedelta(seconds=wait),
            last_error=result.describe(),
            paused=pause is not None,
        )

    def _counted(self, now: datetime, *, ok: bool) -> tuple[tuple[int, int, int], ...]:
        second = int(now.timestamp())
        oldest = second - self.settings.window_seconds + 1
        kept = [b for b in self.buckets if b[0] >= oldest]
        if kept and kept[-1][0] == second:
            _, good, bad = kept.pop()
        else:
            good, bad = 0, 0
        kept.append((second, good + ok, bad + (not ok)))
        return tuple(kept)

    def _ratio_exceeded(self) -> bool:
        good = sum(b[1] for b in self.buckets)
        bad = sum(b[2] for b in self.buckets)
        total = good + bad
        return total >= self.settings.min_requests and bad / total >= self.settings.ratio
