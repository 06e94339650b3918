"""`MessageSender` over httpx: signed POSTs, bounded response reads, failures as results."""

from __future__ import annotations

import functools
import http.cookiejar
import logging
import time
from collections.abc import Callable

import httpx

from adapters.aiohttp_transport import AiohttpTransport
from adapters.http_common import attempt_within, excerpt, read_at_most, retry_after, since
from adapters.webhooks import WebhookHeaders
from domain.delivery import DeliveryRequest, DeliveryResult

log = logging.getLogger(__name__)


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


async def _read_head(response: httpx.Response, limit: int) -> bytes:
    try:
        return response.content[:limit]  # already read by the transport (httpx.MockTransport)
    except httpx.ResponseNotRead:
        return await read_at_most(response.aiter_raw(), limit)


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
