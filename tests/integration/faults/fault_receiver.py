"""A receiver that fails on purpose and records every POST it sees, on 127.0.0.1.

Each POST is recorded with its idempotency key, whether its Standard Webhooks signature
verified (`adapters.webhooks.verify`), a digest of what it carried, and the fault it was
answered with. `processed` deliveries are those the receiver acted on (it answered, or began
to answer, 2xx): a second processed delivery of one message is a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import attrs
from aiohttp import web

from adapters.webhooks import WebhookVerificationError, verify

OK, SLOW, RESET = "ok", "slow", "reset"
PROCESSED = frozenset({OK, SLOW, RESET})


@attrs.frozen(kw_only=True)
class Faults:
    """Probabilities of each fault per POST; the rest are answered 200."""

    error_500: float = 0.0
    error_503: float = 0.0
    too_many: float = 0.0  # 429 with Retry-After
    slow: float = 0.0  # 200, but only after `slow_seconds` (set it beyond the HTTP timeout)
    reset: float = 0.0  # headers and part of the body, then a TCP reset
    retry_after_seconds: int = 1
    slow_seconds: float = 0.0
    latency_seconds: float = 0.0  # every answer waits this long (keeps rows in flight)

    def choose(self, rng: random.Random) -> str:
        draw = rng.random()
        for outcome, probability in self._table():
            if draw < probability:
                return outcome
            draw -= probability
        return OK

    def _table(self) -> list[tuple[str, float]]:
        return [
            ("500", self.error_500),
            ("503", self.error_503),
            ("429", self.too_many),
            (SLOW, self.slow),
            (RESET, self.reset),
        ]


@attrs.frozen(kw_only=True)
class Delivery:
    message_id: int | None
    user_id: object
    key: str | None
    webhook_id: str | None
    signature_valid: bool
    content: str | None  # sha256 of what the body carried (`message`, or `data` as JSON)
    outcome: str
    at: float  # time.monotonic() when the POST arrived

    @property
    def processed(self) -> bool:
        return self.outcome in PROCESSED


def content_digest(value: object) -> str | None:
    """The digest the receiver records: text as is, anything else as canonical JSON."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class FaultReceiver:
    """Serves on its own event loop in a background thread; `with` starts and stops it."""

    def __init__(
        self,
        *,
        secret: str,
        faults: Faults | None = None,
        seed: int = 7,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.secret = secret
        self.faults = faults or Faults()
        self.port = 0
        self._rng = random.Random(seed)
        self._ssl = ssl_context
        self._deliveries: list[Delivery] = []
        self._down = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        self._site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hooks"

    def deliveries(self) -> list[Delivery]:
        return list(self._deliveries)

    def __enter__(self) -> FaultReceiver:
        self._thread.start()
        self._call(self._runner.setup())
        self._call(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._runner.cleanup())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Refuse connections (and reset kept-alive ones) for the duration of the block."""
        self._down = True
        self._call(self._unlisten())
        try:
            yield
        finally:
            self._call(self._listen())
            self._down = False

    def _call(self, work: Awaitable[Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(_awaited(work), self._loop).result(timeout=15)

    async def _listen(self) -> None:
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._ssl)
        await self._site.start()
        self.port = int(self._runner.addresses[-1][1])

    async def _unlisten(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{path:.*}", self._post)
        return app

    async def _post(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self._down:
            return _reset(request, web.StreamResponse())
        outcome = self.faults.choose(self._rng)
        self._deliveries.append(self._record(request.headers, body, outcome))
        if self.faults.latency_seconds:
            await asyncio.sleep(self.faults.latency_seconds)
        return await _ANSWERS[outcome](self, request)

    def _record(self, headers: Mapping[str, str], body: bytes, outcome: str) -> Delivery:
        document = _json_object(body)
        carried = document.get("message", document.get("data"))
        return Delivery(
            message_id=_int_or_none(document.get("id")),
            user_id=document.get("user_id"),
            key=headers.get("Idempotency-Key"),
            webhook_id=headers.get("webhook-id"),
            signature_valid=self._verified(headers, body),
            content=content_digest(carried),
            outcome=outcome,
            at=time.monotonic(),
        )

    def _verified(self, headers: Mapping[str, str], body: bytes) -> bool:
        try:
            verify(self.secret, headers, body, now=time.time())
        except WebhookVerificationError:
            return False
        return True

    async def _ok(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, text="ok")

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.faults.slow_seconds)
        return web.Response(status=200, text="ok, but late")

    async def _too_many(self, request: web.Request) -> web.StreamResponse:
        retry_after = str(self.faults.retry_after_seconds)
        return web.Response(status=429, text="slow down", headers={"Retry-After": retry_after})

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_length = 1024
        await response.prepare(request)
        await response.write(b'{"partial":')
        return _reset(request, response)


def _status(code: int) -> Callable[[FaultReceiver, web.Request], Awaitable[web.StreamResponse]]:
    async def answer(receiver: FaultReceiver, request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, text=f"injected {code}")

    return answer


_ANSWERS: dict[str, Callable[[FaultReceiver, web.Request], Awaitable[web.StreamResponse]]] = {
    OK: FaultReceiver._ok,
    SLOW: FaultReceiver._slow,
    RESET: FaultReceiver._reset,
    "429": FaultReceiver._too_many,
    "500": _status(500),
    "503": _status(503),
}


def _reset(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Drop the connection with a TCP RST (SO_LINGER 0), not an orderly close."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return response


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _awaited(work: Awaitable[Any]) -> Any:
    return await work
