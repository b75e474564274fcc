"""The SSRF guard for outbound URLs the hub did not choose (webhooks, redirects, card links).

A target is refused when any address it resolves to is private, loopback, link-local (cloud
metadata lives there), multicast, reserved or unspecified, unless its host or address is
allow-listed. Webhook connections resolve through `GuardedResolver`, so the address checked is
the address connected to (no DNS-rebinding window).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_origin(a: str, b: str) -> bool:
    """Whether two URLs share scheme, host and port (a default port counts as given); an
    unparsable URL shares no origin."""
    try:
        x, y = urlsplit(a), urlsplit(b)
        ports = (x.port or _DEFAULT_PORTS.get(x.scheme), y.port or _DEFAULT_PORTS.get(y.scheme))
    except ValueError:
        return False
    return (x.scheme, x.hostname) == (y.scheme, y.hostname) and ports[0] == ports[1]


class BlockedTargetError(ValueError):
    """The URL points where the hub must not send requests."""


def http_url(url: str) -> SplitResult:
    """`url` split, when it is an http(s) URL with a host and a valid port; else
    BlockedTargetError (a bad port or IPv6 literal names no target)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # parsed lazily: raises ValueError when out of range or not a number
    except ValueError as exc:
        raise BlockedTargetError(f"not a valid URL ({exc}): {url!r}") from None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise BlockedTargetError(f"not an http(s) URL: {url!r}")
    return parts


class Guard:
    """Which hosts outbound requests may reach."""

    def __init__(self, allow_hosts: Iterable[str] = (), *, allow_loopback: bool = False) -> None:
        self.allow_loopback = allow_loopback
        self.names: set[str] = set()
        self.networks: list[IpNetwork] = []
        for entry in allow_hosts:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.add(entry.lower().rstrip("."))

    def address_problem(self, address: IpAddress) -> str | None:
        """Why `address` is refused, or None when it may be reached."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.networks):
            return None
        if address.is_loopback:
            return None if self.allow_loopback else "a loopback address"
        if address.is_link_local:
            return "a link-local address (cloud metadata lives there)"
        if address.is_private:
            return "a private address"
        if address.is_multicast or address.is_reserved or address.is_unspecified:
            return "a non-routable address"
        return None

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    async def check_url(self, url: str, *, require_https: bool = True) -> None:
        """Raise BlockedTargetError when `url` must not be requested (resolves its host)."""
        parts = http_url(url)
        host = parts.hostname or ""
        addresses = await resolve(host, parts.port or _DEFAULT_PORTS[parts.scheme])
        if not addresses:
            raise BlockedTargetError(f"{host} does not resolve")
        all_loopback = all(a.is_loopback for a in addresses)
        if parts.scheme != "https" and require_https and not (all_loopback and self.allow_loopback):
            raise BlockedTargetError(f"{url!r}: HTTPS is required")
        if self.host_allowed(host):
            return
        for address in addresses:
            problem = self.address_problem(address)
            if problem is not None:
                raise BlockedTargetError(f"{host} resolves to {address}, {problem}")


async def resolve(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:  # UnicodeError: a name IDNA cannot encode
        raise BlockedTargetError(f"{host} does not resolve: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses hosts resolving to blocked addresses."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self.guard.host_allowed(host):
            return results
        for result in results:
            problem = self.guard.address_problem(ipaddress.ip_address(result["host"]))
            if problem is not None:
                raise OSError(f"{host} resolves to {result['host']}, {problem}")
        return results

    async def close(self) -> None:
        await self._inner.close()
