"""The aiohttp keep-alive pool both senders use, and the httpx name of each aiohttp failure.

Kept apart from the httpx transport so that the aiohttp sender (the default) starts without
importing httpx: about a tenth of `outbox drain`'s start-up (BENCHMARKS.md).
"""

from __future__ import annotations

import ssl

import aiohttp

from adapters.public_resolver import resolver_for

# most specific first: the first class that matches names the failure, as httpx would name it
ERROR_NAMES: tuple[tuple[type[BaseException], str], ...] = (
    (aiohttp.ConnectionTimeoutError, "ConnectTimeout"),
    (aiohttp.SocketTimeoutError, "ReadTimeout"),
    (TimeoutError, "ReadTimeout"),
    (aiohttp.ClientConnectorError, "ConnectError"),
    (aiohttp.ServerDisconnectedError, "RemoteProtocolError"),
    (aiohttp.ClientPayloadError, "RemoteProtocolError"),
    (aiohttp.ClientConnectionResetError, "WriteError"),
    (aiohttp.ClientOSError, "ReadError"),
    (aiohttp.InvalidURL, "UnsupportedProtocol"),
    (aiohttp.NonHttpUrlClientError, "UnsupportedProtocol"),
    (aiohttp.ClientError, "TransportError"),
    (ConnectionError, "ReadError"),
)


def httpx_name_for(error: BaseException) -> str | None:
    """The name of the httpx exception class httpx itself would raise for this failure."""
    return next((name for source, name in ERROR_NAMES if isinstance(error, source)), None)


def pooled_session(
    *,
    limit: int,
    keepalive_seconds: float,
    ssl_context: ssl.SSLContext | None,
    allow_private: bool,
    timeout: aiohttp.ClientTimeout | None = None,
) -> aiohttp.ClientSession:
    """A keep-alive pool for both senders: bytes as sent (no decompression), no cookies kept,
    no proxy from the environment; unless `allow_private`, names resolving to non-public
    addresses are refused on every new connection. Without `ssl_context`, TLS uses aiohttp's
    own verified default context (system CAs, hostname checked), loaded once at its import:
    building another costs a second read of the CA store at every start."""
    connector = aiohttp.TCPConnector(
        limit=limit,
        keepalive_timeout=keepalive_seconds,
        ssl=True if ssl_context is None else ssl_context,
        resolver=resolver_for(allow_private),
    )
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        timeout=timeout,
    )
