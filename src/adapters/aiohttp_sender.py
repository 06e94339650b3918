"""`AiohttpMessageSender`: the same signed POSTs as `HttpxMessageSender`, on raw aiohttp.

The production default: on these machines the httpx layer alone cost about as much CPU per
message as aiohttp's whole exchange (BENCHMARKS.md), and the dispatcher is CPU-bound. Error
names follow httpx's (`ConnectError`, `ReadTimeout`, ...) so Status lines read the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp

from adapters.aiohttp_pool import httpx_name_for, pooled_session
from adapters.http_common import (
    HttpOptions,
    attempt_within,
    excerpt,
    read_at_most,
    retry_after,
    since,
)
from adapters.webhooks import WebhookHeaders
from domain.delivery import DeliveryRequest, DeliveryResult


class AiohttpMessageSender:
    """POSTs each request once; returns the HTTP status or the error's name, never raises."""

    def __init__(
        self,
        options: HttpOptions,
        *,
        secrets: tuple[str, ...] = (),
        user_agent: str,
        timestamp: Callable[[], float] = time.time,
    ) -> None:
        self._options = options
        self._headers = WebhookHeaders(secrets, user_agent, timestamp)
        self._timestamp = timestamp
        self._deadline = options.connect_timeout + options.timeout
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"AiohttpMessageSender({self._headers!r})"

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        return await attempt_within(
            self._deadline, lambda started: self._post(request, started), _httpx_style_name
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _post(self, request: DeliveryRequest, started: float) -> DeliveryResult:
        session = self._open()
        headers = self._headers.for_request(request)
        async with session.post(
            request.url, data=request.body, headers=headers, allow_redirects=False
        ) as response:
            head = await read_at_most(response.content.iter_any(), self._options.max_response_bytes)
            return DeliveryResult(
                status_code=response.status,
                latency_ms=since(started),
                retry_after_seconds=retry_after(
                    response.status, response.headers.get("Retry-After"), self._timestamp()
                ),
                excerpt=excerpt(head, self._options.excerpt_chars),
            )

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            options = self._options
            self._session = pooled_session(
                limit=options.concurrency,
                keepalive_seconds=options.keepalive_seconds,
                ssl_context=None,  # aiohttp's verified default; nothing turns verification off
                allow_private=options.allow_private,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=options.connect_timeout, sock_read=options.timeout
                ),
            )
        return self._session


def _httpx_style_name(error: Exception) -> str:
    return httpx_name_for(error) or type(error).__name__
