from __future__ import annotations

import math
from typing import Any, Literal

import attrs


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value}")


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
        if not 0.0 <= jitter < 1.0:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        backoff = self._jittered(self._ceiling(attempt), jitter)
        if retry_after is not None:
            backoff = max(backoff, min(max(retry_after, 0.0), self.max_seconds))
        return backoff

    def _ceiling(self, attempt: int) -> float:
        exponent = min(max(attempt - 1, 0), 64)
        return float(min(self.max_seconds, self.base_seconds * 2.0**exponent))

    def _jittered(self, ceiling: float, jitter: float) -> float:
        if self.jitter == "full":
            return ceiling * jitter
        return ceiling / 2 + ceiling / 2 * jitter
