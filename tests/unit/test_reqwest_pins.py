"""How the reqwest sender pins each host: one lookup at a time, every answer checked, a
client kept while the answer holds and replaced (the old one closed later) when it changes."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any
from unittest.mock import AsyncMock

import pytest
from pyreqwest import exceptions as reqwest_errors
from pytest_mock import MockerFixture

from adapters.http_common import HttpOptions
from adapters.reqwest_sender import ReqwestMessageSender
from domain.delivery import DeliveryRequest, DeliveryResult

URL = "https://hooks.example.com/in"
PUBLIC, OTHER_PUBLIC, PRIVATE = "93.184.215.14", "93.184.215.15", "10.0.0.5"


class World:
    """The resolver's answer, the monotonic clock, and the clients the sender built."""

    def __init__(self, mocker: MockerFixture) -> None:
        self.answer, self.now, self.lookups = PUBLIC, 0.0, 0
        self.clients: list[Any] = []
        options = HttpOptions(timeout=2, connect_timeout=1, concurrency=4)
        self.sender = ReqwestMessageSender(
            options,
            user_agent="t",
            resolve=self.resolve,
            repin_seconds=10,
            monotonic=lambda: self.now,
        )
        mocker.patch.object(self.sender, "_client", side_effect=self.build)
        mocker.patch.object(self.sender, "_post", side_effect=self.post)

    @staticmethod
    async def resolve_public(host: str, port: int) -> list[str]:
        return [PUBLIC]

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        await asyncio.sleep(0.01)
        return [self.answer]

    def build(self, host: str, address: str, port: int) -> Any:
        client = AsyncMock(name=f"client for {address}")
        client.address = address
        self.clients.append(client)
        return client

    async def post(self, client: Any, request: DeliveryRequest, started: float) -> DeliveryResult:
        return DeliveryResult(status_code=204, excerpt=client.address)

    def send(self, *, after: float = 0.0, count: int = 1) -> list[DeliveryResult]:
        self.now += after
        request = DeliveryRequest(message_id=1, url=URL, body=b"{}", idempotency_key="k", attempt=1)
        return list(asyncio.run(_gather(*(self.sender.send(request) for _ in range(count)))))


async def _gather(*sends: Any) -> list[DeliveryResult]:
    return list(await asyncio.gather(*sends))


@pytest.fixture
def world(mocker: MockerFixture) -> World:
    return World(mocker)


def test_concurrent_first_sends_share_one_lookup_and_one_client(world: World) -> None:
    results = world.send(count=20)

    assert [r.excerpt for r in results] == [PUBLIC] * 20
    assert world.lookups == 1 and len(world.clients) == 1


def test_an_unchanged_answer_keeps_the_client_and_its_connections(world: World) -> None:
    world.send()
    world.send(after=11)

    assert world.lookups == 2 and len(world.clients) == 1


def test_a_name_rebound_to_a_private_address_is_refused_at_the_next_lookup(world: World) -> None:
    [first] = world.send()
    world.answer = PRIVATE
    [within_pin] = world.send(after=5)
    [rebound] = world.send(after=6)

    assert first.status_code == within_pin.status_code == 204
    assert rebound.error == "ConnectError" and rebound.status_code is None
    assert len(world.clients) == 1


def test_a_changed_answer_gets_a_new_client_and_the_old_one_is_closed_after_its_requests(
    world: World,
) -> None:
    world.send()
    world.answer = OTHER_PUBLIC
    [moved] = world.send(after=11)
    old, new = world.clients
    assert moved.excerpt == OTHER_PUBLIC and old.close.await_count == 0

    world.answer = PUBLIC
    world.send(after=11)  # the old client's grace (the attempt deadline) is long over

    assert old.close.await_count == 1 and new.close.await_count == 0


def test_closing_the_sender_closes_every_client_it_built(world: World) -> None:
    world.send()
    world.answer = OTHER_PUBLIC
    world.send(after=11)

    asyncio.run(world.sender.aclose())

    assert [client.close.await_count for client in world.clients] == [1, 1]


def test_a_closed_sender_sends_nothing(world: World) -> None:
    world.send()
    asyncio.run(world.sender.aclose())

    [after] = world.send()

    assert after.error == "RuntimeError" and len(world.clients) == 1


