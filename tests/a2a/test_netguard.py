"""The SSRF guard judges where a request really goes: every address that is not globally
routable is refused (carrier-grade NAT, where some clouds keep metadata, included), also when
an IPv6 address carries it (mapped, 6to4, NAT64, Teredo, IPv4-compatible); an allow-listed name
is decided before any lookup; the address connected to is judged again at connect time, so a
name that turns bad on the second lookup is still refused."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from a2a.netguard import BlockedTargetError, Guard, GuardedResolver

BLOCKED = [
    "100.100.100.200",  # carrier-grade NAT (a cloud's metadata service lives here)
    "100.64.0.1",
    "169.254.169.254",
    "10.1.2.3",
    "192.168.0.1",
    "192.0.2.7",  # documentation
    "0.0.0.0",
    "224.0.0.1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "2002:a9fe:a9fe::1",  # 6to4 for 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 for 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 for 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45
    "::a9fe:a9fe",  # IPv4-compatible
    "fd00::1",
    "fe80::1",
    "::1",
]
ALLOWED = ["8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", BLOCKED)
def test_addresses_that_are_not_globally_routable_are_refused(address: str) -> None:
    assert Guard().address_problem(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_pass(address: str) -> None:
    assert Guard().address_problem(ipaddress.ip_address(address)) is None


def test_an_allow_listed_network_opens_its_addresses_only() -> None:
    guard = Guard(["100.64.0.0/10"])
    assert guard.address_problem(ipaddress.ip_address("100.100.100.200")) is None
    assert guard.address_problem(ipaddress.ip_address("169.254.169.254")) is not None


@pytest.mark.parametrize("address", [*BLOCKED[:4], "[2002:a9fe:a9fe::1]"])
async def test_urls_naming_blocked_literals_are_refused(address: str) -> None:
    with pytest.raises(BlockedTargetError):
        await Guard().check_url(f"https://{address}/hook")


async def test_an_allow_listed_name_is_decided_before_any_lookup() -> None:
    # The name does not resolve; allow-listed, it is not looked up at all.
    await Guard(["hooks.invalid"]).check_url("https://hooks.invalid/x")
    with pytest.raises(BlockedTargetError, match="does not resolve"):
        await Guard().check_url("https://hooks.invalid/x")


async def test_a_name_that_turns_bad_on_the_second_lookup_is_refused_at_connect() -> None:
    """DNS rebinding: the first lookup (registration) saw a public address, the one made to
    connect sees the metadata address; the resolver the webhook session connects through
    refuses it."""
    answers = iter(["8.8.8.8", "169.254.169.254"])
    resolver = GuardedResolver(Guard())

    async def rebinding(host: str, port: int = 0, family: Any = socket.AF_INET) -> list[Any]:
        address = next(answers)
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    resolver._inner.resolve = rebinding  # type: ignore[method-assign]
    try:
        assert (await resolver.resolve("rebind.test", 443))[0]["host"] == "8.8.8.8"
        with pytest.raises(OSError, match=r"169\.254\.169\.254"):
            await resolver.resolve("rebind.test", 443)
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.invalid/x",  # a name: judged when delivering, not now
        "https://8.8.8.8/x",
        "https://[2606:4700:4700::1111]/x",
    ],
)
def test_registration_takes_names_and_public_literals_without_a_lookup(url: str) -> None:
    Guard().check_registration(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[2002:a9fe:a9fe::1]/x", r"169\.254\.169\.254 inside it"),
        ("https://100.100.100.200/x", "not globally routable"),
        ("https://localhost/x", "loopback"),
        ("https://127.0.0.1/x", "loopback"),
        ("http://hooks.example.com/x", "HTTPS is required"),
        ("ftp://hooks.example.com/x", "not an http"),
        ("https://hooks.example.com:99999/x", "not a valid URL"),
    ],
)
def test_registration_refuses_what_needs_no_lookup(url: str, reason: str) -> None:
    with pytest.raises(BlockedTargetError, match=reason):
        Guard().check_registration(url)


def test_registration_of_plain_http_is_for_allowed_loopback_only() -> None:
    local = Guard(allow_loopback=True)
    local.check_registration("http://127.0.0.1:9/hook")
    local.check_registration("http://localhost:9/hook")
    with pytest.raises(BlockedTargetError, match="HTTPS is required"):
        local.check_registration("http://hooks.example.com/hook")
    Guard(["hooks.internal"]).check_registration("https://hooks.internal/x")


async def test_a_registered_name_is_judged_again_when_delivering() -> None:
    """What registration let through (a name) is refused at delivery when it does not resolve
    or resolves to a blocked address: the check the webhook sender makes before each POST."""
    guard = Guard()
    guard.check_registration("https://hooks.invalid/x")
    with pytest.raises(BlockedTargetError, match="does not resolve"):
        await guard.check_url("https://hooks.invalid/x")
