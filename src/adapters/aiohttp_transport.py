"""An httpx transport that sends over aiohttp: httpx stays the interface, aiohttp does the I/O.

httpx's own async transport spends about eight times the CPU per POST of this one at 64
concurrent requests (bench/http_engines.py), so the sender talks httpx and this moves the
bytes. Unlike httpx-aiohttp 0.2, which is also slower, it names failures as httpx does: a
refused connection is `ConnectError` and a dropped one `RemoteProtocolError`, not
`ConnectTimeout`.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator, Mapping

import aiohttp
import httpx

from adapters.aiohttp_pool import httpx_name_for, pooled_session

_CHUNK_BYTES = 16 * 1024


def httpx_error_for(error: BaseException) -> type[httpx.TransportError] | None:
    """The httpx exception class that names this aiohttp failure, as httpx itself would."""
    name = httpx_name_for(error)
    return None if name is None else getattr(httpx, name)


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request) -> Iterator[None]:
    try:
        yield
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as error:
        mapped = httpx_error_for(error)
        assert mapped is not None
        raise mapped(f"{type(error).__name__}: {error}", request=request) from error


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors(self._request):
            async for chunk in self._response.content.iter_chunked(_CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        # an unread remainder makes aiohttp close the connection instead of pooling it
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One pooled aiohttp session, opened on first use inside the running event loop."""

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        verify: bool | ssl.SSLContext = True,
        allow_private: bool = False,
    ) -> None:
        self._limits = limits
        self._allow_private = allow_private
        self._ssl = (
            verify
            if isinstance(verify, ssl.SSLContext)
            else httpx.create_ssl_context(verify=verify, trust_env=False)
        )
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _httpx_errors(request):
            response = await self._open().request(
                request.method,
                str(request.url),
                headers=_headers(request.headers),
                data=_body(request),
                allow_redirects=False,
                auto_decompress=False,
                compress=None,
                timeout=self._timeout(request.extensions.get("timeout", {})),
                server_hostname=request.extensions.get("sni_hostname"),
            )
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = pooled_session(
                limit=self._limits.max_connections or 0,
                keepalive_seconds=self._limits.keepalive_expiry or 0,
                ssl_context=self._ssl,
                allow_private=self._allow_private,
            )
        return self._session

    def _timeout(self, timeouts: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (timeouts.get("connect"), timeouts.get("read"), timeouts.get("pool"))
        found = self._timeouts.get(key)
        if found is None:
            connect, read, pool = key
            found = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)
            self._timeouts[key] = found
        return found


def _body(request: httpx.Request) -> bytes | httpx.AsyncByteStream | None:
    try:
        return request.content or None
    except httpx.RequestNotRead:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        return request.stream


def _headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers.raw]
