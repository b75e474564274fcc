"""The SSRF guard for outbound URLs the hub did not choose (webhooks, redirects, card links).

A target is refused when any address it resolves to is not globally routable (private,
carrier-grade NAT, loopback, link-local where cloud metadata lives, multicast, reserved,
unspecified), also when an IPv6 address carries such an IPv4 one (mapped, 6to4, NAT64, Teredo),
unless its host (checked before any lookup) or address is allow-listed. Webhook connections resolve through `GuardedResolver`, so the address checked is
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
        """Why `address` is refused, or None when it may be reached: anything not globally
        routable (private, shared/carrier-grade NAT 100.64/10, link-local where cloud metadata
        lives, loopback, multicast, reserved, documentation...), judged also for the IPv4
        address an IPv6 one carries (mapped, 6to4, NAT64, Teredo, IPv4-compatible)."""
        # An IPv6 address that carries an IPv4 one goes where that one goes: judge it instead
        # (the carrying prefixes themselves, 64:ff9b::/96 for one, say nothing of the target).
        carried = _embedded_ipv4(address)
        for inner in carried:
            problem = self._problem(inner)
            if problem is not None:
                return f"{problem} ({inner} inside it)"
        return None if carried else self._problem(address)

    def _problem(self, address: IpAddress) -> str | None:
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
        if not address.is_global:
            return "an address that is not globally routable"
        return None

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.names

    def check_registration(self, url: str, *, require_https: bool = True) -> None:
        """Raise BlockedTargetError when `url` can be refused without a DNS lookup: not an
        http(s) URL, plain http to anything but a loopback literal or `localhost` (and only
        with loopback allowed), or a literal address (or `localhost`) that is blocked.

        A name is not resolved here: what it resolves to when the hub registers it says
        nothing of where it will point when the hub connects, so names are judged at each
        delivery (`check_url`, then `GuardedResolver` on the connection itself). A name that
        does not resolve from the hub (yet) is accepted, as the A2A TCK expects of
        `https://example.com/...` webhooks.
        """
        parts = http_url(url)
        host = (parts.hostname or "").lower().rstrip(".")
        if self.host_allowed(host) and (parts.scheme == "https" or not require_https):
            return
        literal = _literal_address(host)
        loopback = literal.is_loopback if literal is not None else _is_localhost(host)
        if parts.scheme != "https" and require_https and not (loopback and self.allow_loopback):
            raise BlockedTargetError(f"{url!r}: HTTPS is required")
        if literal is None:
            if loopback and not self.allow_loopback:
                raise BlockedTargetError(f"{host} is a loopback address")
            return
        problem = self.address_problem(literal)
        if problem is not None:
            raise BlockedTargetError(f"{host} is {problem}")

    async def check_url(self, url: str, *, require_https: bool = True) -> None:
        """Raise BlockedTargetError when `url` must not be requested (resolves its host)."""
        parts = http_url(url)
        host = parts.hostname or ""
        if self.host_allowed(host) and (parts.scheme == "https" or not require_https):
            return  # allow-listed by name: decided before any lookup
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


def _literal_address(host: str) -> IpAddress | None:
    """The address `host` is written as, or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _is_localhost(host: str) -> bool:
    """`localhost` and its subdomains, which resolve to loopback (RFC 6761 section 6.3)."""
    return host == "localhost" or host.endswith(".localhost")


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(address: IpAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for, which is where it really goes."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


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
