"""The sender contract on the wire: what an HTTP sender must do beyond the port's contract.

Subclasses provide `make_sender` (timeouts of `TIMEOUT`, signing with `SECRET`, user agent
`USER_AGENT`); the target is a real aiohttp server on 127.0.0.1, one per subclass.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from domain.delivery import Verdict, classify
from tests.contracts.http_target import HUGE_BYTES, TIMEOUT, Endpoint, build_app
from tests.contracts.sender_contract import MakeSender, MessageSenderContract, deliver, request_to
from tests.integration.http_servers import closed_port, serving

SECRET = "whsec_" + base64.b64encode(b"integration signing key, 32 b!").decode()
USER_AGENT = "outbox-test/0"
__all__ = ["SECRET", "TIMEOUT", "USER_AGENT", "HttpMessageSenderContract"]


class HttpMessageSenderContract(MessageSenderContract):
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls) -> Iterator[Endpoint]:
        endpoint = Endpoint()
        with serving(build_app(endpoint)) as url:
            endpoint.url = url
            yield endpoint

    @pytest.fixture
    def target(self, server: Endpoint) -> Endpoint:
        server.forget()
        return server

    def test_the_signature_verifies_with_the_standard_webhooks_library(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        deliver(make_sender, request_to(f"{target.url}/hooks"))

        seen = target.seen[0]
        assert Webhook(SECRET).verify(seen.body, seen.headers) == {"id": 7, "message": "hello"}

    def test_the_standard_webhooks_library_rejects_a_tampered_body(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        deliver(make_sender, request_to(f"{target.url}/hooks"))

        seen = target.seen[0]
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(seen.body.replace(b"hello", b"hellO"), seen.headers)

    def test_the_standard_webhooks_library_rejects_a_tampered_timestamp(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        deliver(make_sender, request_to(f"{target.url}/hooks"))

        seen = target.seen[0]
        moved = str(int(seen.headers["webhook-timestamp"]) - 1)
        with pytest.raises(WebhookVerificationError):
            Webhook(SECRET).verify(seen.body, seen.headers | {"webhook-timestamp": moved})

    def test_two_sends_of_one_request_share_the_webhook_id_and_get_new_timestamps(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        hooks = request_to(f"{target.url}/hooks")

        deliver(make_sender, hooks, hooks, pause=1.1)

        first, second = (seen.headers for seen in target.seen)
        assert first["webhook-id"] == second["webhook-id"] == "msg_tok_7"
        assert int(second["webhook-timestamp"]) > int(first["webhook-timestamp"])

    def test_the_request_carries_the_contract_headers(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        deliver(make_sender, request_to(f"{target.url}/hooks"))

        headers = target.seen[0].headers
        assert headers["content-type"] == "application/json"
        assert headers["user-agent"] == USER_AGENT
        assert headers["webhook-signature"].startswith("v1,")

    def test_a_refused_connection_is_a_connect_error_and_retried(
        self, make_sender: MakeSender
    ) -> None:
        [result] = deliver(make_sender, request_to(f"http://127.0.0.1:{closed_port()}/hooks"))

        assert result.error == "ConnectError"
        assert classify(result) is Verdict.RETRY

    def test_a_connection_reset_mid_response_is_retried(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/reset"))

        assert result.error is not None
        assert classify(result) is Verdict.RETRY

    def test_a_server_slower_than_the_timeout_is_a_read_timeout_and_retried(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/slow"))

        assert result.error == "ReadTimeout"
        assert classify(result) is Verdict.RETRY

    def test_a_server_trickling_bytes_is_cut_off_by_the_attempt_deadline(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/trickle"))

        assert result.error == "AttemptTimeout"
        assert classify(result) is Verdict.RETRY

    def test_a_huge_response_is_not_read_beyond_the_bound(
        self, target: Endpoint, make_sender: MakeSender
    ) -> None:
        [result] = deliver(make_sender, request_to(f"{target.url}/huge"))

        assert result.status_code == 200
        assert result.excerpt == "x" * 199 + "…"
        assert target.huge_finished.wait(timeout=5), "the server never noticed the hang-up"
        assert target.huge_written < HUGE_BYTES // 4
