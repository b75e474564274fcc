"""Who may talk to the HTTP surfaces: scoped API keys and OAuth bearer tokens, or Host checks
on loopback; and never a web page unless its origin is configured.

A pure ASGI middleware, so it guards WebSocket upgrades and streaming responses alike and costs
one header scan and one hash per request.

Browsers are the attacker's way in to a local server: any page the user visits can send
requests to 127.0.0.1 (and `Origin: null` from sandboxed frames and `file:` pages). So a
request that carries an `Origin` is refused unless that origin is in `server.allowed_origins`
(empty by default), keys or not; and a state-changing request must declare a JSON body, which a
page cannot send cross-origin without a CORS preflight (a `text/plain` form post can). `/mcp`
and the A2A bindings answer a wrong content type in their own protocol's words, so they are
left to do it.

A valid key is checked against the surface of the path (`surface_of`); its name becomes
`scope["state"]["principal"]` (the A2A hub owns tasks by it) and its resource limits go into
`scope["state"]` as plain data, so packages that must not import `junction` can enforce them:

- `scopes`: frozenset of surface names the key may use;
- `allowed_mcp_tools`, `allowed_a2a_agents`, `allowed_models`: tuples of `fnmatch` globs, or
  None when the key is not limited (test with `junction.caller.allows`);
- `quota`: the caller's rate limits and quotas (`router_core.quota.Quota`, also in
  `router_core.quota.QUOTA` for the request's duration), which each surface asks once per call.

With `server.oauth` set, a credential that is no key and looks like a JWT is verified as an
access token (`junction.http.oauth`) and gives the same grant, its principal the token's subject
(or its mapped `name` claim). Keys are matched first, so the key path costs what it did. Refusals
carry `WWW-Authenticate` with the protected resource metadata's URL (`insufficient_scope` for a
missing scope), and every refusal is audited (`junction.audit`), as is each token's first use on
a surface.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from a2a.paths import is_public_card
from junction.audit import acting_as, audit
from junction.caller import CALLER
from junction.config import ApiKeyConfig
from junction.http.oauth import (
    METADATA_PATHS,
    TokenError,
    TokenVerifier,
    challenge,
    looks_like_jwt,
    token_grant,
)
from router_core.quota import QUOTA

if TYPE_CHECKING:
    from junction.limits import Limiter

PUBLIC_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/mcp/login/callback"})
"""Load balancers and supervisors probe these without a key; a browser comes back from an
upstream's sign-in to the last with none (its single-use state decides: `upstream_login`)."""

METRICS_PATH = "/metrics"

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_OWN_CONTENT_CHECK = frozenset({"mcp", "a2a"})
"""Surfaces whose protocol says how to refuse a non-JSON body (the MCP SDK, the A2A hub)."""

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


def surface_of(path: str) -> str:
    """The surface a path belongs to, from its first segment (`other` for unknown paths)."""
    end = path.find("/", 1)
    return _SURFACES.get(path[1:] if end < 0 else path[1:end], "other")


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


def is_json_content_type(value: bytes) -> bool:
    """`application/json` or `application/<anything>+json`, parameters (charset) aside."""
    media = value.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def _has_body(headers: dict[bytes, bytes]) -> bool:
    """Whether a request sends a body (a bodiless POST, such as a heartbeat, declares no type)."""
    return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"


def _same_origin(origin: bytes, host: bytes | None, scope: Scope) -> bool:
    """Whether `Origin` is this server itself (its scheme and the `Host` asked for): a page
    Junction served, which a browser may send along. A rebinding page's origin names the
    attacker's host, which the Host check (or the key) refuses; `null` never matches."""
    if not host:
        return False
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return _origin_key(origin) == f"{scheme}://{host.decode('latin-1').strip().lower()}"


def _origin_key(origin: bytes) -> str:
    """An `Origin` header as `scheme://host[:port]`, lowercased, to compare with the config."""
    return origin.decode("latin-1").strip().rstrip("/").lower()


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


@dataclass(frozen=True, slots=True)
class _Refusal:
    status: int
    message: str
    challenge: bytes | None = None
    """`WWW-Authenticate` value (OAuth only; a bare `Bearer` is sent on other 401s)."""
    principal: str | None = None


_SEEN_TOKENS = 4096
"""Tokens whose first use per surface is remembered (so it is audited once)."""


