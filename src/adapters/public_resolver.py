"""SSRF guard at connect time: a resolver that refuses names resolving to non-public addresses.

The start-up check (`adapters.ssrf_guard.check_target`) resolves each target once; a name whose
DNS answer later changes to a private address (DNS rebinding) is caught here, on every new
connection. IP literals never reach a resolver; the start-up check covers them.
"""

from __future__ import annotations

import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from adapters.ssrf_guard import NonPublicAddress, refuse_non_public

__all__ = ["NonPublicAddress", "PublicOnlyResolver", "resolver_for"]


class PublicOnlyResolver(AbstractResolver):
    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        refuse_non_public(host, (str(result["host"]) for result in results))
        return results

    async def close(self) -> None:
        await self._inner.close()


def resolver_for(allow_private: bool) -> Any:
    """The connector's resolver: aiohttp's default when private targets are allowed."""
    return None if allow_private else PublicOnlyResolver()
