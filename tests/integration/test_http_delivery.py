"""Both real senders (httpx on aiohttp, and raw aiohttp) against a real aiohttp server."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
import threading
from collections.abc import Iterator

import attrs
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from adapters.aiohttp_sender import AiohttpMessageSender, AiohttpOptions
from adapters.http import HttpxMessageSender, make_http_client
from application.ports import MessageSender
from domain.delivery import DeliveryRequest, DeliveryResult, Verdict, classify
from domain.retry import RetryPolicy
from tests.integration.http_servers import closed_port, serving

SECRET = "whsec_" + base64.b64encode(b"integration signing key, 32 b!").decode()
HUGE_BYTES = 10 * 1024 * 1024
TIMEOUT = 0.5


@attrs.define
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class Endpoint:
    """What the server saw: every request, and how much of the huge body it managed to write."""

    seen: list[Seen] = attrs.field(factory=list)
    huge_written: int = 0
    huge_finished: threading.Event = attrs.field(factory=threading.Event)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


async def record(request: web.Request) -> Seen:
    seen = Seen(request.path, dict(request.headers), await request.read())
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


ENDPOINT = web.AppKey("endpoint", Endpoint)


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


@pytest.fixture(scope="module")
def endpoint() -> Endpoint:
    return Endpoint()


@pytest.fixture(scope="module")
def server(endpoint: Endpoint) -> Iterator[str]:
    with serving(build_app(endpoint)) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh(endpoint: Endpoint) -> None:
    endpoint.seen.clear()


def request_to(url: str, body: bytes = b'{"id":7,"message":"hello"}') -> DeliveryRequest:
    return DeliveryRequest(message_id=7, url=url, body=body, idempotency_key="msg_tok_7", attempt=1)


def httpx_sender() -> MessageSender:
    client = make_http_client(timeout=TIMEOUT, connect_timeout=TIMEOUT, concurrency=4)
    return HttpxMessageSender(client, secrets=(SECRET,), user_agent="outbox-test/0")


def aiohttp_sender() -> MessageSender:
    options = AiohttpOptions(timeout=TIMEOUT, connect_timeout=TIMEOUT, concurrency=4)
    return AiohttpMessageSender(options, secrets=(SECRET,), user_agent="outbox-test/0")


SENDERS = {"httpx": httpx_sender, "aiohttp": aiohttp_sender}
_current = {"make": httpx_sender}


@pytest.fixture(autouse=True, params=sorted(SENDERS))
def sender_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every behaviour holds for both senders behind the port."""
    _current["make"] = SENDERS[request.param]
    yield request.param
    _current["make"] = httpx_sender


def deliver(*requests: DeliveryRequest, pause: float = 0.0) -> list[DeliveryResult]:
    """Send each request in turn through a production sender, `pause` seconds apart."""

    async def run() -> list[DeliveryResult]:
        sender = _current["make"]()
        try:
            results = []
            for index, request in enumerate(requests):
                await asyncio.sleep(pause if index else 0)
                results.append(await sender.send(request))
            return results
        finally:
            await sender.aclose()

    return asyncio.run(run())


def test_the_signature_verifies_with_the_standard_webhooks_library(
    server: str, endpoint: Endpoint
) -> None:
    deliver(request_to(f"{server}/hooks"))

    seen = endpoint.seen[0]
    assert Webhook(SECRET).verify(seen.body, seen.headers) == {"id": 7, "message": "hello"}


