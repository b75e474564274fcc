"""Who may talk to the HTTP surfaces: scoped API keys, or Host/Origin checks on loopback.

A pure ASGI middleware, so it guards WebSocket upgrades and streaming responses alike and costs
one header scan and one hash per request.

A valid key is checked against the surface of the path (`surface_of`); its name becomes
`scope["state"]["principal"]` (the A2A hub owns tasks by it) and its resource limits go into
`scope["state"]` as plain data, so packages that must not import `junction` can enforce them:

- `scopes`: frozenset of surface names the key may use;
- `allowed_mcp_tools`, `allowed_a2a_agents`, `allowed_models`: tuples of `fnmatch` globs, or
  None when the key is not limited (test with `fnmatch.fnmatchcase`, or `allows` here).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from junction.config import ApiKeyConfig

PUBLIC_PATHS = frozenset({"/health"})
"""Load balancers and supervisors probe these without a key."""

METRICS_PATH = "/metrics"

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

_SURFACES: dict[str, str] = {
    "health": "health",
    "metrics": "metrics",
    "mcp": "mcp",
    "a2a": "a2a",
    ".well-known": "a2a",  # the hub's agent card
    "acp": "acp",
    "v1": "openai",
    "admin": "admin",
}

SURFACES: tuple[str, ...] = (*dict.fromkeys(_SURFACES.values()), "other")
"""Every value `surface_of` returns: bounded, so it is safe as a metrics label."""

LimitKind = Literal["mcp_tools", "a2a_agents", "models"]


def surface_of(path: str) -> str:
    """The surface a path belongs to, from its first segment (`other` for unknown paths)."""
    end = path.find("/", 1)
    return _SURFACES.get(path[1:] if end < 0 else path[1:end], "other")


def allows(state: Mapping[str, Any], kind: LimitKind, name: str) -> bool:
    """Whether the caller in this `scope["state"]` may use the named tool, agent or model."""
    globs = state.get(f"allowed_{kind}")
    return globs is None or any(fnmatchcase(name, glob) for glob in globs)


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


def _digest(key: bytes) -> bytes:
    # Equal-length digests make the comparison constant-time whatever the keys' lengths.
    return hashlib.sha256(key).digest()


def _globs(patterns: list[str]) -> tuple[str, ...] | None:
    return None if "*" in patterns else tuple(patterns)


@dataclass(frozen=True, slots=True)
class _Grant:
    digest: bytes
    state: dict[str, Any]
    scopes: frozenset[str]


class AccessGuard:
    """Refuse requests without a valid bearer key for their surface, or, with no keys, from
    non-local Host/Origin.

    Without keys Junction only listens on loopback (the config refuses otherwise), but a web page
    the user visits could still reach it through DNS rebinding; checking `Host` and `Origin`
    closes that door.
    """

    def __init__(
        self, app: ASGIApp, *, grants: Iterable[ApiKeyConfig], metrics_public: bool = False
    ) -> None:
        self.app = app
        self.public = PUBLIC_PATHS | ({METRICS_PATH} if metrics_public else frozenset())
        self.grants = [
            _Grant(
                _digest(grant.key.encode()),
                {
                    "principal": grant.name,
                    "scopes": frozenset(grant.scopes),
                    "allowed_mcp_tools": _globs(grant.mcp_tools),
                    "allowed_a2a_agents": _globs(grant.a2a_agents),
                    "allowed_models": _globs(grant.models),
                },
                frozenset(grant.scopes),
            )
            for grant in grants
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.grants:
            grant, problem = self._key_problem(headers, surface_of(scope["path"]))
            if grant is not None:
                scope["state"] = {**(scope.get("state") or {}), **grant.state}
        else:
            problem = self._origin_problem(headers)
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

    def _key_problem(
        self, headers: dict[bytes, bytes], surface: str
    ) -> tuple[_Grant | None, tuple[int, str] | None]:
        authorization = headers.get(b"authorization", b"")
        scheme, _, presented = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not presented.strip():
            return None, (401, "missing bearer API key")
        digest = _digest(presented.strip())
        # Compare against every key, always, so timing says nothing about which keys exist.
        found: _Grant | None = None
        for grant in self.grants:
            if hmac.compare_digest(digest, grant.digest) and found is None:
                found = grant
        if found is None:
            return None, (401, "invalid API key")
        if surface == "other" or surface in found.scopes:
            return found, None  # unknown paths 404 further in; nothing to protect there
        if surface == "metrics" and "admin" in found.scopes:
            return found, None
        return None, (403, f"this API key does not have the {surface!r} scope")

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
