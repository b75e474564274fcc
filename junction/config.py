"""Junction's configuration: YAML with `${VAR}` substitution, validated by pydantic.

Every problem becomes one line of a `ConfigError`, `<file>: <dotted.key.path>: <message>`, so a
user sees exactly which key to fix and never a traceback.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from a2a.settings import HubSettings
from junction.logs import LOG_LEVELS
from router_core.health import BreakerSettings, HealthCheckSettings
from router_core.settings import RouterSettings, TimeoutSettings

__all__ = [
    "API_KEY_SCOPES",
    "A2aAgentConfig",
    "AcpConfig",
    "ApiKeyConfig",
    "ApiKeyScope",
    "BackendConfig",
    "ConfigError",
    "JunctionConfig",
    "LoggingConfig",
    "McpGatewayConfig",
    "McpServerConfig",
    "McpToolFilterConfig",
    "RemoteMcpServerConfig",
    "ServerConfig",
    "StdioMcpServerConfig",
    "StoreConfig",
    "find_config_path",
    "load_config",
    "load_mcp_servers_file",
    "substitute_env",
]

DEFAULT_CONFIG_NAME = "junction.yaml"
ENV_SOURCE = "environment"  # the "file" named in errors about the embedded, env-derived defaults


class ConfigError(Exception):
    """Everything wrong with a configuration, one `<file>: <key.path>: <message>` line each."""

    def __init__(self, lines: str | list[str]) -> None:
        self.lines: list[str] = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


# --------------------------------------------------------------------------- field types

_URL_ADAPTER: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def _check_http_url(value: str) -> str:
    """Reject non-http(s) URLs at load time rather than at the first request."""
    value = value.strip()
    try:
        _URL_ADAPTER.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Input should be a valid URL, ")
        raise PydanticCustomError("url", "not a valid URL ({reason})", {"reason": reason}) from None
    return value


HttpUrlStr = Annotated[str, AfterValidator(_check_http_url)]
"""An http(s) URL kept as the string the user wrote (AnyHttpUrl would append a slash)."""

NonEmptyStr = Annotated[str, Field(min_length=1)]


class _Model(BaseModel):
    """Base for every section: unknown keys are errors, and an empty YAML value means default."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # `mcp_servers:` with every entry commented out parses as None; treat it as absent.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


# --------------------------------------------------------------------------- sections


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


class ApiKeyConfig(_Model):
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
                        close = difflib.get_close_matches(
                            str(error["loc"][-1]), list(ApiKeyConfig.model_fields), n=1
                        )
                        hint = f"did you mean {close[0]!r}?" if close else "expected one of: "
                        if not close:
                            hint += ", ".join(ApiKeyConfig.model_fields)
                        custom = PydanticCustomError("unknown_key", f"unknown key ({hint})")
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


class ServerConfig(_Model):
    """Where the HTTP surfaces listen; off loopback they must not be open to anyone."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)  # 0: any free port (logged at start)
    max_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest JSON-RPC message on stdio, WebSocket and SSE; a larger one is refused with an
    error. Images in prompts make messages big, but reading and parsing one holds the event loop
    (a 60 MB message stalled other clients ~0.45 s), so the default keeps that under ~0.1 s."""
    shutdown_grace_seconds: int = Field(default=10, ge=0)
    """On SIGTERM, how long in-flight requests and streams may finish before they are cut."""
    api_keys: list[str | ApiKeyConfig] = Field(default_factory=list, validate_default=True)
    """Plain strings have full access; mappings (`ApiKeyConfig`) are limited by their scopes."""
    metrics_public: bool = False
    """Serve `/metrics` without a key (for a scraper on a trusted network); otherwise it needs
    a key with the `metrics` or `admin` scope."""
    watch_config: bool = True
    """In serve mode, reload the config file when it changes (SIGHUP reloads it too)."""
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
        if host is not None and not keys and not _is_loopback(host):
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


