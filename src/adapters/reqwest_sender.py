"""`ReqwestMessageSender`: the same signed POSTs on reqwest (Rust: hyper and rustls) via pyreqwest.

The production default: its exchange runs on a Tokio thread outside the GIL, so on these
machines a drain spends about two thirds of the CPU per message that it spends on aiohttp and
moves about 1.5 × the messages per second (BENCHMARKS.md, *reqwest, the default engine*).

SSRF guard. reqwest resolves names itself and offers no hook to check the address it dials, so
this sender resolves each target host itself, refuses it when any address is not public
(unless private targets are allowed) and builds a client pinned to the first address for that
name (reqwest's static `resolve`): TLS still sends the name (SNI) and verifies the certificate
against it. The host is resolved again once `repin_seconds` have passed; an unchanged answer
keeps the client and its warm connections, a changed one gets a new client, checked like the
first (DNS rebinding), and the old client is closed once its requests are over; a lookup
that fails (DNS down, not the target) keeps the address checked before.

Error names follow httpx's (`ConnectError`, `ReadTimeout`, ...) so Status lines read the same
on every engine; a request still running at connect + read timeout is `AttemptTimeout`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import attrs
from pyreqwest import exceptions as reqwest_errors
from pyreqwest.client import Client, ClientBuilder

from adapters.http_common import HttpOptions, excerpt, retry_after, since
from adapters.ssrf_guard import NonPublicAddress, ip_of, refuse_non_public
from adapters.webhooks import WebhookHeaders
from domain.delivery import DeliveryRequest, DeliveryResult

Resolve = Callable[[str, int], Awaitable[list[str]]]
Origin = tuple[str, str, int]  # scheme, host, port

log = logging.getLogger(__name__)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_WATCH_SECONDS = 1.0
# a request that ran this share of its deadline or more was stopped by the deadline
_AT_DEADLINE = 0.98


class NotHttpUrl(ValueError):
    """The request's URL is not http(s) with a host (targets are checked at start: a bug)."""


# most specific first, as aiohttp_pool.ERROR_NAMES; timeouts are told apart in `_error_name`
_ERROR_NAMES: tuple[tuple[type[BaseException], str], ...] = (
    (NonPublicAddress, "ConnectError"),
    (reqwest_errors.ConnectError, "ConnectError"),
    (reqwest_errors.ReadError, "ReadError"),
    (reqwest_errors.WriteError, "WriteError"),
    (reqwest_errors.DecodeError, "RemoteProtocolError"),
    (reqwest_errors.BuilderError, "UnsupportedProtocol"),
    (NotHttpUrl, "UnsupportedProtocol"),
    (reqwest_errors.RequestError, "TransportError"),
    (OSError, "ConnectError"),  # the name did not resolve
)


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses `getaddrinfo` gives for a host, in the system's order of preference."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(ip_of(str(info[4][0]))) for info in infos]


@attrs.define
class _Pin:
    """One origin's client, the address it is pinned to and when to resolve the host again."""

    client: Client
    address: str
    until: float


