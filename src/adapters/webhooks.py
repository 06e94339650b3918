"""Standard Webhooks signatures: `v1,<base64 HMAC-SHA256>` over `id.timestamp.body`.

Secrets are `whsec_<base64 key>`. During a key rotation the sender signs with every secret
it holds and the `webhook-signature` header carries one space-separated signature for each.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence

from domain.delivery import DeliveryRequest

SECRET_PREFIX = "whsec_"
VERSION = "v1"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


class WebhookVerificationError(Exception):
    """A delivery does not carry a valid, fresh signature; `reason` says what is wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_` secret; the error never repeats the secret."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    padded = encoded + "=" * (-len(encoded) % 4)  # unpadded secrets are common; accept them
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("signing secret is not whsec_<base64>") from None


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    return keyed_signature(hmac.new(key, digestmod=hashlib.sha256), msg_id, timestamp, body)


def keyed_signature(keyed: hmac.HMAC, msg_id: str, timestamp: int, body: bytes) -> str:
    """`signature` from an HMAC already keyed (not updated): copying it skips the key setup."""
    mac = keyed.copy()
    mac.update(b"%s.%d.%s" % (msg_id.encode(), timestamp, body))
    return f"{VERSION},{base64.b64encode(mac.digest()).decode('ascii')}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_seconds: int = 300,
) -> None:
    """Raise `WebhookVerificationError` unless one signature matches and the timestamp is fresh."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = _required(lowered, ID_HEADER)
    timestamp = _timestamp(_required(lowered, TIMESTAMP_HEADER), now, tolerance_seconds)
    offered = _required(lowered, SIGNATURE_HEADER).split()
    expected = signature(secret_key(secret), msg_id, timestamp, body).encode()
    # compare against every offered signature so timing does not reveal which one matched
    matches = [hmac.compare_digest(expected, candidate.encode()) for candidate in offered]
    if not any(matches):
        raise WebhookVerificationError("no matching signature")


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise WebhookVerificationError(f"missing {name} header")
    return value


def _timestamp(raw: str, now: float, tolerance_seconds: int) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not an integer")
    timestamp = int(raw)
    if timestamp < now - tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if timestamp > now + tolerance_seconds:
        raise WebhookVerificationError("webhook-timestamp is too new")
    return timestamp


class WebhookHeaders:
    """The headers of one attempt: content type, key, Standard Webhooks id/timestamp/signature."""

    def __init__(
        self, secrets: Sequence[str], user_agent: str, timestamp: Callable[[], float]
    ) -> None:
        # keyed once here: each attempt copies them instead of hashing the key again
        self._keys = tuple(
            hmac.new(secret_key(secret), digestmod=hashlib.sha256) for secret in secrets
        )
        self._user_agent = user_agent
        self._timestamp = timestamp

    def __repr__(self) -> str:
        return f"WebhookHeaders(signing_keys={len(self._keys)})"

    def for_request(self, request: DeliveryRequest) -> dict[str, str]:
        key = request.idempotency_key
        timestamp = int(self._timestamp())
        headers = {
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": self._user_agent,
            "Idempotency-Key": key,
            "webhook-id": key,
            "webhook-timestamp": str(timestamp),
        }
        if self._keys:
            headers["webhook-signature"] = " ".join(
                keyed_signature(k, key, timestamp, request.body) for k in self._keys
            )
        return headers
