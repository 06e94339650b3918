"""SSRF guard: a target must be http(s) and resolve only to public addresses, unless allowed."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALLOW_HINT = "set OUTBOX_ALLOW_PRIVATE_TARGETS=true to allow it"


class NonPublicAddress(OSError):
    """The target's name resolved to an address deliveries may not go to."""


class TargetError(Exception):
    """A target URL is unusable or not allowed; the message is one line and names the host."""


def check_target(url: str, *, allow_private: bool) -> None:
    """Raise `TargetError` unless `url` is http(s) and its host resolves to allowed addresses."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        shown = f"{scheme}://" if scheme else "no scheme"
        raise TargetError(f"target URL must start with http:// or https://, got {shown}")
    host = parts.hostname
    if not host:
        raise TargetError(f"target URL has no host: {_shown(parts)}")
    addresses = resolve(host, _port(parts) or _DEFAULT_PORTS[scheme])
    if allow_private:
        return
    for address in addresses:
        kind = non_public_kind(address)
        if kind is not None:
            raise TargetError(
                f"target {_shown(parts)} resolves to {address} ({kind}), not a public address;"
                f" {_ALLOW_HINT}"
            )


def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise TargetError(f"target host {host!r} does not resolve: {error}") from None
    return [ip_of(str(info[4][0])) for info in infos]


def ip_of(text: str) -> IPAddress:
    """An address as a resolver gives it, without an IPv6 zone (`fe80::1%eth0`)."""
    return ipaddress.ip_address(text.split("%", 1)[0])


def refuse_non_public(host: str, addresses: Iterable[str]) -> None:
    """The connect-time rule: `NonPublicAddress` if any address `host` resolved to is not a
    public one (the resolver of the aiohttp engines and the reqwest sender's pinning)."""
    for text in addresses:
        address = ip_of(text)
        kind = non_public_kind(address)
        if kind is not None:
            raise NonPublicAddress(f"{host} resolves to {address} ({kind}): refused")


def non_public_kind(address: IPAddress) -> str | None:
    """Why an address is not a public unicast one ("loopback", "private", ...), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-global", not address.is_global),
    )
    return next((kind for kind, matches in checks if matches), None)


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        raise TargetError(f"target URL has an invalid port: {_shown(parts)}") from None


def _shown(parts: SplitResult) -> str:
    """The URL without credentials, path or query: safe for a log line."""
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}"
