"""`JunctionConfig`, the whole file: one field per section, each section's model in its own
module (or the owning package's settings model), plus the two small sections `store:` and
`logging:`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from junction.config.agents import A2aAgentConfig, A2aConfig
from junction.config.backends import NAME_FROM_KEY, BackendConfig
from junction.config.cluster import ClusterConfig
from junction.config.errors import ConfigError, format_validation_error
from junction.config.fields import ConfigModel
from junction.config.limits import LimitsConfig
from junction.config.mcp import McpGatewayConfig, McpServerConfig
from junction.config.mcp_file import load_mcp_servers_file
from junction.config.redaction import redact, secret_values
from junction.config.server import ServerConfig
from junction.config.sessions import AcpConfig
from junction.config.telemetry import TelemetryConfig
from junction.logs import LOG_LEVELS
from router_core.settings import RouterSettings

__all__ = ["JunctionConfig", "LoggingConfig", "StoreConfig"]


def _default_store_url() -> str:
    import platformdirs  # deferred: only needed when the config does not name a store

    return f"sqlite:///{Path(platformdirs.user_data_dir('junction')) / 'junction.db'}"


class StoreConfig(ConfigModel):
    """Where sessions, tasks and push deliveries persist: SQLite in the user data dir unless
    told otherwise; `postgresql://USER:PASSWORD@HOST:5432/DB` for replicas sharing state
    (docs/deployment.md). The schema is migrated at start, or by `junction migrate`."""

    url: str = Field(default_factory=_default_store_url)
    encryption_key: str | None = None
    """Fernet key(s) sealing push configs (webhook tokens and credentials) at rest, e.g.
    `${JUNCTION_STORE_KEY}`; comma-separated to rotate (the first seals, all open). Unset:
    stored as given."""
    pool_size: int = Field(default=10, ge=1)
    """PostgreSQL: most connections this process opens."""
    connect_timeout: float = Field(default=5.0, gt=0)
    """PostgreSQL: seconds to wait for a connection before a request fails (the store is
    unavailable)."""

    @field_validator("url")
    @classmethod
    def _known_engine(cls, url: str) -> str:
        from stores.urls import parse_store_url

        try:
            parse_store_url(url)
        except ValueError as exc:
            raise PydanticCustomError("store_scheme", "{reason}", {"reason": str(exc)}) from None
        return url

    @field_validator("encryption_key")
    @classmethod
    def _usable_key(cls, key: str | None) -> str | None:
        if key is not None and key.strip():
            from stores.sealing import Sealer, SealError

            try:
                Sealer(key)
            except SealError as exc:
                raise PydanticCustomError("store_key", "{reason}", {"reason": str(exc)}) from None
        return key or None

    @property
    def engine(self) -> str:
        """`sqlite` or `postgresql`."""
        return "sqlite" if self.url.startswith("sqlite:///") else "postgresql"

    @property
    def sqlite_path(self) -> str:
        """The database path: what follows `sqlite:///` (so `sqlite:////abs` is `/abs`)."""
        return self.url.removeprefix("sqlite:///")


class LoggingConfig(ConfigModel):
    """Log verbosity and shape; logs go to stderr (the audit trail to `audit_file` when set)."""

    level: str = "info"
    format: Literal["plain", "json"] = "plain"
    access_log: bool = True
    """One `junction.access` record per HTTP request, stream or WebSocket in serve mode (at
    INFO; about 15 µs a request, see docs/performance.md)."""
    audit_file: str | None = None
    """Append the audit trail (`junction.audit`: who was let in or refused, on which surface, and
    why; identity settings changed by a reload) to this file as JSON lines, apart from the
    other logs; unset: the records go wherever the logs go. See docs/identity.md."""

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


class JunctionConfig(ConfigModel):
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
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)

    @field_validator("backends", mode="before")
    @classmethod
    def _backend_names_from_keys(cls, backends: Any) -> Any:
        if not isinstance(backends, dict):
            return backends
        return {
            key: {**entry, NAME_FROM_KEY: str(key)} if isinstance(entry, dict) else entry
            for key, entry in backends.items()
        }

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
        result = redact(self.model_dump(mode="json"))
        assert isinstance(result, dict)
        return result

    def secret_values(self) -> list[str]:
        """Every non-empty secret in the config, for `junction.logs.register_secret`."""
        return secret_values(self.model_dump(mode="json"))

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
                format_validation_error(exc, "command line", ServerConfig, ("server",))
            ) from None
        return self.model_copy(update={"server": new_server})
