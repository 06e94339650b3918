import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from adapters.webhooks import WebhookHeaders, WebhookVerificationError, secret_key, verify
from domain.delivery import DeliveryRequest

SECRET = "whsec_" + base64.b64encode(b"first signing key, 32 bytes long").decode()
OTHER = "whsec_" + base64.b64encode(b"second signing key for rotations").decode()
NOW = 1_700_000_000
BODY = b'{"id":7,"message":"hello"}'


def sign(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header the sender puts on a request with this key and body."""
    signer = WebhookHeaders(secrets, user_agent="test", timestamp=lambda: timestamp)
    request = DeliveryRequest(
        message_id=7, url="https://hooks.example.com", body=body, idempotency_key=msg_id, attempt=1
    )
    return signer.for_request(request)["webhook-signature"]


def headers_for(secrets: list[str], timestamp: int = NOW) -> dict[str, str]:
    msg_id = "msg_k_7"
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, msg_id, timestamp, BODY),
    }


def test_a_signature_is_v1_and_a_base64_sha256_digest() -> None:
    header = sign([SECRET], "msg_k_7", NOW, BODY)

    version, digest = header.split(",")

    assert version == "v1"
    assert len(base64.b64decode(digest)) == 32


def test_our_signature_is_the_one_the_standard_webhooks_library_computes() -> None:
    reference = Webhook(SECRET)

    expected = reference.sign("msg_k_7", datetime.fromtimestamp(NOW, tz=UTC), BODY.decode())

    assert sign([SECRET], "msg_k_7", NOW, BODY) == expected


def test_a_signed_delivery_verifies() -> None:
    headers = headers_for([SECRET])

    verify(SECRET, headers, BODY, now=NOW)


def test_header_names_are_matched_case_insensitively() -> None:
    headers = {name.upper(): value for name, value in headers_for([SECRET]).items()}

    verify(SECRET, headers, BODY, now=NOW)


def test_rotation_signs_with_every_secret_and_either_one_verifies() -> None:
    headers = headers_for([SECRET, OTHER])

    signatures = headers["webhook-signature"].split(" ")

    assert len(signatures) == 2
    verify(SECRET, headers, BODY, now=NOW)
    verify(OTHER, headers, BODY, now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named_in_the_error(missing: str) -> None:
    headers = headers_for([SECRET])
    del headers[missing]

    with pytest.raises(WebhookVerificationError) as raised:
        verify(SECRET, headers, BODY, now=NOW)

    assert raised.value.reason == f"missing {missing} header"


@pytest.mark.parametrize("value", ["soon", "1.5e9", "-1700000000", "１７"])
def test_a_timestamp_that_is_not_an_integer_is_refused(value: str) -> None:
    headers = headers_for([SECRET]) | {"webhook-timestamp": value}

    with pytest.raises(WebhookVerificationError, match="not an integer"):
        verify(SECRET, headers, BODY, now=NOW)


def test_a_timestamp_older_than_the_tolerance_is_refused() -> None:
    headers = headers_for([SECRET], timestamp=NOW - 301)

    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(SECRET, headers, BODY, now=NOW)


def test_a_timestamp_further_ahead_than_the_tolerance_is_refused() -> None:
    headers = headers_for([SECRET], timestamp=NOW + 301)

    with pytest.raises(WebhookVerificationError, match="too new"):
        verify(SECRET, headers, BODY, now=NOW)


def test_the_tolerance_is_configurable() -> None:
    headers = headers_for([SECRET], timestamp=NOW - 3600)

    verify(SECRET, headers, BODY, now=NOW, tolerance_seconds=7200)


def test_a_tampered_body_matches_no_signature() -> None:
    headers = headers_for([SECRET])

    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(SECRET, headers, BODY + b" ", now=NOW)


def test_a_tampered_timestamp_matches_no_signature() -> None:
    headers = headers_for([SECRET]) | {"webhook-timestamp": str(NOW + 1)}

    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(SECRET, headers, BODY, now=NOW)


def test_a_signature_made_with_another_secret_does_not_verify() -> None:
    headers = headers_for([OTHER])

    with pytest.raises(WebhookVerificationError, match="no matching signature"):
        verify(SECRET, headers, BODY, now=NOW)


def test_an_unpadded_secret_gives_the_same_key_as_the_padded_one() -> None:
    padded = "whsec_" + base64.b64encode(b"sixteen byte key").decode()

    assert secret_key(padded.rstrip("=")) == secret_key(padded) == b"sixteen byte key"


def test_a_malformed_secret_is_refused_without_repeating_it() -> None:
    secret = "whsec_not*base64*at*all"

    with pytest.raises(ValueError) as raised:
        secret_key(secret)

    assert "not*base64" not in str(raised.value)
