"""Junction as an OAuth 2.1 resource server: bearer JWTs from the configured issuer, checked
here, become the same grant an API key gives (`junction.http.security` asks).

A token is accepted when its signature verifies with one of the issuer's published keys, `iss`
is the issuer, `aud` names Junction (`server.oauth.audience`; on `/mcp` also the MCP endpoint's
own resource, `audience/mcp`, which then is all the token may use), and `exp`/`nbf` hold
(with `leeway_seconds`). Tokens are never passed on to upstreams.

The issuer's keys (its JWKS, from `jwks_url` or its discovery document) are fetched with the
shared aiohttp session, cached, and fetched again when a token names a key not in the cache
(at most once per `REFETCH_SECONDS`, so a stream of forged tokens cannot make Junction hammer
the issuer) or when the cache is older than `MAX_AGE_SECONDS`. Fetching never blocks the event
loop; concurrent requests wait for one fetch.

Protected resource metadata (RFC 9728) tells clients where to get tokens: at
`/.well-known/oauth-protected-resource` for Junction, and at its `/mcp`-suffixed form for the
MCP endpoint, which `WWW-Authenticate` points to on a 401 (the MCP authorization spec).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from junction.config.server import API_KEY_SCOPES, OAuthConfig

log = logging.getLogger("junction.oauth")

METADATA_PATH = "/.well-known/oauth-protected-resource"
MCP_METADATA_PATH = f"{METADATA_PATH}/mcp"
METADATA_PATHS = frozenset({METADATA_PATH, MCP_METADATA_PATH})

REFETCH_SECONDS = 30.0
"""Least time between two fetches of the issuer's keys for tokens naming an unknown key."""
MAX_AGE_SECONDS = 3600.0
"""Keys older than this are fetched again before the next token is checked."""
FETCH_TIMEOUT_SECONDS = 10.0

_SURFACE_SCOPES = frozenset(API_KEY_SCOPES)


class TokenError(Exception):
    """A bearer token refused; the message says why (to the client and the audit trail).

    `status` is 401 for a token that is not good, 503 when the issuer's keys cannot be had."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.status = status


def looks_like_jwt(credential: bytes) -> bool:
    """A compact JWS (`header.payload.signature`, the header a base64url JSON object); API keys
    are checked first, so this only decides whether an unknown credential is worth verifying."""
    return credential.startswith(b"eyJ") and credential.count(b".") == 2


def mcp_resource(config: OAuthConfig) -> str:
    """The MCP endpoint's resource identifier (its canonical URL)."""
    return f"{config.audience}/mcp"


def metadata_url(config: OAuthConfig, surface: str) -> str:
    """Where the protected resource metadata for a surface is (RFC 9728 §3.1)."""
    parts = urlsplit(config.audience)
    path = parts.path.rstrip("/") + ("/mcp" if surface == "mcp" else "")
    return f"{parts.scheme}://{parts.netloc}{METADATA_PATH}{path}"


def challenge(
    config: OAuthConfig,
    surface: str,
    *,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
) -> bytes:
    """A `WWW-Authenticate: Bearer ...` value (RFC 6750 §3, RFC 9728 §5.1)."""
    params = [f'resource_metadata="{metadata_url(config, surface)}"']
    if error is not None:
        params.append(f'error="{error}"')
    if description is not None:
        params.append('error_description="{}"'.format(description.replace('"', "'")))
    if scope is not None:
        params.append(f'scope="{scope}"')
    return ("Bearer " + ", ".join(params)).encode("latin-1", "replace")


def _listed(value: Any) -> list[str]:
    """A claim as a list of strings: a list, or a space-separated string (OAuth's `scope`)."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _globs(claims: dict[str, Any], claim: str | None) -> tuple[str, ...] | None:
    """A limit from a claim: None (not limited) when no claim is mapped or it allows `*`; a
    mapped claim the token lacks allows nothing (fail closed)."""
    if claim is None:
        return None
    globs = _listed(claims.get(claim))
    return None if "*" in globs else tuple(globs)


def token_grant(claims: dict[str, Any], config: OAuthConfig) -> dict[str, Any]:
    """The grant of a verified token, shaped like a key's (`junction.caller`)."""
    names = config.claims
    principal = claims.get(names.name)
    if not isinstance(principal, str) or not principal:
        raise TokenError(f"the token has no {names.name!r} claim to name its holder")
    scopes = frozenset(_listed(claims.get(names.scopes))) & _SURFACE_SCOPES
    audiences = claims.get("aud")
    if config.audience not in (audiences if isinstance(audiences, list) else [audiences]):
        scopes &= {"mcp"}  # a token for the MCP endpoint's resource is good there only
    expires = claims.get("exp")
    return {
        "principal": principal,
        # When the grant ends: a connection that outlives its request (/acp) is closed then.
        "expires_at": float(expires) if isinstance(expires, int | float) else None,
        "scopes": scopes,
        "allowed_mcp_tools": _globs(claims, names.mcp_tools),
        "allowed_a2a_agents": _globs(claims, names.a2a_agents),
        "allowed_models": _globs(claims, names.models),
    }


