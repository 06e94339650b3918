import re
import socket

import pytest
from pytest_mock import MockerFixture

from adapters.ssrf_guard import TargetError, check_target


def addrinfo(*addresses: str) -> list[tuple[object, ...]]:
    return [
        (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 443))
        for a in addresses
    ]


@pytest.mark.parametrize(
    "url",
    ["https://93.184.215.14/hooks", "http://8.8.8.8:8080/", "https://[2606:4700:4700::1111]/in"],
)
def test_a_public_address_is_allowed(url: str) -> None:
    check_target(url, allow_private=False)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8000/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.9/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://224.0.0.251/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://100.64.0.1/", "non-global"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
    ],
)
def test_a_non_public_address_is_refused_with_its_kind(url: str, kind: str) -> None:
    with pytest.raises(TargetError, match=f"\\({kind}\\)"):
        check_target(url, allow_private=False)


def test_allowing_private_targets_lets_loopback_through() -> None:
    check_target("http://127.0.0.1:8000/webhooks", allow_private=True)


@pytest.mark.parametrize("url", ["ftp://8.8.8.8/", "file:///etc/passwd", "8.8.8.8/hooks"])
def test_only_http_and_https_are_accepted(url: str) -> None:
    with pytest.raises(TargetError, match="http:// or https://"):
        check_target(url, allow_private=True)


def test_a_url_without_a_host_is_refused() -> None:
    with pytest.raises(TargetError, match="no host"):
        check_target("https:///path", allow_private=True)


def test_an_invalid_port_is_refused() -> None:
    with pytest.raises(TargetError, match="invalid port"):
        check_target("https://8.8.8.8:99999/", allow_private=True)


def test_a_host_name_is_judged_by_the_addresses_it_resolves_to(mocker: MockerFixture) -> None:
    mocker.patch("socket.getaddrinfo", return_value=addrinfo("93.184.215.14", "10.0.0.7"))

    with pytest.raises(TargetError, match=re.escape("resolves to 10.0.0.7")):
        check_target("https://hooks.example.com/in", allow_private=False)


def test_a_host_name_resolving_to_public_addresses_is_allowed(mocker: MockerFixture) -> None:
    mocker.patch("socket.getaddrinfo", return_value=addrinfo("93.184.215.14", "2606:2800::1"))

    check_target("https://hooks.example.com/in", allow_private=False)


def test_a_host_that_does_not_resolve_is_refused(mocker: MockerFixture) -> None:
    mocker.patch("socket.getaddrinfo", side_effect=socket.gaierror(-2, "Name or service not known"))

    with pytest.raises(TargetError, match=re.escape("'nowhere.example' does not resolve")):
        check_target("https://nowhere.example/in", allow_private=True)


def test_the_message_is_one_line_without_credentials_or_path() -> None:
    with pytest.raises(TargetError) as raised:
        check_target("https://user:hunter2@10.0.0.1/secret-path?token=abc", allow_private=False)

    message = str(raised.value)
    assert "\n" not in message
    assert "hunter2" not in message and "secret-path" not in message and "abc" not in message
    assert "OUTBOX_ALLOW_PRIVATE_TARGETS" in message
