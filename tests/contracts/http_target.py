"""A real webhook target on aiohttp: records what arrives, and misbehaves on request.

`/status/<code>` answers that code (3xx with a `Location`, `Retry-After` from `?retry_after=`),
`/slow` answers after three timeouts, `/trickle` dribbles its body, `/reset` resets the
connection mid-response, `/huge` streams 10 MiB; anything else answers 204.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

import attrs
from aiohttp import web

from tests.contracts.sender_contract import Received

HUGE_BYTES = 10 * 1024 * 1024
TIMEOUT = 0.5  # the senders' timeout the slow paths are measured against


@attrs.define
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class Endpoint:
    """What the server saw: every request, and how much of the huge body it managed to write."""

    url: str = ""
    seen: list[Seen] = attrs.field(factory=list)
    huge_written: int = 0
    huge_finished: threading.Event = attrs.field(factory=threading.Event)

    def received(self) -> list[Received]:
        return [Received(s.path, s.headers.get("idempotency-key"), s.body) for s in self.seen]

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def forget(self) -> None:
        self.seen.clear()
        self.huge_written = 0
        self.huge_finished.clear()


ENDPOINT = web.AppKey("endpoint", Endpoint)


async def record(request: web.Request) -> Seen:
    # names lowercased: HTTP header names are case-insensitive and engines differ in the case
    headers = {name.lower(): value for name, value in request.headers.items()}
    seen = Seen(request.path, headers, await request.read())
    request.app[ENDPOINT].seen.append(seen)
    return seen


async def answer_status(request: web.Request) -> web.Response:
    await record(request)
    status = int(request.match_info["code"])
    headers = {"Location": "/redirected"} if 300 <= status < 400 else {}
    if "retry_after" in request.query:
        headers["Retry-After"] = request.query["retry_after"]
    return web.Response(status=status, headers=headers, text=f"status {status}")


async def answer_slowly(request: web.Request) -> web.Response:
    await record(request)
    await asyncio.sleep(TIMEOUT * 3)
    return web.Response(status=200)


async def trickle(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    await response.prepare(request)
    for _ in range(20):  # each byte comes well within the read timeout, all of them do not
        await response.write(b".")
        await asyncio.sleep(TIMEOUT / 5)
    return response


async def reset_mid_response(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.content_length = 1000
    await response.prepare(request)
    await response.write(b"partial")
    await asyncio.sleep(0.05)
    _socket(request).setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert request.transport is not None
    request.transport.abort()  # linger 0: the kernel answers with a TCP reset
    return response


async def huge(request: web.Request) -> web.StreamResponse:
    endpoint = request.app[ENDPOINT]
    _socket(request).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    response = web.StreamResponse(status=200)
    response.content_length = HUGE_BYTES
    await response.prepare(request)
    try:
        for _ in range(HUGE_BYTES // 65536):
            await response.write(b"x" * 65536)
            endpoint.huge_written += 65536
    except ConnectionError:
        pass  # the client hung up, as it should
    finally:
        endpoint.huge_finished.set()
    return response


async def accept(request: web.Request) -> web.Response:
    await record(request)
    return web.Response(status=204)


def _socket(request: web.Request) -> socket.socket:
    assert request.transport is not None
    sock: socket.socket = request.transport.get_extra_info("socket")
    return sock


def build_app(endpoint: Endpoint) -> web.Application:
    app = web.Application()
    app[ENDPOINT] = endpoint
    app.router.add_post("/status/{code}", answer_status)
    app.router.add_post("/slow", answer_slowly)
    app.router.add_post("/trickle", trickle)
    app.router.add_post("/reset", reset_mid_response)
    app.router.add_post("/huge", huge)
    app.router.add_post("/{path:.*}", accept)
    return app