def _default_store_url() -> str:
    import platformdirs  # deferred: only needed when the config does not name a store

    return f"sqlite:///{Path(platformdirs.user_data_dir('junction')) / 'junction.db'}"


class StoreConfig(_Model):
    """Where sessions and tasks persist; SQLite in the user data dir unless told otherwise."""

    url: str = Field(default_factory=_default_store_url)

    @field_validator("url")
    @classmethod
    def _sqlite_only(cls, url: str) -> str:
        if not url.startswith("sqlite:///") or url == "sqlite:///":
            scheme = url.split(":", 1)[0] if ":" in url else url
            raise PydanticCustomError(
                "store_scheme",
                "only sqlite:///PATH is supported; other schemes ({scheme}) are not supported yet",
                {"scheme": repr(scheme)},
            )
        return url

    @property
    def sqlite_path(self) -> str:
        """The database path: what follows `sqlite:///` (so `sqlite:////abs` is `/abs`)."""
        return self.url.removeprefix("sqlite:///")


class BackendConfig(_Model):
    """One LLM endpoint the router may send model turns to."""

    type: Literal["openai", "ollama", "anthropic"]
    url: HttpUrlStr
    api_key: str = ""
    models: list[str] = Field(default_factory=list)
    """Static model list; when given, the backend's own model list is not asked for."""
    weight: int = Field(default=1, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (redacted in output when they look like credentials)."""
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    health: HealthCheckSettings | None = None
    """Overrides `routing.health` for this backend."""
    breaker: BreakerSettings | None = None
    """Overrides `routing.breaker` for this backend."""


class McpToolFilterConfig(_Model):
    """Glob filters over one server's tool names: a filtered tool is neither listed nor callable."""

    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


Seconds = Annotated[float, Field(gt=0)]


class StdioMcpServerConfig(_Model):
    """An upstream MCP server Junction launches as a child process and talks to over its stdio."""

    kind: ClassVar[str] = "stdio"
    command: NonEmptyStr
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    tools: McpToolFilterConfig = Field(default_factory=McpToolFilterConfig)
    timeout: Seconds | None = None
    connect_timeout: Seconds | None = None


class RemoteMcpServerConfig(_Model):
    """An upstream MCP server reached over HTTP (Streamable HTTP, or legacy SSE)."""

    kind: ClassVar[str] = "remote"
    url: HttpUrlStr
    headers: dict[str, str] = Field(default_factory=dict)
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    tools: McpToolFilterConfig = Field(default_factory=McpToolFilterConfig)
    timeout: Seconds | None = None
    connect_timeout: Seconds | None = None


_MCP_KINDS: dict[str, type[_Model]] = {
    StdioMcpServerConfig.kind: StdioMcpServerConfig,
    RemoteMcpServerConfig.kind: RemoteMcpServerConfig,
}


def _mcp_server_kind(value: Any) -> str | None:
    if isinstance(value, StdioMcpServerConfig | RemoteMcpServerConfig):
        return value.kind
    if isinstance(value, dict):
        return "stdio" if "command" in value else "remote"
    return None


def _one_of_command_or_url(value: Any) -> Any:
    """Say plainly what is wrong instead of pydantic's union error soup."""
    if isinstance(value, StdioMcpServerConfig | RemoteMcpServerConfig):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "mcp_server_shape",
            "expected a mapping with 'command' (stdio server) or 'url' (remote server)",
        )
    has_command, has_url = value.get("command") is not None, value.get("url") is not None
    if has_command and has_url:
        raise PydanticCustomError(
            "mcp_server_shape",
            "give exactly one of 'command' (stdio server) or 'url' (remote server), not both",
        )
    if not has_command and not has_url:
        raise PydanticCustomError(
            "mcp_server_shape",
            "give exactly one of 'command' (stdio server) or 'url' (remote server); neither is set",
        )
    return value


