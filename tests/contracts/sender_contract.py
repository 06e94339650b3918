"""The message sender contract: every sender's test module subclasses this.

Subclasses provide two fixtures: `target`, where requests go and what arrived there, and
`make_sender`, which builds a sender inside the running event loop. A target answers
`POST /status/<code>` with that code (and `Retry-After: <n>` given `?retry_after=<n>`) and
anything else with 204.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import attrs
import pytest

from application.ports import MessageSender
from domain.delivery import DeliveryRequest, DeliveryResult, Verdict, classify
from domain.retry import RetryPolicy

MakeSender = Callable[[], MessageSender]


@attrs.frozen
class Received:
    path: str
    idempotency_key: str | None
    body: bytes


class Target(Protocol):
    @property
    def url(self) -> str:
        """The base URL, without a trailing slash."""
        ...

    def received(self) -> list[Received]:
        """Every request that reached the target, in order."""
        ...


def request_to(url: str, body: bytes = b'{"id":7,"message":"hello"}') -> DeliveryRequest:
    return DeliveryRequest(message_id=7, url=url, body=body, idempotency_key="msg_tok_7", attempt=1)


def deliver(
    make_sender: MakeSender, *requests: DeliveryRequest, pause: float = 0.0
) -> list[DeliveryResult]:
    """Send each request in turn through one new sender, `pause` seconds apart, then close it."""

    async def run() -> list[DeliveryResult]:
        sender = make_sender()
        try:
            results = []
            for index, request in enumerate(requests):
                await asyncio.sleep(pause if index else 0)
                results.append(await sender.send(request))
            return results
        finally:
            await sender.aclose()

    return asyncio.run(run())


class MessageSenderContract:
    def test_the_target_receives_the_body_and_the_key_once(
        self, target: Target, make_sender: MakeSender
    ) -> None:
        request = request_to(f"{target.url}/hooks", body=b'{"id":7,"message":"h\xc3\xa9"}')

        deliver(make_sender, request)

        assert target.received() == [Received("/hooks", "msg_tok_7", request.body)]

    def test_two_sends_of_one_request_carry_the_same_key(
        self, target: Target, make_sender: MakeSender
    ) -> None:
        deliver(make_sender, request_to(f"{target.url}/hooks"), request_to(f"{target.url}/hooks"))

        assert [r.idempotency_key for r in target.received()] == ["msg_tok_7", "msg_tok_7"]

    @pytest.mark.parametrize("code", [200, 201, 204])
    def test_a_2xx_is_sent(self, target: Target, make_sender: MakeSender, code: int) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/status/{code}"))

        assert result.status_code == code
        assert classify(result) is Verdict.SENT

    @pytest.mark.parametrize("code", [500, 502, 503, 504, 408, 429])
    def test_a_transient_status_is_retried(
        self, target: Target, make_sender: MakeSender, code: int
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/status/{code}"))

        assert result.status_code == code
        assert classify(result) is Verdict.RETRY

    @pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 422])
    def test_a_permanent_client_error_is_dead(
        self, target: Target, make_sender: MakeSender, code: int
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/status/{code}"))

        assert result.status_code == code
        assert classify(result) is Verdict.DEAD

    @pytest.mark.parametrize("code", [301, 302, 307])
    def test_a_redirect_is_dead_and_not_followed(
        self, target: Target, make_sender: MakeSender, code: int
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/status/{code}"))

        assert result.status_code == code
        assert classify(result) is Verdict.DEAD
        assert [r.path for r in target.received()] == [f"/status/{code}"]

    @pytest.mark.parametrize("code", [429, 503])
    def test_retry_after_is_reported_and_honoured_by_the_retry_policy(
        self, target: Target, make_sender: MakeSender, code: int
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/status/{code}?retry_after=2"))

        assert result.retry_after_seconds == 2
        policy = RetryPolicy(base_seconds=0.1, max_seconds=60)
        assert policy.delay(1, 0.0, result.retry_after_seconds) >= 2

    def test_retry_after_is_ignored_on_other_statuses(
        self, target: Target, make_sender: MakeSender
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/status/500?retry_after=2"))

        assert result.status_code == 500 and result.retry_after_seconds is None

    def test_closing_a_sender_that_never_sent_is_harmless(self, make_sender: MakeSender) -> None:
        assert deliver(make_sender) == []
