"""Credentials toward agents: what an agent's card requires (its `securitySchemes` and
`securityRequirements`) matched against what the config gives (`AgentSpec.auth`).

`credentials_for` picks the first requirement of the card that the configured credential (or
the agent's fixed `headers`) meets and returns the `Credentials` that add it to each request,
or a problem saying what is missing; an agent with a problem gets `Refused`, whose every call
is a clear A2A error (the agent is never sent a request it would refuse). Kinds:

- a static bearer token or API key (`Static`);
- OAuth 2.0 client credentials (`ClientCredentials`): a token from the token endpoint of the
  configured `token_url` or `issuer`, else the one the card names (https, or http on loopback),
  cached until shortly before it expires and fetched again then or when the agent refuses it;
- the caller's own token (`ForwardCaller`), only when the card declares an OpenID Connect or
  OAuth 2 scheme of the issuer that token is from and the token's `aud` names the agent: a
  token meant for Junction alone is never passed on (no token passthrough).

The caller's token reaches here through `CALLER_TOKEN`, set per request by the bindings from
what the access guard verified (`scope["state"]["subject_token"]`).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import orjson

from a2a.errors import INTERNAL_ERROR, A2aError
from a2a.settings import AgentAuth, ClientCredentialsAuth
from router_core.redaction import redact_url

log = logging.getLogger(__name__)

Json = dict[str, Any]
SessionFactory = Callable[[], aiohttp.ClientSession]

CALLER_TOKEN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "a2a_caller_token", default=None
)
"""The bearer token (a verified JWT) of the caller being served, for `forward_caller`."""

OIDC_SUFFIX = "/.well-known/openid-configuration"
OAUTH_SUFFIX = "/.well-known/oauth-authorization-server"
TOKEN_TIMEOUT = 10.0
REASON = "UPSTREAM_CREDENTIALS"
"""The ErrorInfo reason (1.0) / data reason (0.3) of every credential error toward an agent."""


def credential_error(agent: str, message: str) -> A2aError:
    """A call Junction cannot authenticate toward `agent`: the caller's request was fine, the
    agent is fine (its breaker does not count it), and the message says what to configure."""
    return A2aError(INTERNAL_ERROR, f"agent {agent}: {message}", {"agent": agent, "reason": REASON})


class Credentials:
    """Adds an agent's credentials to each request; `renew` after the agent refused them."""

    async def headers(self) -> dict[str, str]:
        return {}

    def renew(self) -> bool:
        """Forget a cached credential; True when asking again may give another one."""
        return False


class Static(Credentials):
    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    async def headers(self) -> dict[str, str]:
        return self._headers


class Refused(Credentials):
    """An agent whose card requires what is not configured: every call says so."""

    def __init__(self, agent: str, problem: str) -> None:
        self.agent, self.problem = agent, problem

    async def headers(self) -> dict[str, str]:
        raise credential_error(self.agent, self.problem)


@dataclass
class _Token:
    value: str
    renew_at: float