def test_the_standard_webhooks_library_rejects_a_tampered_body(
    server: str, endpoint: Endpoint
) -> None:
    deliver(request_to(f"{server}/hooks"))

    seen = endpoint.seen[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(seen.body.replace(b"hello", b"hellO"), seen.headers)


def test_the_standard_webhooks_library_rejects_a_tampered_timestamp(
    server: str, endpoint: Endpoint
) -> None:
    deliver(request_to(f"{server}/hooks"))

    seen = endpoint.seen[0]
    moved = str(int(seen.headers["webhook-timestamp"]) - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(seen.body, seen.headers | {"webhook-timestamp": moved})


def test_two_sends_of_one_request_share_the_key_and_get_new_timestamps(
    server: str, endpoint: Endpoint
) -> None:
    deliver(request_to(f"{server}/hooks"), request_to(f"{server}/hooks"), pause=1.1)

    first, second = (seen.headers for seen in endpoint.seen)
    assert first["Idempotency-Key"] == second["Idempotency-Key"] == "msg_tok_7"
    assert first["webhook-id"] == second["webhook-id"] == "msg_tok_7"
    assert int(second["webhook-timestamp"]) > int(first["webhook-timestamp"])


def test_the_request_carries_the_contract_headers(server: str, endpoint: Endpoint) -> None:
    deliver(request_to(f"{server}/hooks"))

    headers = endpoint.seen[0].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "outbox-test/0"
    assert headers["webhook-signature"].startswith("v1,")


@pytest.mark.parametrize("code", [200, 201, 204])
def test_a_2xx_is_sent(server: str, code: int) -> None:
    [result] = deliver(request_to(f"{server}/status/{code}"))

    assert result.status_code == code
    assert classify(result) is Verdict.SENT


@pytest.mark.parametrize("code", [500, 502, 503, 504, 408, 429])
def test_a_transient_status_is_retried(server: str, code: int) -> None:
    [result] = deliver(request_to(f"{server}/status/{code}"))

    assert result.status_code == code
    assert classify(result) is Verdict.RETRY


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 422])
def test_a_permanent_client_error_is_dead(server: str, code: int) -> None:
    [result] = deliver(request_to(f"{server}/status/{code}"))

    assert result.status_code == code
    assert classify(result) is Verdict.DEAD


@pytest.mark.parametrize("code", [301, 302, 307])
def test_a_redirect_is_dead_and_not_followed(server: str, endpoint: Endpoint, code: int) -> None:
    [result] = deliver(request_to(f"{server}/status/{code}"))

    assert result.status_code == code
    assert classify(result) is Verdict.DEAD
    assert "/redirected" not in endpoint.paths()


def test_a_refused_connection_is_a_connect_error_and_retried() -> None:
    [result] = deliver(request_to(f"http://127.0.0.1:{closed_port()}/hooks"))

    assert result.error == "ConnectError"
    assert classify(result) is Verdict.RETRY


def test_a_connection_reset_mid_response_is_retried(server: str) -> None:
    [result] = deliver(request_to(f"{server}/reset"))

    assert result.error is not None
    assert classify(result) is Verdict.RETRY


def test_a_server_slower_than_the_timeout_is_a_read_timeout_and_retried(server: str) -> None:
    [result] = deliver(request_to(f"{server}/slow"))

    assert result.error == "ReadTimeout"
    assert classify(result) is Verdict.RETRY


def test_a_server_trickling_bytes_is_cut_off_by_the_attempt_deadline(server: str) -> None:
    [result] = deliver(request_to(f"{server}/trickle"))

    assert result.error == "AttemptTimeout"
    assert classify(result) is Verdict.RETRY


def test_retry_after_is_reported_and_honoured_by_the_retry_policy(server: str) -> None:
    [result] = deliver(request_to(f"{server}/status/503?retry_after=2"))

    assert result.retry_after_seconds is not None and result.retry_after_seconds >= 2
    policy = RetryPolicy(base_seconds=0.1, max_seconds=60)
    assert policy.delay(1, 0.0, result.retry_after_seconds) >= 2


def test_a_huge_response_is_not_read_beyond_the_bound(server: str, endpoint: Endpoint) -> None:
    endpoint.huge_written = 0
    endpoint.huge_finished.clear()

    [result] = deliver(request_to(f"{server}/huge"))

    assert result.status_code == 200
    assert result.excerpt == "x" * 199 + "…"
    assert endpoint.huge_finished.wait(timeout=5), "the server never noticed the hang-up"
    assert endpoint.huge_written < HUGE_BYTES // 4
