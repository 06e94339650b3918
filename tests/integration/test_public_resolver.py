"""The connect-time SSRF guard: names resolving to non-public addresses are refused."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from adapters.httpx_sender import HttpxMessageSender, make_http_client
from adapters.public_resolver import NonPublicAddress, PublicOnlyResolver
from domain.delivery import DeliveryRequest, DeliveryResult
from tests.integration.http_servers import serving


class FixedResolver(AbstractResolver):
    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host=self.address, port=port, family=family, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"])
def test_a_name_resolving_to_a_non_public_address_is_refused(address: str) -> None:
    resolver = PublicOnlyResolver(FixedResolver(address))

    with pytest.raises(NonPublicAddress, match="refused"):
        asyncio.run(resolver.resolve("rebound.example", 443))


def test_a_name_resolving_to_a_public_address_passes() -> None:
    resolver = PublicOnlyResolver(FixedResolver("93.184.215.14"))

    [result] = asyncio.run(resolver.resolve("public.example", 443))

    assert result["host"] == "93.184.215.14"


def send_once(url: str, *, allow_private: bool) -> DeliveryResult:
    async def attempt() -> DeliveryResult:
        client = make_http_client(
            timeout=2, connect_timeout=1, concurrency=1, allow_private=allow_private
        )
        sender = HttpxMessageSender(client, user_agent="test")
        request = DeliveryRequest(message_id=1, url=url, body=b"{}", idempotency_key="k", attempt=1)
        try:
            return await sender.send(request)
        finally:
            await sender.aclose()

    return asyncio.run(attempt())


def test_a_local_receiver_named_localhost_is_refused_unless_private_targets_are_allowed() -> None:
    async def no_content(request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/x", no_content)

    with serving(app) as base_url:
        url = base_url.replace("127.0.0.1", "localhost") + "/x"
        guarded = send_once(url, allow_private=False)
        allowed = send_once(url, allow_private=True)

    assert guarded.error == "ConnectError" and guarded.status_code is None
    assert allowed.status_code == 204
