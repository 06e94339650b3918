"""`outbox receiver` on a real port, fed by the production sender and by plain httpx."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import Iterator

import httpx
import pytest

from adapters.httpx_sender import HttpxMessageSender, make_http_client
from domain.delivery import DeliveryRequest, DeliveryResult
from entrypoints.receiver import build_app
from tests.integration.http_servers import serving

SECRET = "whsec_" + base64.b64encode(b"receiver test signing key, 32 b").decode()
OTHER = "whsec_" + base64.b64encode(b"a key the receiver does not know").decode()


@pytest.fixture
def receiver() -> Iterator[str]:
    with serving(build_app(secret=SECRET)) as url:
        yield url


def message(text: str, key: str = "msg_tok_1", message_id: int = 1) -> DeliveryRequest:
    body = json.dumps({"id": message_id, "user_id": 3, "message": text}).encode()
    return DeliveryRequest(message_id=message_id, url="", body=body, idempotency_key=key, attempt=1)


def deliver(url: str, *requests: DeliveryRequest, secret: str = SECRET) -> list[DeliveryResult]:
    async def run() -> list[DeliveryResult]:
        client = make_http_client(timeout=5, connect_timeout=5, concurrency=2)
        sender = HttpxMessageSender(client, secrets=(secret,), user_agent="outbox-test/0")
        try:
            return [await sender.send(_to(r, url)) for r in requests]
        finally:
            await sender.aclose()

    return asyncio.run(run())


def _to(request: DeliveryRequest, url: str) -> DeliveryRequest:
    return DeliveryRequest(
        message_id=request.message_id,
        url=f"{url}/webhooks",
        body=request.body,
        idempotency_key=request.idempotency_key,
        attempt=request.attempt,
    )


def stats(url: str) -> dict[str, object]:
    document: dict[str, object] = httpx.get(f"{url}/stats").json()
    return document


def deliveries(url: str) -> list[dict[str, object]]:
    found = stats(url)["deliveries"]
    assert isinstance(found, list)
    return found


def test_a_signed_delivery_is_accepted_and_listed(receiver: str) -> None:
    [result] = deliver(receiver, message("hello", key="msg_a_1", message_id=1))

    assert result.status_code == 200
    [seen] = deliveries(receiver)
    assert seen["key"] == seen["webhook_id"] == "msg_a_1"
    assert seen["message_id"] == 1
    assert seen["signature_valid"] is True
    assert stats(receiver)["received"] == 1


def test_a_delivery_signed_with_another_secret_gets_400_with_the_reason(receiver: str) -> None:
    [result] = deliver(receiver, message("hello"), secret=OTHER)

    assert result.status_code == 400
    assert "no matching signature" in result.excerpt
    assert stats(receiver)["bad_signatures"] == 1
    assert deliveries(receiver)[0]["signature_valid"] is False


def test_an_unsigned_delivery_gets_400(receiver: str) -> None:
    response = httpx.post(f"{receiver}/webhooks", content=b"{}", headers={"Idempotency-Key": "k"})

    assert response.status_code == 400
    assert "missing webhook-id header" in response.text


def test_a_redelivered_key_is_acknowledged_and_counted_as_a_duplicate(receiver: str) -> None:
    results = deliver(receiver, message("hello", key="msg_a_1"), message("hello", key="msg_a_1"))

    assert [r.status_code for r in results] == [200, 200]
    assert (stats(receiver)["received"], stats(receiver)["duplicates"]) == (1, 1)


def test_fail_once_fails_the_first_delivery_of_a_key_with_retry_after(receiver: str) -> None:
    first, second = deliver(receiver, message("x [fail-once]"), message("x [fail-once]"))

    assert (first.status_code, first.retry_after_seconds) == (503, 1.0)
    assert second.status_code == 200
    assert (stats(receiver)["failed"], stats(receiver)["received"]) == (1, 1)


def test_fail_once_fails_each_new_key_once(receiver: str) -> None:
    results = deliver(receiver, message("[fail-once]", key="k1"), message("[fail-once]", key="k2"))

    assert [r.status_code for r in results] == [503, 503]


def test_reject_answers_422(receiver: str) -> None:
    [result] = deliver(receiver, message("please [reject] this"))

    assert result.status_code == 422
    assert (stats(receiver)["rejected"], stats(receiver)["received"]) == (1, 0)


def test_the_fail_rate_injects_503s() -> None:
    app = build_app(secret=None, fail_rate=1.0, rng=random.Random(1))

    with serving(app) as url:
        [result] = deliver(url, message("hello"))
        failed = stats(url)["failed"]

    assert result.status_code == 503
    assert failed == 1


def test_without_a_secret_signatures_are_not_checked() -> None:
    with serving(build_app(secret=None)) as url:
        [result] = deliver(url, message("hello"), secret=OTHER)
        [seen] = deliveries(url)

    assert result.status_code == 200
    assert seen["signature_valid"] is None


def test_during_a_rotation_a_signature_by_either_secret_is_accepted() -> None:
    with serving(build_app(secret=f"{SECRET} {OTHER}")) as url:
        results = deliver(url, message("a", key="k1"), message("b", key="k2"), secret=OTHER)

    assert [r.status_code for r in results] == [200, 200]


def test_a_malformed_secret_stops_the_receiver_before_it_serves() -> None:
    with pytest.raises(ValueError, match="whsec_<base64>"):
        build_app(secret="whsec_not*base64")
