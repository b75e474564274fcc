"""The `server:` section: where the HTTP surfaces listen, and the API keys and OAuth tokens that
may use them."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import PydanticCustomError

from junction.config.errors import unknown_key, user_keys
from junction.config.fields import ConfigModel, HttpUrlStr, NonEmptyStr
from junction.config.limits import LimitSet

__all__ = [
    "API_KEY_SCOPES",
    "ApiKeyConfig",
    "ApiKeyScope",
    "OAuthClaimsConfig",
    "OAuthConfig",
    "ServerConfig",
    "unnamed_key_name",
]


def _is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ApiKeyScope = Literal["mcp", "a2a", "acp", "openai", "admin", "metrics"]
"""A surface a key may use; `metrics` (or `admin`) reads `/metrics` when it is not public."""

API_KEY_SCOPES: tuple[ApiKeyScope, ...] = get_args(ApiKeyScope)


class ApiKeyConfig(ConfigModel):
    """A key limited to some surfaces, and within them to some MCP tools, A2A agents and models.

    The globs match names as clients see them (namespaced tool names, agent names, model names
    or aliases); the default `["*"]` means no limit. They hold on every surface: `/mcp`, the
    A2A hub, `/v1`, and the sessions of a remote ACP connection (`/acp`), where only a key with
    the `admin` scope may start the MCP servers a session names (they run on Junction's host).
    `name` is the principal tasks and MCP sessions are owned by.
    """

    key: str = Field(repr=False)  # never in reprs, tracebacks or logs
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$")
    """Who the key belongs to (it owns tasks and sessions); an unnamed key is `key-` and the
    first 12 hex digits of the key's SHA-256, so it keeps its name when others change."""
    scopes: list[ApiKeyScope] = Field(default_factory=lambda: list(API_KEY_SCOPES), min_length=1)
    mcp_tools: list[NonEmptyStr] = Field(default_factory=lambda: ["*"])
    a2a_agents: list[NonEmptyStr] = Field(default_factory=lambda: ["*"])
    models: list[NonEmptyStr] = Field(default_factory=lambda: ["*"])
    limits: LimitSet | None = None
    """This key's rate limits and quotas, over `limits:` field by field (docs/limits.md)."""


ClaimName = Annotated[str, Field(min_length=1)]


class OAuthClaimsConfig(ConfigModel):
    """Which claims of an access token give what a key's settings give: each value names a
    claim. A list claim, or a space-separated string (as OAuth's `scope` is), is read as a list.
    """

    name: ClaimName = "sub"
    """The principal (it owns tasks, sessions and usage, as a key's name does); `sub` by
    default. Key names and token principals are one namespace: a key named like a user is that
    user."""
    scopes: ClaimName = "scope"
    """The surfaces the token may use: the values that name one (`mcp`, `a2a`, `acp`,
    `openai`, `admin`, `metrics`); other scopes are ignored."""
    mcp_tools: ClaimName | None = None
    """The claim holding the MCP tool globs the token is limited to; unset: not limited."""
    a2a_agents: ClaimName | None = None
    """The claim holding the A2A agent globs; unset: not limited."""
    models: ClaimName | None = None
    """The claim holding the model globs; unset: not limited."""


SignatureAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
_DEFAULT_ALGORITHMS: tuple[SignatureAlgorithm, ...] = ("RS256", "PS256", "ES256", "EdDSA")


def _check_https_unless_loopback(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
        raise PydanticCustomError(
            "oauth_https",
            "must be https (plain http only for a loopback host), got {url}",
            {"url": repr(url)},
        )
    return url


class OAuthConfig(ConfigModel):
    """Junction as an OAuth 2.1 resource server: bearer JWTs from this issuer are accepted beside
    the API keys, on every surface (see docs/identity.md).

    `iss` must be the issuer, `aud` must name Junction (`audience`, or on `/mcp` also
    `audience` + `/mcp`, the MCP endpoint's own resource), `exp` and `nbf` hold; the issuer's
    signing keys come from `jwks_url`, else from its discovery document, and are fetched again
    when a token names a key not seen yet."""

    issuer: HttpUrlStr
    """The authorization server's issuer identifier, exactly as its tokens' `iss` says."""
    audience: HttpUrlStr
    """Junction's resource identifier: its public base URL (`https://junction.example`). The
    protected resource metadata names it, and clients ask the issuer for tokens for it."""
    jwks_url: HttpUrlStr | None = None
    """The issuer's JSON Web Key Set; unset: from its OpenID / RFC 8414 discovery document."""
    algorithms: list[SignatureAlgorithm] = Field(
        default_factory=lambda: list(_DEFAULT_ALGORITHMS), min_length=1
    )
    """Signature algorithms accepted (asymmetric only: a shared secret would let anyone holding
    it mint tokens)."""
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    """Clock skew allowed on `exp` and `nbf`."""
    claims: OAuthClaimsConfig = Field(default_factory=OAuthClaimsConfig)
    limits: LimitSet | None = None
    """Rate limits and quotas of every token holder (each on its own counters), over `limits:`
    field by field; `limits.principals.SUBJECT` overrides them for one (docs/limits.md)."""

    @field_validator("issuer", "jwks_url")
    @classmethod
    def _secure(cls, url: str | None) -> str | None:
        return None if url is None else _check_https_unless_loopback(url)

    @field_validator("audience")
    @classmethod
    def _no_trailing_slash(cls, url: str) -> str:
        return url.rstrip("/")


def _api_key_entries(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate each entry as a string or an `ApiKeyConfig` by its shape.

    Pydantic's union errors would name both members (`api_keys.0.str: ...`,
    `api_keys.0.ApiKeyConfig.scopes.0: ...`); this keeps paths to what the user wrote.
    """
    if not isinstance(value, list):
        return handler(value)
    entries: list[Any] = []
    errors: list[Any] = []
    for index, item in enumerate(value):
        if isinstance(item, str | ApiKeyConfig):
            entries.append(item)
        elif isinstance(item, dict):
            try:
                entries.append(ApiKeyConfig.model_validate(item))
            except ValidationError as exc:
                for error in exc.errors(include_url=False):
                    loc = (index, *error["loc"])
                    if error["type"] == "extra_forbidden":
                        message = unknown_key(str(error["loc"][-1]), user_keys(ApiKeyConfig))
                        custom = PydanticCustomError("unknown_key", message)
                        errors.append({"type": custom, "loc": loc, "input": error["input"]})
                    else:
                        errors.append({**error, "loc": loc})
        else:
            custom = PydanticCustomError(
                "api_key_shape",
                "expected a key (string) or a mapping with 'key' (and scopes, name, ...)",
            )
            errors.append({"type": custom, "loc": (index,), "input": item})
    if errors:
        raise ValidationError.from_exception_data("api_keys", errors)
    return handler(entries)


class ServerConfig(ConfigModel):
    """Where the HTTP surfaces listen; off loopback they must not be open to anyone."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)  # 0: any free port (logged at start)
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest JSON-RPC message on stdio, WebSocket and SSE; a larger one is refused with an
    error. Images in prompts make messages big, but reading and parsing one holds the event loop
    (a 60 MB message stalled other clients ~0.45 s), so the default keeps that under ~0.1 s."""
    workers: int = Field(default=1, ge=1, le=256)
    """Serve mode's worker processes on this host, sharing one listening socket (bound before
    they start, as uvicorn's and gunicorn's workers do) and the store; more than one needs a store every worker can open (a SQLite file or
    PostgreSQL, not `:memory:`), and `cluster.redis_url` so rate limits and A2A task streams
    are shared too (docs/deployment.md, Several replicas). SIGTERM drains every worker."""
    shutdown_grace_seconds: int = Field(default=10, ge=0)
    """On SIGTERM, how long in-flight requests and streams may finish before they are cut."""
    oauth: OAuthConfig | None = None
    """Accept OAuth 2.1 bearer tokens (JWTs) from an identity provider beside the API keys."""
    api_keys: list[str | ApiKeyConfig] = Field(default_factory=list, validate_default=True)
    """Plain strings have full access; mappings (`ApiKeyConfig`) are limited by their scopes.
    Required off loopback unless `oauth` is set."""
    metrics_public: bool = False
    """Serve `/metrics` without a key (for a scraper on a trusted network); otherwise it needs
    a key with the `metrics` or `admin` scope."""
    watch_config: bool = True
    """In serve mode, reload the config file when it changes (SIGHUP reloads it too)."""
    ready_requires: list[
        Annotated[str, Field(pattern=r"^(backends|mcp_servers|a2a_agents)\.[^.]+$")]
    ] = Field(default_factory=list)
    """Components `/health/ready` waits for, as `/health` names them (`backends.NAME`,
    `mcp_servers.NAME`, `a2a_agents.NAME`); with none, ready once started. `/health/live`
    answers while the process serves."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Browser origins (`https://app.example:8443`) that may call the HTTP surfaces, with CORS.
    None by default: a request with any other `Origin` (`null` included) is refused with 403,
    keys or not, so a web page in the user's browser cannot drive Junction."""

    @field_validator("host")
    @classmethod
    def _unbracketed(cls, host: str) -> str:
        # `[::1]` is how a URL writes an IPv6 address; sockets want `::1`.
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        normal: list[str] = []
        for origin in origins:
            parts = urlsplit(origin.strip())
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path
                not in (
                    "",
                    "/",
                )
            ):
                raise PydanticCustomError(
                    "origin",
                    "expected an origin such as 'https://app.example' (scheme and host, no path; "
                    "'null' and '*' are never allowed), got {origin}",
                    {"origin": repr(origin)},
                )
            normal.append(f"{parts.scheme}://{parts.netloc}".lower())
        return normal

    @field_validator("api_keys", mode="wrap")
    @classmethod
    def _entries_by_shape(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _api_key_entries(value, handler)

    @field_validator("api_keys")
    @classmethod
    def _keys_required_off_loopback(
        cls, keys: list[str | ApiKeyConfig], info: ValidationInfo
    ) -> list[str | ApiKeyConfig]:
        for entry in keys:
            if not (entry if isinstance(entry, str) else entry.key).strip():
                raise PydanticCustomError(
                    "empty_api_key",
                    "an API key is empty (is the environment variable it comes from unset?)",
                )
        host = info.data.get("host")
        oauth = info.data.get("oauth")
        if host is not None and not keys and oauth is None and not _is_loopback(host):
            raise PydanticCustomError(
                "api_keys_required",
                "required when server.host is not a loopback address (host is {host})",
                {"host": repr(host)},
            )
        _check_key_identities(keys)
        return keys

    def key_grants(self) -> list[ApiKeyConfig]:
        """Every key as an `ApiKeyConfig` with its name filled in (plain strings: every scope).

        A key listed twice (allowed for plain strings only) is granted once.
        """
        grants: list[ApiKeyConfig] = []
        seen: set[str] = set()
        for entry in self.api_keys:
            if isinstance(entry, str):
                entry = ApiKeyConfig(key=entry)  # noqa: PLW2901 (normalised in place)
            if entry.key in seen:
                continue
            seen.add(entry.key)
            grants.append(
                entry
                if entry.name
                else entry.model_copy(update={"name": unnamed_key_name(entry.key)})
            )
        return grants


def unnamed_key_name(key: str) -> str:
    """An unnamed key's principal: from the key itself, not its position, so removing another
    key (a reload) never hands its tasks and sessions to a different key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _check_key_identities(keys: list[str | ApiKeyConfig]) -> None:
    """Names must be unique (they own tasks), and a key may not carry two different grants."""
    errors: list[Any] = []
    names: set[str] = set()
    plain: set[str] = set()
    scoped: set[str] = set()
    for position, entry in enumerate(keys, start=1):
        if isinstance(entry, str):
            if entry in scoped:
                errors.append(
                    _identity_error(position - 1, (), "this key is also listed with scopes")
                )
            if entry in plain:
                continue  # the same plain key again: the same principal, granted once
            plain.add(entry)
            name = unnamed_key_name(entry)
        else:
            if entry.key in plain or entry.key in scoped:
                errors.append(
                    _identity_error(position - 1, ("key",), "this key is listed more than once")
                )
                continue  # its name would clash too; one error says it
            scoped.add(entry.key)
            name = entry.name or unnamed_key_name(entry.key)
        if name in names:
            errors.append(
                _identity_error(position - 1, ("name",), f"name {name!r} is already used")
            )
        names.add(name)
    if errors:
        raise ValidationError.from_exception_data("api_keys", errors)


def _identity_error(index: int, rest: tuple[str, ...], message: str) -> dict[str, Any]:
    return {
        "type": PydanticCustomError("api_key_identity", message),
        "loc": (index, *rest),
        "input": None,
    }
