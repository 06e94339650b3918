"""HTTP helpers shared by both senders (httpx and aiohttp): one attempt under a deadline,
`Retry-After`, bounded body reads, the response excerpt and the latency."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

import attrs

from domain.delivery import DeliveryResult
from domain.status import flatten

RETRY_AFTER_STATUSES = frozenset({429, 503})
_DELTA_SECONDS = re.compile(r"^\d{1,10}$")


@attrs.frozen(kw_only=True)
class HttpOptions:
    """What the aiohttp and reqwest senders are built from (the settings' HTTP part)."""

    timeout: float
    connect_timeout: float
    concurrency: int
    allow_private: bool = False
    max_response_bytes: int = 65536
    excerpt_chars: int = 200
    keepalive_seconds: float = 15.0


async def attempt_within(
    seconds: float | None,
    post: Callable[[float], Awaitable[DeliveryResult]],
    error_name: Callable[[Exception], str] = lambda error: type(error).__name__,
) -> DeliveryResult:
    """Run one attempt under an overall deadline; any failure becomes a result, never raises."""
    started = time.perf_counter()
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            return await post(started)
    except Exception as error:  # any failure is an outcome to record, not a crash
        name = "AttemptTimeout" if deadline.expired() else error_name(error)
        return DeliveryResult(error=name, latency_ms=since(started))


def retry_after(status: int, value: str | None, now: float) -> float | None:
    """Seconds a 429 or 503 asks to wait by its `Retry-After`; None for any other status."""
    return parse_retry_after(value, now) if status in RETRY_AFTER_STATUSES else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP-date); None if garbage."""
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.match(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": a date in UTC from an unknown zone
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


def excerpt(head: bytes, limit: int) -> str:
    return flatten(head[: limit * 4].decode("utf-8", errors="replace"), limit)


async def read_at_most(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """Up to `limit` bytes of a raw body; the rest is never read (the connection is dropped)."""
    received = bytearray()
    async for chunk in chunks:
        received += chunk[: limit - len(received)]
        if len(received) >= limit:
            break
    return bytes(received)


def since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
