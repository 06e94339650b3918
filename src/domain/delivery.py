from __future__ import annotations

import enum

import attrs


class Verdict(enum.Enum):
    """What one HTTP result calls for (`classify`); the row's `State` follows from it."""

    SENT = "sent"
    RETRY = "retry"
    DEAD = "dead"


_RETRYABLE_STATUSES = frozenset({408, 429})


@attrs.frozen(kw_only=True)
class DeliveryRequest:
    """What the sender POSTs for one message; the same key on every retry of one request."""

    message_id: int
    url: str
    body: bytes
    idempotency_key: str
    attempt: int


@attrs.frozen(kw_only=True)
class DeliveryResult:
    """What one HTTP attempt came to: a status code, or the class of the error that stopped it."""

    status_code: int | None = None
    error: str | None = None
    latency_ms: float = 0.0
    retry_after_seconds: float | None = None
    excerpt: str = ""

    def __attrs_post_init__(self) -> None:
        if (self.status_code is None) == (self.error is None):
            raise ValueError("a delivery result has either a status code or an error")

    def describe(self) -> str:
        what = f"HTTP {self.status_code}" if self.status_code is not None else str(self.error)
        return f"{what} in {self.latency_ms:.0f} ms"


def classify(result: DeliveryResult) -> Verdict:
    """2xx sent; network errors, timeouts, 408, 429 and 5xx retried; 3xx and other 4xx dead."""
    code = result.status_code
    if code is None:
        return Verdict.RETRY
    if 200 <= code < 300:
        return Verdict.SENT
    if code in _RETRYABLE_STATUSES or code >= 500:
        return Verdict.RETRY
    return Verdict.DEAD
