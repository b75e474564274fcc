"""Who may talk to the HTTP surfaces: API keys off loopback, Host/Origin checks on loopback.

A pure ASGI middleware, so it guards WebSocket upgrades and streaming responses alike and costs
one header scan per request.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

PUBLIC_PATHS = frozenset({"/health"})
"""Load balancers and supervisors probe these without a key."""

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _is_loopback_host(host: str) -> bool:
    host = host.strip().strip("[]").rstrip(".").lower()
    if host in _LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hostname(authority: str) -> str:
    """`Host` header value without its port (IPv6 literals keep their brackets stripped)."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


class AccessGuard:
    """Refuse requests without a valid bearer key, or, with no keys, from non-local Host/Origin.

    Without keys Junction only listens on loopback (the config refuses otherwise), but a web page
    the user visits could still reach it through DNS rebinding; checking `Host` and `Origin`
    closes that door.
    """

    def __init__(self, app: ASGIApp, *, api_keys: Iterable[str]) -> None:
        self.app = app
        self.keys = [key.encode() for key in api_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        problem = self._key_problem(headers) if self.keys else self._origin_problem(headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message = problem
        if scope["type"] == "websocket":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": message.encode()})
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    *([(b"www-authenticate", b"Bearer")] if status == 401 else []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b'{"error": "%s"}' % message.encode()})

    def _key_problem(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        authorization = headers.get(b"authorization", b"")
        scheme, _, presented = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not presented:
            return 401, "missing bearer API key"
        # Compare against every key, always, so timing says nothing about which keys exist.
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(presented.strip(), key)
        return None if matched else (401, "invalid API key")

    def _origin_problem(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if not host or not _is_loopback_host(_hostname(host)):
            return 403, "Host header is not a loopback name"
        origin = headers.get(b"origin")
        if origin is not None and origin != b"null":
            origin_host = urlsplit(origin.decode("latin-1")).hostname or ""
            if not _is_loopback_host(origin_host):
                return 403, "Origin is not a loopback address"
        return None