McpServerConfig = Annotated[
    Union[  # noqa: UP007 (Tag annotations need the Union spelling)
        Annotated[StdioMcpServerConfig, Tag("stdio")],
        Annotated[RemoteMcpServerConfig, Tag("remote")],
    ],
    Discriminator(_mcp_server_kind),
    BeforeValidator(_one_of_command_or_url),
]
"""An upstream MCP server: stdio (`command`) or remote (`url`), the common `mcpServers` shape."""


class McpGatewayConfig(_Model):
    """How the MCP aggregate names, filters and times out what its upstreams offer."""

    prefix: Literal["always", "on_collision", "never"] = "always"
    separator: str = Field(default="__", pattern=r"^[A-Za-z0-9_-]{1,8}$")
    deny: list[str] = Field(default_factory=list)
    call_timeout: Seconds = 60.0
    connect_timeout: Seconds = 30.0


class A2aAgentConfig(_Model):
    """A remote A2A agent; its card is fetched from `<url>/.well-known/agent-card.json`."""

    url: HttpUrlStr
    card_url: HttpUrlStr | None = None
    """Where the card is when it is not at the well-known path."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent on every request to the agent (e.g. its API key; redacted in output)."""
    weight: int = Field(default=1, ge=1)
    """Share of tasks when several agents offer the requested skill."""
    mcp_tool: Literal["agent", "skills", "off"] = "agent"
    """How the agent appears on the aggregated MCP server (stdio and `/mcp`): one tool
    (`a2a__NAME`), one tool per skill of its card (`a2a__NAME__SKILL`), or not at all.
    `true`/`false` mean `agent`/`off`."""

    @field_validator("mcp_tool", mode="before")
    @classmethod
    def _mcp_tool_flag(cls, value: object) -> object:
        if value is True:
            return "agent"
        if value is False:
            return "off"
        return value


Decision = Literal["allow", "ask", "deny"]


class SelfAgentSkill(_Model):
    """One skill on the self-agent's card (A2A `AgentSkill`)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str | None = None
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)


class PermissionsConfig(_Model):
    """Which tool calls run without asking: name globs first (first match wins), then tool kinds."""

    rules: list[tuple[str, Decision]] = Field(default_factory=list)
    kinds: dict[
        Literal["read", "edit", "delete", "move", "search", "execute", "think", "fetch", "other"],
        Decision,
    ] = Field(default_factory=dict)


class AcpConfig(_Model):
    """Defaults for ACP sessions opened by an IDE; unset keys keep the agent's own defaults."""

    default_model: str | None = None
    system_prompt: str | None = None
    """`{cwd}` and `{roots}` are replaced with the session's directories."""
    max_model_requests: int | None = Field(default=None, ge=1)
    """Model calls allowed in one prompt turn before it stops with `max_turn_requests`."""
    max_tokens: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=1)
    default_mode: Literal["ask", "auto", "read-only"] | None = None
    permissions: PermissionsConfig | None = None
    image_prompts: bool | None = None
    max_image_bytes: int | None = Field(default=None, ge=1)
    command_timeout: float | None = Field(default=None, gt=0)


