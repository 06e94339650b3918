"""`MessageSender` over httpx: signed POSTs, bounded response reads, failures as results."""

from __future__ import annotations

import asyncio
import functools
import http.cookiejar
import logging
import re
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx

from adapters.aiohttp_transport import AiohttpTransport
from adapters.webhooks import WebhookHeaders
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.status import flatten

log = logging.getLogger(__name__)

RETRY_AFTER_STATUSES = frozenset({429, 503})
_DELTA_SECONDS = re.compile(r"^\d{1,10}$")


class HttpxMessageSender:
    """POSTs each request once; returns the HTTP status or the error's class name, never raises.

    httpx's timeouts bound each connect and each read; on top, one attempt as a whole may not
    outlast the connect plus the read timeout (`AttemptTimeout`), so a server trickling bytes
    cannot hold a send past its lease.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        secrets: tuple[str, ...] = (),
        user_agent: str,
        max_response_bytes: int = 65536,
        excerpt_chars: int = 200,
        timestamp: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._headers = WebhookHeaders(secrets, user_agent, timestamp)
        self._max_response_bytes = max_response_bytes
        self._excerpt_chars = excerpt_chars
        self._timestamp = timestamp
        self._timeouts = client.timeout.as_dict()
        self._deadline = _deadline(client.timeout)

    def __repr__(self) -> str:
        return f"HttpxMessageSender({self._headers!r})"

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        result = await attempt_within(self._deadline, lambda started: self._post(request, started))
        log.debug(
            "message %d attempt %d: %s", request.message_id, request.attempt, result.describe()
        )
        return result

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _post(self, request: DeliveryRequest, started: float) -> DeliveryResult:
        response = await self._client.send(self._request(request), stream=True)
        try:
            head = await _read_head(response, self._max_response_bytes)
        finally:
            await response.aclose()
        return DeliveryResult(
            status_code=response.status_code,
            latency_ms=since(started),
            retry_after_seconds=retry_after(
                response.status_code, response.headers.get("retry-after"), self._timestamp()
            ),
            excerpt=excerpt(head, self._excerpt_chars),
        )

    def _request(self, request: DeliveryRequest) -> httpx.Request:
        # built here rather than by client.stream(): skips merging the client's defaults and
        # re-parsing the same few target URLs, a third of httpx's cost per request
        return httpx.Request(
            "POST",
            _url(request.url),
            headers=self._headers.for_request(request),
            content=request.body,
            extensions={"timeout": self._timeouts},
        )


def _deadline(timeout: httpx.Timeout) -> float | None:
    if timeout.connect is None or timeout.read is None:
        return None
    return timeout.connect + timeout.read


@functools.lru_cache(maxsize=256)
def _url(text: str) -> httpx.URL:
    return httpx.URL(text)


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


async def _read_head(response: httpx.Response, limit: int) -> bytes:
    try:
        return response.content[:limit]  # already read by the transport (httpx.MockTransport)
    except httpx.ResponseNotRead:
        return await read_at_most(response.aiter_raw(), limit)


def since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def make_http_client(
    *,
    timeout: float,
    connect_timeout: float,
    concurrency: int,
    verify: bool = True,
    engine: str = "aiohttp",
    allow_private: bool = False,
) -> httpx.AsyncClient:
    """A keep-alive pool of one connection per concurrent send; no redirects; TLS verified.

    Unless `allow_private`, a host name resolving to a non-public address is refused on
    every new connection (the aiohttp engine), not only at start-up.
    """
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=15.0
    )
    return httpx.AsyncClient(
        transport=_transport(engine, limits, verify, allow_private),
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        follow_redirects=False,
        trust_env=False,
        cookies=_NoCookies(),
    )


class _NoCookies(http.cookiejar.CookieJar):
    """Receivers' cookies are not kept: no state leaks from one delivery into the next."""

    def extract_cookies(self, response: object, request: object) -> None:
        return None


def _transport(
    engine: str, limits: httpx.Limits, verify: bool, allow_private: bool
) -> httpx.AsyncBaseTransport:
    if engine == "aiohttp":
        return AiohttpTransport(limits=limits, verify=verify, allow_private=allow_private)
    if engine == "httpcore":
        return httpx.AsyncHTTPTransport(verify=verify, limits=limits, trust_env=False)
    raise ValueError(f"unknown HTTP engine {engine!r}: use aiohttp or httpcore")