def test_a_lookup_that_fails_is_a_connect_error(world: World) -> None:
    async def failing(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    world.sender._resolve = failing

    [result] = world.send()

    assert result.error == "ConnectError"


def test_a_failed_lookup_keeps_the_address_checked_before(world: World) -> None:
    world.send()

    async def failing(host: str, port: int) -> list[str]:
        raise OSError("Temporary failure in name resolution")

    world.sender._resolve = failing
    [during_outage] = world.send(after=11)

    assert during_outage.status_code == 204 and during_outage.excerpt == PUBLIC
    assert len(world.clients) == 1


def test_a_url_that_is_not_http_is_unsupported(world: World) -> None:
    request = DeliveryRequest(
        message_id=1, url="ftp://hooks.example.com/x", body=b"{}", idempotency_key="k", attempt=1
    )

    result = asyncio.run(world.sender.send(request))

    assert result.error == "UnsupportedProtocol" and world.lookups == 0


def test_a_request_whose_answer_never_comes_is_cut_off_by_the_watchdog(
    mocker: MockerFixture, caplog: pytest.LogCaptureFixture
) -> None:
    options = HttpOptions(timeout=0.1, connect_timeout=0.1, concurrency=4)
    sender = ReqwestMessageSender(options, user_agent="t", resolve=World.resolve_public)

    async def never(*args: object) -> DeliveryResult:
        await asyncio.Event().wait()  # an answer reqwest's own deadline never delivered
        raise AssertionError("unreachable")

    mocker.patch.object(sender, "_client")
    mocker.patch.object(sender, "_post", side_effect=never)
    request = DeliveryRequest(message_id=1, url=URL, body=b"{}", idempotency_key="k", attempt=1)

    async def run() -> tuple[DeliveryResult, bool]:
        result = await asyncio.wait_for(sender.send(request), timeout=10)
        return result, asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    result, clean = asyncio.run(run())

    assert result.error == "AttemptTimeout" and clean
    assert "no answer" in caplog.text


def test_a_cancel_from_outside_still_cancels_the_send(mocker: MockerFixture) -> None:
    options = HttpOptions(timeout=0.1, connect_timeout=0.1, concurrency=4)
    sender = ReqwestMessageSender(options, user_agent="t", resolve=World.resolve_public)

    async def never(*args: object) -> DeliveryResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    mocker.patch.object(sender, "_client")
    mocker.patch.object(sender, "_post", side_effect=never)
    request = DeliveryRequest(message_id=1, url=URL, body=b"{}", idempotency_key="k", attempt=1)

    async def run() -> None:
        task = asyncio.ensure_future(sender.send(request))
        await asyncio.sleep(0.05)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run())


def _timeout(kind: type[Exception], *causes: str) -> Exception:
    first = "error sending request for url (https://hooks.example.com/connect)"
    return kind("timeout", {"causes": [{"message": m} for m in (first, *causes)]})


@pytest.mark.parametrize(
    ("error", "name"),
    [
        # the connector timed out: its causes name it (the URL in the first one does not count)
        (_timeout(reqwest_errors.ConnectTimeoutError, "client error (Connect)"), "ConnectTimeout"),
        # reqwest reports a response head that never came as a connect timeout too
        (_timeout(reqwest_errors.ConnectTimeoutError, "operation timed out"), "ReadTimeout"),
        (_timeout(reqwest_errors.ReadTimeoutError, "operation timed out"), "ReadTimeout"),
    ],
)
def test_timeouts_before_the_deadline_are_named_as_httpx_names_them(
    mocker: MockerFixture, error: Exception, name: str
) -> None:
    world = World(mocker)
    mocker.patch.object(world.sender, "_post", side_effect=error)

    [result] = world.send()

    assert result.error == name


def test_a_timeout_at_the_attempt_deadline_is_an_attempt_timeout(mocker: MockerFixture) -> None:
    world = World(mocker)
    clock = itertools.chain([0.0], itertools.repeat(10.0))  # then the 3 s deadline long past
    mocker.patch("adapters.reqwest_sender.time.perf_counter", side_effect=lambda: next(clock))
    error = _timeout(reqwest_errors.ReadTimeoutError, "operation timed out")
    mocker.patch.object(world.sender, "_post", side_effect=error)

    [result] = world.send()

    assert result.error == "AttemptTimeout"


def test_a_cancelled_lookup_fails_the_sends_waiting_on_it_without_cancelling_them(
    world: World,
) -> None:
    request = DeliveryRequest(message_id=1, url=URL, body=b"{}", idempotency_key="k", attempt=1)

    async def run() -> tuple[bool, list[DeliveryResult]]:
        first = asyncio.ensure_future(world.sender.send(request))
        await asyncio.sleep(0)  # the first send starts the lookup
        waiting = [asyncio.ensure_future(world.sender.send(request)) for _ in range(2)]
        await asyncio.sleep(0)
        first.cancel()
        results = await asyncio.gather(*waiting)
        return first.cancelled(), list(results)

    cancelled, results = asyncio.run(run())

    assert cancelled
    assert [r.error for r in results] == ["ConnectError", "ConnectError"]