class ReqwestMessageSender:
    """POSTs each request once; returns the HTTP status or the error's name, never raises."""

    def __init__(
        self,
        options: HttpOptions,
        *,
        secrets: tuple[str, ...] = (),
        user_agent: str,
        timestamp: Callable[[], float] = time.time,
        resolve: Resolve = system_resolve,
        repin_seconds: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._options = options
        self._headers = WebhookHeaders(secrets, user_agent, timestamp)
        self._timestamp = timestamp
        self._resolve = resolve
        self._repin_seconds = repin_seconds
        self._monotonic = monotonic
        self._deadline = options.connect_timeout + options.timeout
        self._origins: dict[str, Origin] = {}
        self._pins: dict[Origin, _Pin] = {}
        self._pinning: dict[Origin, asyncio.Future[_Pin]] = {}
        self._retired: list[tuple[float, Client]] = []
        self._in_flight: dict[asyncio.Task[Any], float] = {}
        self._overdue: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"ReqwestMessageSender({self._headers!r})"

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        started = time.perf_counter()
        task = asyncio.current_task()
        assert task is not None, "send runs in a task"
        cancelling = task.cancelling()
        self._in_flight[task] = started
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        try:
            origin = self._origins.get(request.url) or self._origin_of(request.url)
            pin = self._pins.get(origin)
            if pin is None or self._monotonic() >= pin.until:
                pin = await self._pinned(origin)
            return await self._post(pin.client, request, started)
        except asyncio.CancelledError:
            # the watchdog's cancel becomes the attempt's outcome; any other cancel goes on
            if task not in self._overdue or task.uncancel() > cancelling:
                raise
            return DeliveryResult(error="AttemptTimeout", latency_ms=since(started))
        except Exception as error:  # any failure is an outcome to record, not a crash
            return DeliveryResult(error=self._error_name(error, started), latency_ms=since(started))
        finally:
            del self._in_flight[task]
            self._overdue.discard(task)

    async def _watch(self) -> None:
        """The backstop behind reqwest's own deadline: a request still unanswered a second
        past it is cancelled (and logged), so one lost answer cannot hold its row, and a
        half-open breaker's probe, for ever. One timer for all requests, not one each."""
        try:
            while self._in_flight:
                await asyncio.sleep(_WATCH_SECONDS)
                overdue = time.perf_counter() - self._deadline - _WATCH_SECONDS
                for task, started in list(self._in_flight.items()):
                    if started < overdue and task not in self._overdue:
                        log.error(
                            "a request still had no answer %.1f s after it started, past its"
                            " %.1f s deadline: cancelled (reported as AttemptTimeout)",
                            time.perf_counter() - started,
                            self._deadline,
                        )
                        self._overdue.add(task)
                        task.cancel()
        finally:  # idle, or its event loop is closing: the next send starts another
            self._watchdog = None

    async def aclose(self) -> None:
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        clients = [pin.client for pin in self._pins.values()]
        clients += [client for _, client in self._retired]
        self._pins.clear()
        self._retired.clear()
        for client in clients:
            await client.close()

    async def _post(
        self, client: Client, request: DeliveryRequest, started: float
    ) -> DeliveryResult:
        headers = self._headers.for_request(request)
        built = client.post(request.url).headers(headers).body_bytes(request.body)
        async with built.build_streamed() as response:
            # at most the bound is read; leaving the block drops a connection with more unread
            head = await response.body_reader.read(self._options.max_response_bytes)
            status = response.status
            return DeliveryResult(
                status_code=status,
                latency_ms=since(started),
                retry_after_seconds=retry_after(
                    status, response.get_header("Retry-After"), self._timestamp()
                ),
                excerpt=excerpt(bytes(head) if head else b"", self._options.excerpt_chars),
            )

    def _origin_of(self, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise NotHttpUrl(f"not an http(s) URL with a host: {scheme}://")
        origin = (scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme])
        self._origins[url] = origin
        return origin

    async def _pinned(self, origin: Origin) -> _Pin:
        """The origin's client, pinned again if due; one resolution at a time per origin."""
        if self._closed:  # closing dropped every pin, so each later send comes here
            raise RuntimeError("the sender is closed")
        waiting = self._pinning.get(origin)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future: asyncio.Future[_Pin] = asyncio.get_running_loop().create_future()
        self._pinning[origin] = future
        try:
            pin = await self._pin(origin)
        except BaseException as error:
            # waiters get the failure; not a cancel of this task, which would cancel them too
            shared = error if isinstance(error, Exception) else OSError("the lookup was cancelled")
            future.set_exception(shared)
            future.exception()  # retrieved here: callers waiting on it get it raised
            raise
        else:
            future.set_result(pin)
            return pin
        finally:
            del self._pinning[origin]

    async def _pin(self, origin: Origin) -> _Pin:
        _, host, port = origin
        old = self._pins.get(origin)
        literal = _is_literal(host)
        if literal:  # cannot rebind; the start-up check covers it, as on aiohttp
            addresses = [host]
        else:
            try:
                async with asyncio.timeout(self._options.connect_timeout):
                    addresses = await self._resolve(host, port)
                if not addresses:
                    raise OSError(f"{host} resolves to no address")
            except (OSError, TimeoutError) as error:
                if old is None:
                    raise
                # DNS is down, not the target: the address checked before stays good
                log.warning("%s did not resolve (%s); keeping %s", host, error, old.address)
                old.until = self._monotonic() + self._repin_seconds
                return old
        if not self._options.allow_private and not literal:
            refuse_non_public(host, addresses)
        now = self._monotonic()
        await self._close_retired(now)
        if old is not None and old.address == addresses[0]:
            old.until = now + self._repin_seconds
            return old
        if old is not None:
            self._retired.append((now + self._deadline + 1.0, old.client))
        pin = _Pin(self._client(host, addresses[0], port), addresses[0], now + self._repin_seconds)
        self._pins[origin] = pin
        return pin

    def _client(self, host: str, address: str, port: int) -> Client:
        options = self._options
        builder = (
            ClientBuilder()
            .max_connections(options.concurrency)
            .pool_max_idle_per_host(options.concurrency)
            .pool_idle_timeout(timedelta(seconds=options.keepalive_seconds))
            .connect_timeout(timedelta(seconds=options.connect_timeout))
            .read_timeout(timedelta(seconds=options.timeout))
            .timeout(timedelta(seconds=self._deadline))
            .follow_redirects(False)
            .no_proxy()
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
        )
        if not _is_literal(host):
            builder = builder.resolve(host, address, port)
        return builder.build()

    async def _close_retired(self, now: float) -> None:
        due = [client for at, client in self._retired if at <= now]
        self._retired = [(at, client) for at, client in self._retired if at > now]
        for client in due:
            await client.close()

    def _error_name(self, error: Exception, started: float) -> str:
        if isinstance(error, reqwest_errors.RequestTimeoutError):
            if time.perf_counter() - started >= self._deadline * _AT_DEADLINE:
                return "AttemptTimeout"
            # reqwest reports a response that never started as a connect timeout too; only
            # a failure inside the connector (its causes name it) was one
            return "ConnectTimeout" if _while_connecting(error) else "ReadTimeout"
        if isinstance(error, TimeoutError):  # the host did not resolve within the connect timeout
            return "ConnectTimeout"
        return next(
            (name for source, name in _ERROR_NAMES if isinstance(error, source)),
            type(error).__name__,
        )


def _while_connecting(error: reqwest_errors.RequestTimeoutError) -> bool:
    """Do the error's causes (after the first, which quotes the URL) name the connector?"""
    details = getattr(error, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    messages = [str(cause.get("message", "")) for cause in causes or [] if isinstance(cause, dict)]
    return any("connect" in message.lower() for message in messages[1:])


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
