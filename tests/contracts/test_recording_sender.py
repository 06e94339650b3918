"""The sender contract against the in-memory `RecordingMessageSender`: its requests are what
the target received, and a responder answers as the contract's target does."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

from adapters.http_common import retry_after
from adapters.in_memory import RecordingMessageSender
from domain.delivery import DeliveryRequest, DeliveryResult
from tests.contracts.sender_contract import MakeSender, MessageSenderContract, Received


def answer_like_the_target(request: DeliveryRequest) -> DeliveryResult:
    parts = urlsplit(request.url)
    if not parts.path.startswith("/status/"):
        return DeliveryResult(status_code=204)
    code = int(parts.path.removeprefix("/status/"))
    [wait] = parse_qs(parts.query).get("retry_after", [None])
    return DeliveryResult(status_code=code, retry_after_seconds=retry_after(code, wait, 0.0))


@attrs.frozen
class RecordingTarget:
    sender: RecordingMessageSender = attrs.field(
        factory=lambda: RecordingMessageSender(answer_like_the_target)
    )
    url: str = "https://receiver.test"

    def received(self) -> list[Received]:
        return [
            Received(urlsplit(r.url).path, r.idempotency_key, r.body) for r in self.sender.requests
        ]


class TestRecordingMessageSender(MessageSenderContract):
    @pytest.fixture
    def target(self) -> RecordingTarget:
        return RecordingTarget()

    @pytest.fixture
    def make_sender(self, target: RecordingTarget) -> MakeSender:
        return lambda: target.sender
