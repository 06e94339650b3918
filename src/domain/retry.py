from __future__ import annotations

import math
from typing import Any, Literal, Protocol

import attrs

# The Standard Webhooks recommendation: retry after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
# 20 h and 24 h (ten attempts in all, a horizon of about three days).
STANDARD_WEBHOOKS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)
_MAX_RETRY_AFTER = 3600.0


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value}")


def _check_jitter(jitter: float) -> None:
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")


class Backoff(Protocol):
    """When a failed attempt goes again, and how many attempts a request gets."""

    @property
    def max_attempts(self) -> int: ...

    def delay(self, attempt: int, jitter: float, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (from 1); `jitter` is in [0, 1)."""
        ...

    def horizon(self) -> float:
        """Seconds from the first attempt to the last one, without jitter."""
        ...

    def describe(self) -> str:
        """One line for `outbox status`."""
        ...


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped, for a bounded number of attempts.

    `delay` takes the random draw (0 <= jitter < 1) as an argument so the policy stays pure.
    A `Retry-After` from the receiver is honoured, but never beyond `max_seconds`.
    """

    base_seconds: float = attrs.field(default=1.0, validator=_positive)
    max_seconds: float = attrs.field(default=300.0, validator=_positive)
    max_attempts: int = attrs.field(default=8, validator=_positive)
    jitter: Literal["full", "equal"] = attrs.field(
        default="equal", validator=attrs.validators.in_(("full", "equal"))
    )

    def delay(self, attempt: int, jitter: float, retry_after: float | None = None) -> float:
        _check_jitter(jitter)
        backoff = self._jittered(self._ceiling(attempt), jitter)
        if retry_after is not None:
            backoff = max(backoff, min(max(retry_after, 0.0), self.max_seconds))
        return backoff

    def horizon(self) -> float:
        return sum(self._ceiling(attempt) for attempt in range(1, self.max_attempts))

    def describe(self) -> str:
        return (
            f"exponential: {self.max_attempts} attempts, base {self.base_seconds:g} s, "
            f"cap {self.max_seconds:g} s, horizon {duration(self.horizon())}"
        )

    def _ceiling(self, attempt: int) -> float:
        exponent = min(max(attempt - 1, 0), 64)
        return float(min(self.max_seconds, self.base_seconds * 2.0**exponent))

    def _jittered(self, ceiling: float, jitter: float) -> float:
        if self.jitter == "full":
            return ceiling * jitter
        return ceiling / 2 + ceiling / 2 * jitter


def _steps(instance: object, attribute: attrs.Attribute[Any], value: tuple[float, ...]) -> None:
    if not value:
        raise ValueError("a retry schedule needs at least one step")
    for step in value:
        _positive(instance, attribute, step)


@attrs.frozen(kw_only=True)
class RetrySchedule:
    """An explicit list of waits: after failed attempt k the row waits `steps[k-1]`.

    Attempts are one more than the steps (the first goes at once). Each wait is spread by
    ±`spread` (a fraction) so retries of a burst do not arrive together; a `Retry-After` is
    honoured up to an hour.
    """

    steps: tuple[float, ...] = attrs.field(default=STANDARD_WEBHOOKS, validator=_steps)
    spread: float = attrs.field(
        default=0.1,
        validator=attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.lt(1.0)),
    )

    @property
    def max_attempts(self) -> int:
        return len(self.steps) + 1

    def delay(self, attempt: int, jitter: float, retry_after: float | None = None) -> float:
        _check_jitter(jitter)
        step = self.steps[min(max(attempt, 1), len(self.steps)) - 1]
        wait = step * (1.0 - self.spread + 2.0 * self.spread * jitter)
        if retry_after is not None:
            wait = max(wait, min(max(retry_after, 0.0), _MAX_RETRY_AFTER))
        return wait

    def horizon(self) -> float:
        return sum(self.steps)

    def describe(self) -> str:
        listed = ", ".join(duration(step) for step in self.steps)
        return (
            f"schedule: {listed} ({self.max_attempts} attempts, horizon {duration(self.horizon())})"
        )


_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


def duration(seconds: float) -> str:
    """`90061` → `1d1h1m1s`; fractions of a second only below one second."""
    if seconds < 1:
        return f"{seconds:g}s"
    parts, left = [], round(seconds)
    for unit, size in _UNITS:
        count, left = divmod(left, int(size))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