class AccessGuard:
    """Refuse requests from a browser origin that is not allowed, state-changing requests
    without a JSON body, and requests without a valid bearer key for their surface (or, with
    no keys, with a non-local Host).

    Without keys Junction only listens on loopback (the config refuses otherwise), but a web page
    the user visits could still reach it directly or through DNS rebinding; checking `Origin`
    and `Host` closes that door.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        grants: Iterable[ApiKeyConfig],
        tokens: TokenVerifier | None = None,
        metrics_public: bool = False,
        allowed_origins: Iterable[str] = (),
        limiter: Limiter | None = None,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.limiter = limiter
        self.public = (
            PUBLIC_PATHS
            | ({METRICS_PATH} if metrics_public else frozenset())
            | (METADATA_PATHS if tokens is not None else frozenset())
        )
        self.allowed_origins = frozenset(allowed_origins)
        self._seen: OrderedDict[tuple[bytes, str], None] = OrderedDict()
        self.grants = [
            _Grant(
                _digest(grant.key.encode()),
                {
                    "principal": grant.name,
                    "scopes": frozenset(grant.scopes),
                    "allowed_mcp_tools": _globs(grant.mcp_tools),
                    "allowed_a2a_agents": _globs(grant.a2a_agents),
                    "allowed_models": _globs(grant.models),
                    **({"quota": limiter.quota(str(grant.name))} if limiter else {}),
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
        surface = surface_of(scope["path"])
        problem = self._browser_problem(scope, headers, surface)
        if problem is None and (self.grants or self.tokens is not None):
            if is_public_card(scope["path"]) and not self._presented(headers):
                await self.app(scope, receive, send)  # A2A: anyone may read the public card
                return
            state, problem = self._key_problem(headers, surface)
            if state is None and problem is not None and problem.status == 401:
                state, problem = await self._token_problem(headers, surface, problem)
            if state is not None:
                scope["state"] = {**(scope.get("state") or {}), **state}
                token = CALLER.set(state)
                quota = QUOTA.set(state.get("quota"))
                try:
                    with acting_as(str(state["principal"]), surface):
                        await self.app(scope, receive, send)
                finally:
                    QUOTA.reset(quota)
                    CALLER.reset(token)
                return
        elif problem is None:
            problem = self._host_problem(headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        audit(
            "access",
            "deny",
            principal=problem.principal,
            surface=surface,
            method=scope.get("method", "GET"),
            path=scope["path"],
            status=problem.status,
            reason=problem.message,
        )
        await self._refuse(scope, send, surface, problem)

    async def _refuse(self, scope: Scope, send: Send, surface: str, problem: _Refusal) -> None:
        status, message = problem.status, problem.message
        authenticate = problem.challenge or (b"Bearer" if status == 401 else None)
        if scope["type"] == "websocket":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        *([(b"www-authenticate", authenticate)] if authenticate else []),
                    ],
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
                    *([(b"www-authenticate", authenticate)] if authenticate else []),
                ],
            }
        )
        if surface == "openai":  # OpenAI's SDKs read their error shape to raise the right class
            from router_core.openai_api import error_body

            codes = {401: "invalid_api_key", 403: "forbidden", 415: "unsupported_media_type"}
            body = error_body(status, message, codes.get(status))
        else:
            body = orjson.dumps({"error": message})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _presented(headers: dict[bytes, bytes]) -> bytes:
        authorization = headers.get(b"authorization", b"")
        scheme, _, presented = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not presented.strip():
            # `x-api-key` is how Anthropic's clients (and some OpenAI ones) send a key.
            presented = headers.get(b"x-api-key", b"")
        return presented.strip()

    def _key_problem(
        self, headers: dict[bytes, bytes], surface: str
    ) -> tuple[dict[str, Any] | None, _Refusal | None]:
        presented = self._presented(headers)
        if not presented:
            what = "API key or token" if self.tokens is not None else "API key"
            return None, _Refusal(
                401, f"missing {what} (Authorization: Bearer KEY, or x-api-key: KEY)"
            )
        digest = _digest(presented)
        # Compare against every key, always, so timing says nothing about which keys exist.
        found: _Grant | None = None
        for grant in self.grants:
            if hmac.compare_digest(digest, grant.digest) and found is None:
                found = grant
        if found is None:
            return None, _Refusal(401, "invalid API key")
        if surface == "other" or surface in found.scopes:
            return found.state, None  # unknown paths 404 further in; nothing to protect there
        if surface == "metrics" and "admin" in found.scopes:
            return found.state, None
        return None, _Refusal(
            403,
            f"this API key does not have the {surface!r} scope",
            principal=found.state["principal"],
        )

    async def _token_problem(
        self, headers: dict[bytes, bytes], surface: str, refusal: _Refusal
    ) -> tuple[dict[str, Any] | None, _Refusal | None]:
        """No key matched: with OAuth on, a JWT is checked as an access token."""
        verifier = self.tokens
        if verifier is None:
            return None, refusal
        config = verifier.config
        presented = self._presented(headers)
        if not presented or not looks_like_jwt(presented):
            described = refusal.message if presented else None
            error = "invalid_token" if presented else None
            return None, _Refusal(
                401, refusal.message, challenge(config, surface, error=error, description=described)
            )
        try:
            claims = await verifier.verify(presented.decode("latin-1"))
            state = token_grant(claims, config)
        except TokenError as exc:
            reason = str(exc)
            return None, _Refusal(
                exc.status,
                reason,
                challenge(config, surface, error="invalid_token", description=reason)
                if exc.status == 401
                else None,
            )
        principal = state["principal"]
        scopes: frozenset[str] = state["scopes"]
        if not (
            surface == "other" or surface in scopes or (surface == "metrics" and "admin" in scopes)
        ):
            message = f"this token does not have the {surface!r} scope"
            return None, _Refusal(
                403,
                message,
                challenge(
                    config, surface, error="insufficient_scope", description=message, scope=surface
                ),
                principal=principal,
            )
        self._audit_first_use(presented, surface, claims, state)
        if self.limiter is not None:
            state["quota"] = self.limiter.quota(principal, token=True)
        # The caller's own token, for an upstream that exchanges it (RFC 8693) for one of its
        # own on the caller's behalf (`auth: {type: token_exchange}`); never sent on as is.
        state["subject_token"] = presented.decode("latin-1")
        return state, None

    def _audit_first_use(
        self, presented: bytes, surface: str, claims: dict[str, Any], state: dict[str, Any]
    ) -> None:
        seen = (_digest(presented), surface)
        if seen in self._seen:
            return
        self._seen[seen] = None
        if len(self._seen) > _SEEN_TOKENS:
            self._seen.popitem(last=False)
        audit(
            "token",
            "allow",
            principal=state["principal"],
            surface=surface,
            client_id=claims.get("client_id") or claims.get("azp"),
            scopes=sorted(state["scopes"]),
            expires=claims.get("exp"),
        )

    def _browser_problem(
        self, scope: Scope, headers: dict[bytes, bytes], surface: str
    ) -> _Refusal | None:
        origin = headers.get(b"origin")
        if (
            origin is not None
            and _origin_key(origin) not in self.allowed_origins
            and not _same_origin(origin, headers.get(b"host"), scope)
        ):
            return _Refusal(403, "this Origin is not allowed (server.allowed_origins)")
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and surface not in _OWN_CONTENT_CHECK
            and _has_body(headers)
            and not is_json_content_type(headers.get(b"content-type", b""))
        ):
            return _Refusal(415, "the body must be JSON (Content-Type: application/json)")
        return None

    def _host_problem(self, headers: dict[bytes, bytes]) -> _Refusal | None:
        host = headers.get(b"host", b"")
        loopback = _LOOPBACK_HOSTS.get(host)
        if loopback is None:
            loopback = bool(host) and _is_loopback_host(_hostname(host.decode("latin-1")))
            if len(_LOOPBACK_HOSTS) >= _LOOPBACK_HOSTS_KEPT:  # Host values are the client's
                _LOOPBACK_HOSTS.clear()
            _LOOPBACK_HOSTS[host] = loopback
        return None if loopback else _HOST_REFUSAL


_HOST_REFUSAL = _Refusal(403, "Host header is not a loopback name")
_LOOPBACK_HOSTS: dict[bytes, bool] = {}
"""`Host` header values already judged: a local server sees the same one or two every time."""
_LOOPBACK_HOSTS_KEPT = 256