class SelfAgentConfig(_Model):
    """Junction's own A2A agent: it answers tasks with the ACP turn loop (models through the
    router, tools from the aggregated MCP servers and the other A2A agents). Nobody is there to
    ask, so a tool call the permission policy would ask about is denied, with the reason."""

    name: str = Field(default="junction", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
    """Its name among the hub's agents (route to it with metadata `agent: NAME`)."""
    description: str = "Junction's own agent: answers with its models and the tools it aggregates."
    skills: list[SelfAgentSkill] = Field(default_factory=list)
    """Skills listed on its card (and the hub's); tasks asking for one are routed to it."""
    model: str | None = None
    """The model its turns use (default: `acp.default_model`, else the router's first)."""
    system_prompt: str | None = None
    mcp_tools: list[NonEmptyStr] = Field(default_factory=lambda: ["*"])
    """Globs over aggregated MCP tool names it may call; others are not offered to its model."""
    a2a_agents: list[NonEmptyStr] = Field(default_factory=lambda: ["*"])
    """Globs over the registered A2A agents it may hand work to (never itself)."""
    permissions: PermissionsConfig | None = None
    """Which calls run; `ask` means deny (default: allow what `mcp_tools` lets through)."""
    fallback: bool = False
    """Take tasks that name no agent, skill or tag no registered agent matches."""
    max_model_requests: int | None = Field(default=None, ge=1)


class LoggingConfig(_Model):
    """Log verbosity and shape; logs always go to stderr."""

    level: str = "info"
    format: Literal["plain", "json"] = "plain"
    access_log: bool = True
    """One `junction.access` record per HTTP request, stream or WebSocket in serve mode (at
    INFO; about 15 µs a request, see docs/performance.md)."""

    @field_validator("level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        normalized = level.strip().lower()
        if normalized not in LOG_LEVELS:
            raise PydanticCustomError(
                "log_level",
                "unknown log level {level}; expected one of {levels}",
                {"level": repr(level), "levels": ", ".join(LOG_LEVELS)},
            )
        return normalized


class A2aConfig(HubSettings):
    """The A2A hub (`a2a/settings.py` HubSettings) and Junction's own agent in it."""

    self_agent: SelfAgentConfig | None = None
    """Off unless set; `self_agent: {}` turns it on with defaults."""


class JunctionConfig(_Model):
    """The whole configuration; every section has a default, so `{}` is a valid config."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    backends: dict[str, BackendConfig] = Field(default_factory=dict)
    routing: RouterSettings = Field(default_factory=RouterSettings)
    mcp_servers: dict[str, McpServerConfig] = Field(default_factory=dict)
    mcp_servers_file: str | None = None
    """A JSON file in the common `mcpServers` format (Claude Desktop, Cursor), merged in."""
    mcp: McpGatewayConfig = Field(default_factory=McpGatewayConfig)
    a2a_agents: dict[str, A2aAgentConfig] = Field(default_factory=dict)
    acp: AcpConfig = Field(default_factory=AcpConfig)
    a2a: A2aConfig = Field(default_factory=A2aConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="after")
    def _self_agent_name_is_free(self) -> JunctionConfig:
        own = self.a2a.self_agent
        if own is not None and own.name in self.a2a_agents:
            raise PydanticCustomError(
                "self_agent_name",
                "a2a.self_agent.name {name} is also an agent in a2a_agents; rename one",
                {"name": repr(own.name)},
            )
        return self

    def redacted(self) -> dict[str, Any]:
        """The config as plain data with every secret replaced by `***`, safe to print."""
        result = _redact_tree(self.model_dump(mode="json"), ())
        assert isinstance(result, dict)
        return result

    def secret_values(self) -> list[str]:
        """Every non-empty secret in the config, for `junction.logs.register_secret`."""
        found: list[str] = []
        _collect_secrets(self.model_dump(mode="json"), (), found)
        return found

    def with_mcp_servers_file(self, path: Path) -> JunctionConfig:
        """A copy with the servers of an `mcpServers` JSON file added (`--mcp-config`).

        A name defined both here and in the file is an error rather than a silent override.
        """
        extra = load_mcp_servers_file(path)
        both = sorted(set(extra) & set(self.mcp_servers))
        if both:
            raise ConfigError(
                [f"{path}: mcpServers.{name}: also defined in mcp_servers" for name in both]
            )
        return self.model_copy(update={"mcp_servers": {**self.mcp_servers, **extra}})

    def with_server(self, host: str | None = None, port: int | None = None) -> JunctionConfig:
        """A copy with `--host`/`--port` applied and re-validated (so api_keys are re-checked)."""
        server = self.server.model_dump()
        if host is not None:
            server["host"] = host
        if port is not None:
            server["port"] = port
        try:
            new_server = ServerConfig.model_validate(server)
        except ValidationError as exc:
            raise ConfigError(
                _format_validation_error(exc, "command line", prefix=("server",))
            ) from None
        return self.model_copy(update={"server": new_server})


# --------------------------------------------------------------------------- redaction

_SECRET_FIELDS = frozenset({"api_key", "api_keys"})
_SECRET_HEADER = re.compile(r"authorization|token|key|secret|cookie|password", re.IGNORECASE)
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
REDACTED = "***"


def _is_secret(path: tuple[str, ...]) -> bool:
    """Whether the string at this key path is a secret (shared by redaction and collection)."""
    if not path:
        return False
    if path[-1] in _SECRET_FIELDS or (len(path) >= 2 and path[-2] == "api_keys"):
        return True
    if len(path) >= 3 and path[-3] == "api_keys" and path[-1] == "key":
        return True  # a scoped key: its `key`, not its name, scopes or globs
    if len(path) >= 4 and path[0] in ("mcp_servers", "a2a_agents", "backends"):
        if path[2] == "headers":
            return bool(_SECRET_HEADER.search(path[3]))
        if path[2] == "env":
            return bool(_SECRET_ENV.search(path[3]))
    return False


def _strip_url_password(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:{REDACTED}@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _redact_tree(node: Any, path: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        return {key: _redact_tree(value, (*path, str(key))) for key, value in node.items()}
    if isinstance(node, list):
        return [_redact_tree(value, (*path, str(i))) for i, value in enumerate(node)]
    if isinstance(node, str):
        if node and _is_secret(path):
            return REDACTED
        if path and path[-1] == "url":
            return _strip_url_password(node)
    return node


def _collect_secrets(node: Any, path: tuple[str, ...], found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _collect_secrets(value, (*path, str(key)), found)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _collect_secrets(value, (*path, str(i)), found)
    elif isinstance(node, str) and node:
        if _is_secret(path):
            found.append(node)
        elif path and path[-1] == "url":
            password = urlsplit(node).password
            if password:
                found.append(password)


# --------------------------------------------------------------------------- ${VAR} substitution

_SUBST = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_SUBST_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


def _dotted(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _substitute_string(
    text: str, env: Mapping[str, str], path: tuple[str | int, ...], errors: list[str]
) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        body = match.group("body")
        if body is None:
            errors.append(f"{_dotted(path)}: unterminated '${{' (write '$${{' for a literal '${{')")
            return whole
        parsed = _SUBST_BODY.fullmatch(body)
        if parsed is None:
            errors.append(
                f"{_dotted(path)}: invalid substitution {whole!r} "
                "(expected ${VAR} or ${VAR:-default}; write '$${' for a literal '${')"
            )
            return whole
        name, default = parsed.group("name"), parsed.group("default")
        value = env.get(name)
        if default is not None:
            return value if value else default  # like the shell: unset or empty takes the default
        if value is None:
            errors.append(
                f"{_dotted(path)}: environment variable {name} is not set "
                f"(use ${{{name}:-default}} to give a default)"
            )
            return whole
        return value

    return _SUBST.sub(replace, text)


def substitute_env(
    node: Any, env: Mapping[str, str], path: tuple[str | int, ...] = ()
) -> tuple[Any, list[str]]:
    """Expand `${VAR}`/`${VAR:-default}` in every string value of parsed YAML; `$${` is a `${`.

    Runs after parsing, so a substituted value can never change the YAML structure. Mapping keys
    are left alone. Returns the new tree and `<key.path>: <message>` lines for each problem.
    """
    errors: list[str] = []

    def walk(item: Any, where: tuple[str | int, ...]) -> Any:
        if isinstance(item, str):
            return _substitute_string(item, env, where, errors)
        if isinstance(item, dict):
            return {key: walk(value, (*where, key)) for key, value in item.items()}
        if isinstance(item, list):
            return [walk(value, (*where, i)) for i, value in enumerate(item)]
        return item

    return walk(node, path), errors


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which PyYAML would otherwise silently drop."""


def _construct_mapping_no_duplicates(
    loader: _StrictLoader, node: yaml.MappingNode
) -> dict[Any, Any]:
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key_node.value!r}",
                    key_node.start_mark,
                )
            seen[ident] = key_node
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node))


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates
)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        if mark is None:
            raise ConfigError(f"{source}: invalid YAML: {problem}") from None
        raise ConfigError(
            f"{source}:{mark.line + 1}:{mark.column + 1}: invalid YAML: {problem}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None


# --------------------------------------------------------------------------- validation errors

_MSG_PREFIXES = ("Value error, ", "Assertion failed, ")


def _describe_loc(loc: tuple[str | int, ...]) -> tuple[str, type[BaseModel] | None]:
    """Dotted key path for a pydantic loc (union tags dropped) and the model owning the last key."""
    parts: list[str] = []
    expected: Any = JunctionConfig
    owner: type[BaseModel] | None = None
    for part in loc:
        while get_origin(expected) is Annotated:
            expected = get_args(expected)[0]
        if get_origin(expected) is Union and isinstance(part, str) and part in _MCP_KINDS:
            expected = _MCP_KINDS[part]  # a discriminator tag, not a key the user wrote
            continue
        if part == "[key]":  # pydantic's marker for "the key itself is invalid"
            continue
        parts.append(str(part))
        if isinstance(expected, type) and issubclass(expected, BaseModel):
            owner = expected
            field = expected.model_fields.get(str(part))
            expected = field.annotation if field is not None else None
        else:
            owner = None
            origin, args = get_origin(expected), get_args(expected)
            if origin is dict and len(args) == 2:
                expected = args[1]
            elif origin is list and args:
                expected = args[0]
            else:
                expected = None
    return ".".join(parts) or "(top level)", owner


def _message(error: Any, owner: type[BaseModel] | None, key: str) -> str:
    if error["type"] == "extra_forbidden":
        allowed = list(owner.model_fields) if owner is not None else []
        close = difflib.get_close_matches(key, allowed, n=1)
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
        if allowed:
            return f"unknown key (expected one of: {', '.join(allowed)})"
        return "unknown key"
    if error["type"] == "missing":
        return "required"
    msg: str = error["msg"]
    for prefix in _MSG_PREFIXES:
        msg = msg.removeprefix(prefix)
    return msg


def validate_config(data: Mapping[str, Any], source: str) -> JunctionConfig:
    """Validate config data (substituted already); errors name `source` and each key path."""
    try:
        return JunctionConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def _format_validation_error(
    exc: ValidationError, source: str, prefix: tuple[str | int, ...] = ()
) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False):
        loc = (*prefix, *error["loc"])
        path, owner = _describe_loc(loc)
        key = str(loc[-1]) if loc else ""
        lines.append(f"{source}: {path}: {_message(error, owner, key)}")
    return lines


