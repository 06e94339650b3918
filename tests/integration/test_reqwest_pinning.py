"""The reqwest sender's SSRF guard: it resolves each host itself, checks every address and
pins its client to the answer, so reqwest never dials an address that was not checked."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from adapters.http_common import HttpOptions
from adapters.reqwest_sender import ReqwestMessageSender
from domain.delivery import DeliveryRequest, DeliveryResult
from tests.integration.http_servers import serving


class Answers:
    """A resolver answering each name from a table that a test can change; counts lookups."""

    def __init__(self, **table: str) -> None:
        self.table = {name.replace("_", "."): address for name, address in table.items()}
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return [self.table[host]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answering(name: str) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=200, text=name)

    app = web.Application()
    app.router.add_post("/hook", answer)
    return app


@pytest.fixture
def two_servers() -> Iterator[tuple[int, str, str]]:
    """Servers "first" on 127.0.0.1:P and "second" on 127.0.0.2:P: one port, two addresses."""
    with serving(answering("first")) as first:
        port = urlsplit(first).port
        assert port is not None
        with serving(answering("second"), host="127.0.0.2", port=port) as second:
            yield port, first, second


def send_all(
    sender: ReqwestMessageSender, url: str, clock: Clock, steps: list[float]
) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        results = []
        try:
            for index, step in enumerate(steps):
                clock.now += step
                request = DeliveryRequest(
                    message_id=index, url=url, body=b"{}", idempotency_key=f"k{index}", attempt=1
                )
                results.append(await sender.send(request))
        finally:
            await sender.aclose()
        return results

    return asyncio.run(run())


def make_sender(answers: Answers, clock: Clock, *, allow_private: bool) -> ReqwestMessageSender:
    options = HttpOptions(timeout=2, connect_timeout=1, concurrency=4, allow_private=allow_private)
    return ReqwestMessageSender(
        options, user_agent="test", resolve=answers, repin_seconds=10, monotonic=clock
    )


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"])
def test_a_name_resolving_to_a_non_public_address_is_refused_before_any_connection(
    address: str, two_servers: tuple[int, str, str]
) -> None:
    port, _, _ = two_servers
    answers, clock = Answers(hook_example=address), Clock()
    sender = make_sender(answers, clock, allow_private=False)

    [result] = send_all(sender, f"http://hook.example:{port}/hook", clock, [0])

    assert result.error == "ConnectError" and result.status_code is None
    assert answers.lookups == ["hook.example"]


def test_the_client_dials_the_checked_address_not_its_own_lookup(
    two_servers: tuple[int, str, str],
) -> None:
    port, _, _ = two_servers
    answers, clock = Answers(nowhere_invalid="127.0.0.2"), Clock()  # .invalid never resolves
    sender = make_sender(answers, clock, allow_private=True)

    [result] = send_all(sender, f"http://nowhere.invalid:{port}/hook", clock, [0])

    assert result.status_code == 200 and result.excerpt == "second"


def test_the_host_is_resolved_again_after_the_pin_lapses_and_a_new_answer_is_followed(
    two_servers: tuple[int, str, str],
) -> None:
    port, _, _ = two_servers
    answers, clock = Answers(hook_example="127.0.0.1"), Clock()
    sender = make_sender(answers, clock, allow_private=True)
    url = f"http://hook.example:{port}/hook"

    async def run() -> list[str]:
        seen = []
        try:
            for step, answer in [(0, "127.0.0.1"), (5, "127.0.0.2"), (6, "127.0.0.2")]:
                clock.now += step
                answers.table["hook.example"] = answer
                request = DeliveryRequest(
                    message_id=1, url=url, body=b"{}", idempotency_key="k", attempt=1
                )
                seen.append((await sender.send(request)).excerpt or "")
        finally:
            await sender.aclose()
        return seen

    seen = asyncio.run(run())

    # within the pin the first answer holds; once it lapsed the changed answer is followed
    assert seen == ["first", "first", "second"]
    assert answers.lookups == ["hook.example", "hook.example"]