class TokenVerifier:
    """Checks bearer JWTs for one `server.oauth` configuration, caching the issuer's keys."""

    def __init__(self, config: OAuthConfig) -> None:
        self.config = config
        self._audiences = [config.audience, mcp_resource(config)]
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._jwks_url: str | None = config.jwks_url
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or TokenError saying why it is refused."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("the token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.config.algorithms:
            raise TokenError(f"the token's signature algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        key = await self._key(kid if isinstance(kid, str) else None)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self._audiences,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise TokenError("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenError("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"the token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"the token is not valid ({exc})") from None
        return claims

    def _cached(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or time.monotonic() - fetched > MAX_AGE_SECONDS

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        key = self._cached(kid)
        if key is None or self._stale():
            async with self._lock:  # one fetch for every request waiting on it
                fetched = self._fetched_at
                due = fetched is None or time.monotonic() - fetched >= REFETCH_SECONDS
                if (self._cached(kid) is None and due) or self._stale():
                    await self._refresh()
            key = self._cached(kid)
        if key is None:
            raise TokenError("the token is signed with a key the issuer does not publish")
        return key

    async def _refresh(self) -> None:
        """Fetch the issuer's keys; on failure keep the ones held (if any) until the next try."""
        self._fetched_at = time.monotonic()
        try:
            if self._jwks_url is None:
                self._jwks_url = await self._discover_jwks_url()
            keys = jwt.PyJWKSet.from_dict(await _get_json(self._jwks_url))
        except (TokenError, jwt.PyJWTError, OSError, ValueError) as exc:
            log.warning("cannot fetch the signing keys of %s: %s", self.config.issuer, exc)
            if not self._keys:
                raise TokenError(
                    "the token issuer's signing keys cannot be fetched", status=503
                ) from None
            return
        self._keys = {key.key_id: key for key in keys.keys if key.public_key_use in (None, "sig")}

    async def _discover_jwks_url(self) -> str:
        """`jwks_uri` from the issuer's OpenID discovery document, else its RFC 8414 one; the
        document must name the configured issuer (RFC 8414 §3.3)."""
        issuer = self.config.issuer.rstrip("/")
        parts = urlsplit(issuer)
        for url in (
            f"{issuer}/.well-known/openid-configuration",
            f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}",
        ):
            try:
                document = await _get_json(url)
            except (TokenError, OSError, ValueError):
                continue
            if str(document.get("issuer", "")).rstrip("/") != issuer:
                raise TokenError(f"the discovery document at {url} names another issuer")
            jwks_uri = document.get("jwks_uri")
            if isinstance(jwks_uri, str) and jwks_uri:
                return jwks_uri
        raise TokenError(f"no discovery document with a jwks_uri at {issuer}")


async def _get_json(url: str) -> dict[str, Any]:
    import aiohttp

    from router_core.http import get_session

    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
    async with get_session().get(
        url, timeout=timeout, headers={"Accept": "application/json"}
    ) as response:
        if response.status != 200:
            raise TokenError(f"{url} answered HTTP {response.status}")
        body = await response.json(content_type=None)
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return body


def metadata_routes(current: Callable[[], OAuthConfig | None]) -> list[Route]:
    """The protected resource metadata documents (RFC 9728) of the configuration in force;
    404 while `server.oauth` is unset."""

    def document(surface: str) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            config = current()
            if config is None:
                return JSONResponse({"error": "OAuth is not configured"}, status_code=404)
            mcp = surface == "mcp"
            return JSONResponse(
                {
                    "resource": mcp_resource(config) if mcp else config.audience,
                    "authorization_servers": [config.issuer],
                    "scopes_supported": ["mcp"] if mcp else list(API_KEY_SCOPES),
                    "bearer_methods_supported": ["header"],
                    "resource_name": "Junction MCP endpoint" if mcp else "Junction",
                }
            )

        return endpoint

    return [
        Route(METADATA_PATH, document("all"), methods=["GET"]),
        Route(MCP_METADATA_PATH, document("mcp"), methods=["GET"]),
    ]


__all__ = [
    "METADATA_PATHS",
    "TokenError",
    "TokenVerifier",
    "challenge",
    "looks_like_jwt",
    "metadata_routes",
    "token_grant",
]
