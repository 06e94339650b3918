"""The sender contract, on the wire, against both real senders and a real aiohttp server."""

from __future__ import annotations

import pytest

from adapters.aiohttp_sender import AiohttpMessageSender
from adapters.http_common import HttpOptions
from adapters.httpx_sender import HttpxMessageSender, make_http_client
from adapters.reqwest_sender import ReqwestMessageSender
from tests.contracts.http_sender_contract import (
    SECRET,
    TIMEOUT,
    USER_AGENT,
    HttpMessageSenderContract,
)
from tests.contracts.sender_contract import MakeSender


def httpx_sender() -> HttpxMessageSender:
    client = make_http_client(timeout=TIMEOUT, connect_timeout=TIMEOUT, concurrency=4)
    return HttpxMessageSender(client, secrets=(SECRET,), user_agent=USER_AGENT)


def aiohttp_sender() -> AiohttpMessageSender:
    options = HttpOptions(timeout=TIMEOUT, connect_timeout=TIMEOUT, concurrency=4)
    return AiohttpMessageSender(options, secrets=(SECRET,), user_agent=USER_AGENT)


def reqwest_sender() -> ReqwestMessageSender:
    options = HttpOptions(timeout=TIMEOUT, connect_timeout=TIMEOUT, concurrency=4)
    return ReqwestMessageSender(options, secrets=(SECRET,), user_agent=USER_AGENT)


class TestHttpxMessageSender(HttpMessageSenderContract):
    @pytest.fixture
    def make_sender(self) -> MakeSender:
        return httpx_sender


class TestAiohttpMessageSender(HttpMessageSenderContract):
    @pytest.fixture
    def make_sender(self) -> MakeSender:
        return aiohttp_sender


class TestReqwestMessageSender(HttpMessageSenderContract):
    @pytest.fixture
    def make_sender(self) -> MakeSender:
        return reqwest_sender