class ClientCredentials(Credentials):
    """A client_credentials token, fetched once for all concurrent requests and cached."""

    def __init__(
        self,
        agent: str,
        config: ClientCredentialsAuth,
        *,
        token_url: str | None,
        discovery: str | None,
        session: SessionFactory,
    ) -> None:
        self.agent, self.config = agent, config
        self._token_url = token_url
        self._discovery = discovery
        self._session = session
        self._token: _Token | None = None
        self._lock = asyncio.Lock()

    async def headers(self) -> dict[str, str]:
        token = self._token
        if token is None or time.monotonic() >= token.renew_at:
            async with self._lock:
                token = self._token
                if token is None or time.monotonic() >= token.renew_at:
                    token = self._token = await self._fetch()
        return {"Authorization": f"Bearer {token.value}"}

    def renew(self) -> bool:
        self._token = None
        return True

    async def _endpoint(self) -> str:
        if self._token_url is None:
            assert self._discovery is not None
            self._token_url = await _token_endpoint(self.agent, self._discovery, self._session)
        return self._token_url

    async def _fetch(self) -> _Token:
        config = self.config
        url = await self._endpoint()
        form = {"grant_type": "client_credentials"}
        if config.scopes:
            form["scope"] = " ".join(config.scopes)
        if config.resource:
            form["resource"] = config.resource
        headers = {"Accept": "application/json"}
        if config.auth_method == "client_secret_post":
            form |= {"client_id": config.client_id, "client_secret": config.client_secret}
        else:  # RFC 6749 2.3.1: each part form-encoded, then Basic
            pair = f"{quote(config.client_id, safe='')}:{quote(config.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        where = redact_url(url)
        try:
            async with asyncio.timeout(TOKEN_TIMEOUT):
                async with self._session().post(
                    url,
                    data=form,
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    status, body = response.status, await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise credential_error(
                self.agent, f"the token endpoint {where} failed: {reason}"
            ) from None
        document = _object(body)
        if status != 200:
            error = str(document.get("error") or f"HTTP {status}")
            raise credential_error(
                self.agent, f"the token endpoint {where} refused Junction's client: {error}"
            )
        value = document.get("access_token")
        if not isinstance(value, str) or not value:
            raise credential_error(self.agent, f"the token endpoint {where} sent no access_token")
        lifetime = document.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else 300.0
        # renewed a little before it runs out (a tenth of its life, at most 30 s early)
        log.info("agent %s: got a client_credentials token from %s", self.agent, where)
        return _Token(value, time.monotonic() + seconds - min(30.0, seconds / 10))


class ForwardCaller(Credentials):
    """The caller's own token, when it is from `issuer` and names `audience`."""

    def __init__(self, agent: str, issuer: str, audience: str) -> None:
        self.agent, self.issuer, self.audience = agent, issuer, audience

    async def headers(self) -> dict[str, str]:
        token = CALLER_TOKEN.get()
        if token is None:
            raise credential_error(
                self.agent,
                "it takes the caller's own token (forward_caller) and this caller signed in "
                "without one (an API key, or no sign-in)",
            )
        claims = _claims(token)
        if str(claims.get("iss", "")).rstrip("/") != self.issuer:
            raise credential_error(
                self.agent, "the caller's token is from another issuer than the agent's card names"
            )
        audiences = claims.get("aud")
        listed = audiences if isinstance(audiences, list) else [audiences]
        if self.audience not in [str(a).rstrip("/") for a in listed if a]:
            raise credential_error(
                self.agent,
                f"the caller's token is not for this agent's audience ({self.audience}); "
                "Junction does not pass a token on to another audience",
            )
        return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------ the card's requirements


def scheme_kind(scheme: Any) -> tuple[str, Json]:
    """A 1.0 scheme (`{"httpAuthSecurityScheme": {...}}`) as (kind, body); kind is `http`,
    `apiKey`, `oauth2`, `openIdConnect`, `mtls` or `unknown`."""
    if isinstance(scheme, dict):
        for key, kind in (
            ("httpAuthSecurityScheme", "http"),
            ("apiKeySecurityScheme", "apiKey"),
            ("oauth2SecurityScheme", "oauth2"),
            ("openIdConnectSecurityScheme", "openIdConnect"),
            ("mtlsSecurityScheme", "mtls"),
        ):
            body = scheme.get(key)
            if isinstance(body, dict):
                return kind, body
    return "unknown", {}


def requirements(card: Json) -> list[dict[str, Json]]:
    """The card's alternative requirements, each scheme name -> its 1.0 scheme; a requirement
    naming a scheme the card does not define names it with an empty scheme (unmeetable)."""
    schemes = card.get("securitySchemes")
    schemes = schemes if isinstance(schemes, dict) else {}
    found: list[dict[str, Json]] = []
    listed = card.get("securityRequirements")
    for requirement in listed if isinstance(listed, list) else []:
        names = requirement.get("schemes") if isinstance(requirement, dict) else None
        if isinstance(names, dict):
            found.append({str(name): schemes.get(name) or {} for name in names})
    return found


def describe(name: str, scheme: Json) -> str:
    """One scheme in words (URLs without their secrets), for warnings and errors."""
    kind, body = scheme_kind(scheme)
    if kind == "http":
        return f"{name} (HTTP {body.get('scheme', '?')})"
    if kind == "apiKey":
        return f"{name} (API key in {body.get('location', '?')} {body.get('name', '?')})"
    if kind == "openIdConnect":
        return f"{name} (OpenID Connect, {redact_url(str(body.get('openIdConnectUrl', '?')))})"
    if kind == "oauth2":
        return f"{name} (OAuth 2)"
    if kind == "mtls":
        return f"{name} (mutual TLS)"
    return f"{name} (a scheme the card does not define)"


def issuer_of(scheme: Json) -> str | None:
    """The authorization server an OpenID Connect / OAuth 2 scheme names (its discovery URL
    without the well-known suffix), or None."""
    kind, body = scheme_kind(scheme)
    url = body.get("openIdConnectUrl") if kind == "openIdConnect" else None
    if kind == "oauth2":
        url = body.get("oauth2MetadataUrl")
    if not isinstance(url, str):
        return None
    if url.endswith(OIDC_SUFFIX):
        return url.removesuffix(OIDC_SUFFIX).rstrip("/")
    parts = urlsplit(url)
    if parts.path.startswith(OAUTH_SUFFIX):
        path = parts.path.removeprefix(OAUTH_SUFFIX)
        return f"{parts.scheme}://{parts.netloc}{path}".rstrip("/")
    return None


def _card_url_allowed(url: str) -> bool:
    """A token or discovery URL taken from a card: https, or http on a loopback host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    return bool(host) and (parts.scheme == "https" or (parts.scheme == "http" and loopback))


def _header_names(headers: dict[str, str]) -> set[str]:
    return {name.lower() for name in headers}


def credentials_for(
    agent: str,
    auth: AgentAuth | None,
    headers: dict[str, str],
    card: Json,
    *,
    agent_url: str,
    hub_issuer: str | None,
    session: SessionFactory,
) -> tuple[Credentials | None, str | None]:
    """The credentials for `agent` (at `agent_url`) and the problem that stops them, if any
    (see the module)."""
    target = _Target(agent, agent_url.rstrip("/"), hub_issuer, session)
    wanted = requirements(card)
    if not wanted or any(not requirement for requirement in wanted):
        # nothing required (or one alternative needs nothing): send what is configured
        if auth is None or auth.kind == "forward_caller":
            if auth is not None:
                return Refused(agent, _NO_SCHEME), _NO_SCHEME
            return None, None
        return _build(target, auth, "", {})
    tried: list[tuple[str, str]] = []
    for requirement in wanted:
        built: Credentials | None = None
        problem: str | None = None
        for name, scheme in requirement.items():
            if _met_by_headers(scheme, headers):
                continue
            if auth is None or built is not None:
                problem = "nothing configured for it"
                break
            built, problem = _build(target, auth, name, scheme)
            if problem is not None:
                break
        if problem is None:
            return built, None
        tried.append((" + ".join(describe(n, s) for n, s in requirement.items()), problem))
    if auth is None:
        message = (
            f"its card requires {' or '.join(what for what, _ in tried)}, and nothing is "
            f"configured for it (a2a_agents.{agent}.auth)"
        )
    else:
        unmet = "; ".join(f"{what}: {why}" for what, why in tried)
        message = f"its card's security requirements are not met: {unmet}"
    return Refused(agent, message), message


_NO_SCHEME = (
    "forward_caller needs the card to declare an OpenID Connect or OAuth 2 scheme of "
    "Junction's issuer, and it declares none"
)


def _met_by_headers(scheme: Json, headers: dict[str, str]) -> bool:
    """Whether the agent's fixed `headers` already carry what the scheme asks for."""
    kind, body = scheme_kind(scheme)
    names = _header_names(headers)
    if kind in ("http", "oauth2", "openIdConnect"):
        return "authorization" in names
    if kind == "apiKey" and body.get("location", "header") == "header":
        return str(body.get("name", "")).lower() in names
    return False


@dataclass(frozen=True)
class _Target:
    agent: str
    url: str
    hub_issuer: str | None
    session: SessionFactory


def _build(
    target: _Target, auth: AgentAuth, name: str, scheme: Json
) -> tuple[Credentials | None, str | None]:
    """`auth` for one scheme of the card (`name` empty: the card requires none)."""
    agent, hub_issuer = target.agent, target.hub_issuer
    kind, body = scheme_kind(scheme)
    if not name:
        kind = "any"
    if auth.bearer is not None:
        if kind in ("any", "oauth2", "openIdConnect") or (
            kind == "http" and str(body.get("scheme", "")).lower() == "bearer"
        ):
            return Static({"Authorization": f"Bearer {auth.bearer}"}), None
        return None, "a bearer token does not meet it"
    if auth.api_key is not None:
        if kind == "any" or (kind == "apiKey" and body.get("location", "header") == "header"):
            header = auth.header or str(body.get("name") or "") or "X-API-Key"
            return Static({header: auth.api_key}), None
        return None, "an API key in a header does not meet it"
    if auth.oauth_client_credentials is not None:
        return _client_credentials(agent, auth.oauth_client_credentials, kind, body, target.session)
    if kind not in ("oauth2", "openIdConnect"):
        return None, _NO_SCHEME if kind == "any" else "forward_caller does not meet it"
    issuer = issuer_of(scheme)
    if hub_issuer is None:
        return None, "forward_caller needs Junction's own issuer (server.oauth)"
    if issuer is None or issuer != hub_issuer.rstrip("/"):
        return None, "the scheme names another issuer than Junction's (server.oauth.issuer)"
    audience = (auth.audience or "").rstrip("/") or target.url
    return ForwardCaller(agent, issuer, audience), None


def _client_credentials(
    agent: str, config: ClientCredentialsAuth, kind: str, body: Json, session: SessionFactory
) -> tuple[Credentials | None, str | None]:
    if kind not in ("any", "oauth2", "openIdConnect", "http"):
        return None, "an OAuth token does not meet it"
    if kind == "http" and str(body.get("scheme", "")).lower() != "bearer":
        return None, "an OAuth token does not meet it"
    token_url, discovery = config.token_url, None
    if token_url is None and config.issuer is not None:
        discovery = config.issuer.rstrip("/") + OIDC_SUFFIX
    elif token_url is None:
        flows = body.get("flows") if kind == "oauth2" else None
        flow = flows.get("clientCredentials") if isinstance(flows, dict) else None
        named = flow.get("tokenUrl") if isinstance(flow, dict) else None
        if isinstance(named, str) and named:
            token_url = named
        else:
            metadata = body.get("oauth2MetadataUrl") or body.get("openIdConnectUrl")
            discovery = metadata if isinstance(metadata, str) and metadata else None
        card_url = token_url or discovery
        if card_url is None:
            return None, "no token endpoint: set token_url or issuer"
        if not _card_url_allowed(card_url):
            return None, (
                f"the card's token endpoint {redact_url(card_url)} is not https; set token_url "
                "or issuer"
            )
    credentials = ClientCredentials(
        agent, config, token_url=token_url, discovery=discovery, session=session
    )
    return credentials, None


async def _token_endpoint(agent: str, discovery: str, session: SessionFactory) -> str:
    """`token_endpoint` from a discovery document (OpenID Connect, or RFC 8414 as fallback
    for an issuer's)."""
    candidates = [discovery]
    if discovery.endswith(OIDC_SUFFIX):
        parts = urlsplit(discovery.removesuffix(OIDC_SUFFIX))
        candidates.append(f"{parts.scheme}://{parts.netloc}{OAUTH_SUFFIX}{parts.path}")
    for url in candidates:
        try:
            async with asyncio.timeout(TOKEN_TIMEOUT):
                async with session().get(
                    url, headers={"Accept": "application/json"}, allow_redirects=False
                ) as response:
                    if response.status != 200:
                        continue
                    document = _object(await response.read())
        except (TimeoutError, aiohttp.ClientError):
            continue
        endpoint = document.get("token_endpoint")
        if isinstance(endpoint, str) and endpoint:
            return endpoint
    raise credential_error(
        agent, f"no token endpoint in the discovery document at {redact_url(discovery)}"
    )


def _object(body: bytes) -> Json:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _claims(token: str) -> Json:
    """A JWT's payload, unverified: the access guard verified the caller's token already."""
    try:
        payload = token.split(".")[1]
        return _object(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


__all__ = [
    "CALLER_TOKEN",
    "ClientCredentials",
    "Credentials",
    "ForwardCaller",
    "Refused",
    "Static",
    "credentials_for",
    "describe",
    "requirements",
]