# --------------------------------------------------------------------------- discovery and loading


def find_config_path(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """`--config`, else `$JUNCTION_CONFIG`, else `./junction.yaml` if present, else None.

    A path the user named explicitly must exist: silently falling back to defaults would run
    Junction with a configuration nobody asked for.
    """
    for source, value in (("--config", explicit), ("JUNCTION_CONFIG", env.get("JUNCTION_CONFIG"))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                what = "does not exist" if not path.exists() else "is not a file"
                raise ConfigError(f"{value}: config file {what} (given by {source})")
            return path
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def _normalize_ollama_host(value: str) -> str:
    """Accept OLLAMA_HOST the way Ollama does: `host`, `host:port` or a URL; port 11434."""
    value = value.strip().rstrip("/")
    if "://" not in value:
        value = f"http://{value}"
    parts = urlsplit(value)
    try:
        has_port = parts.port is not None
    except ValueError:
        return value  # let URL validation report it
    if not has_port and parts.scheme == "http" and parts.hostname:
        value = urlunsplit(parts._replace(netloc=f"{parts.netloc}:11434"))
    return value


def _defaults_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    backends: dict[str, Any] = {}
    if env.get("OPENAI_API_KEY"):
        backends["openai"] = {
            "type": "openai",
            "url": env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
            "api_key": env["OPENAI_API_KEY"],
        }
    if env.get("ANTHROPIC_API_KEY"):
        backends["anthropic"] = {
            "type": "anthropic",
            "url": "https://api.anthropic.com",
            "api_key": env["ANTHROPIC_API_KEY"],
        }
    if env.get("OLLAMA_HOST"):
        backends["ollama"] = {"type": "ollama", "url": _normalize_ollama_host(env["OLLAMA_HOST"])}
    return {"backends": backends}


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> JunctionConfig:
    """Read, substitute and validate `path`; with None, the embedded defaults (backends from env).

    Raises ConfigError, never anything else, for anything wrong with the file or its contents.
    """
    env = os.environ if env is None else env
    if path is None:
        data: Any = _defaults_from_env(env)
        source = ENV_SOURCE
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
        data = _parse_yaml(text, source)
        if data is None:
            data = {}  # an empty file (or only comments) means all defaults
        if not isinstance(data, dict):
            kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
            raise ConfigError(
                f"{source}: (top level): expected a mapping of sections "
                f"(server, store, backends, ...), got {kind}"
            )
        data, problems = substitute_env(data, env)
        if problems:
            raise ConfigError([f"{source}: {line}" for line in problems])
    try:
        config = JunctionConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    if config.mcp_servers_file:
        base = path.parent if path is not None else Path.cwd()
        config = config.with_mcp_servers_file(base / Path(config.mcp_servers_file).expanduser())
    return config


# --------------------------------------------------------------------------- mcpServers JSON

# Keys other tools put in their `mcpServers` entries that mean nothing here; ignored, so an
# existing Claude Desktop / Cursor / VS Code file works unchanged.
_FOREIGN_MCP_KEYS = frozenset(
    {"disabled", "autoApprove", "alwaysAllow", "description", "envFile", "type", "name"}
)
_MCP_TYPES = {"stdio": None, "http": "streamable_http", "streamable-http": "streamable_http"}
_MCP_TYPES |= {"streamableHttp": "streamable_http", "sse": "sse"}


def load_mcp_servers_file(path: Path) -> dict[str, McpServerConfig]:
    """Read a JSON file in the common `mcpServers` shape (`servers` as VS Code writes it too).

    `type: sse` becomes `transport: sse`; `disabled: true` entries are skipped; keys other tools
    use (autoApprove, ...) are ignored. Errors are `<file>: mcpServers.<name>.<key>: ...` lines.
    """
    import json

    source = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid JSON: {exc}") from None
    key = "mcpServers" if isinstance(data, dict) and "mcpServers" in data else "servers"
    servers = data.get(key) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"{source}: (top level): expected an object with an 'mcpServers' object")
    adapter: TypeAdapter[McpServerConfig] = TypeAdapter(McpServerConfig)
    result: dict[str, McpServerConfig] = {}
    errors: list[str] = []
    for name, entry in servers.items():
        if isinstance(entry, dict):
            if entry.get("disabled") is True:
                continue
            kind = entry.get("type")
            if kind is not None and kind not in _MCP_TYPES:
                errors.append(f"{source}: {key}.{name}.type: unknown server type {kind!r}")
                continue
            kept = {k: v for k, v in entry.items() if k not in _FOREIGN_MCP_KEYS}
            transport = _MCP_TYPES.get(kind or "")
            if transport and "transport" not in kept:
                kept["transport"] = transport
            entry = kept  # noqa: PLW2901 (the cleaned entry is what gets validated)
        try:
            result[name] = adapter.validate_python(entry)
        except ValidationError as exc:
            for line in _format_validation_error(exc, source, prefix=("mcp_servers", name)):
                errors.append(line.replace(f"{source}: mcp_servers.", f"{source}: {key}.", 1))
    if errors:
        raise ConfigError(errors)
    return result
