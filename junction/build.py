"""From Junction's configuration to each package's own objects: the router's backends and
settings, the MCP gateway's upstream specs and options, the A2A hub and its agents, the ACP
agent's settings. Pure mapping, no running parts: the composition root (`junction.root`), the
modes and the CLI all build through here, so each section is read one way."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from a2a.settings import AgentSpec, HubSettings
from acp import AgentSettings, PermissionPolicy
from junction.caller import CALLER
from junction.config import JunctionConfig, StdioMcpServerConfig
from junction.config.mcp import (
    ClientCredentialsAuthConfig,
    LoginAuthConfig,
    TokenExchangeAuthConfig,
)
from junction.version import __version__
from router_core.settings import BackendSpec, RouterSettings

# What runs (the router, the hub, the agent pool) loads where it is built: `junction --mode
# stdio` answers `initialize` before aiohttp, uvicorn or sse-starlette are imported.
if TYPE_CHECKING:
    from a2a import AgentPool, Hub, RegisteredAgent
    from mcp_gateway import GatewayOptions, UpstreamSpec
    from mcp_gateway.upstream_auth import UpstreamAuth
    from router_core import Router

T = TypeVar("T")


def router_settings(config: JunctionConfig) -> RouterSettings:
    """`routing:` as the router's settings (unset keys keep the router's defaults)."""
    return RouterSettings.model_validate(config.routing.model_dump(exclude_unset=True))


def backend_specs(config: JunctionConfig) -> list[BackendSpec]:
    """One spec per `backends:` entry, in config order (the order `priority` falls back on)."""
    return [
        BackendSpec.model_validate({"name": name, **backend.model_dump(exclude_unset=True)})
        for name, backend in config.backends.items()
    ]


def build_router(config: JunctionConfig) -> Router:
    """The Router for this configuration (not started: serve mode starts it in its lifespan)."""
    from router_core import Router

    return Router(backend_specs(config), router_settings(config))


async def closing_session(work: Awaitable[T]) -> T:
    """Run one-shot work that uses the process-wide HTTP session, then close that session."""
    try:
        return await work
    finally:
        from router_core import close_session

        await close_session()


def _caller_token() -> str | None:
    """The token of the signed-in caller whose request is being served (`junction.caller`)."""
    grant = CALLER.get()
    token = grant.get("subject_token") if grant else None
    return token if isinstance(token, str) else None


def _caller_principal() -> str | None:
    """Who the request being served is for (an API key's name, a token's subject), if anyone."""
    grant = CALLER.get()
    principal = grant.get("principal") if grant else None
    return str(principal) if principal else None


def upstream_auth(
    config: JunctionConfig, auth: ClientCredentialsAuthConfig | LoginAuthConfig | None
) -> UpstreamAuth | None:
    """An HTTP upstream's `auth:` as the gateway's spec; a login's tokens live in
    `mcp.token_store.path` (default: `upstream-tokens` in the user data directory)."""
    from mcp_gateway.upstream_auth import ClientCredentialsAuth, LoginAuth, TokenExchangeAuth

    if auth is None:
        return None
    if isinstance(auth, ClientCredentialsAuthConfig):  # and token exchange, its subclass
        client: dict[str, Any] = {
            "client_id": auth.client_id,
            "client_secret": auth.client_secret,
            "scopes": tuple(auth.scopes),
            "issuer": auth.issuer,
            "token_url": auth.token_url,
            "auth_method": auth.auth_method,
        }
        if isinstance(auth, TokenExchangeAuthConfig):
            return TokenExchangeAuth(**client, subject_token=_caller_token)
        return ClientCredentialsAuth(**client)
    store = config.mcp.token_store
    if store.path:
        directory = Path(store.path).expanduser()
    else:
        import platformdirs  # deferred, as for the store's default

        directory = Path(platformdirs.user_data_dir("junction")) / "upstream-tokens"
    return LoginAuth(
        store=directory,
        key=store.key or None,
        client_id=auth.client_id,
        client_secret=auth.client_secret,
        scopes=tuple(auth.scopes),
        redirect_port=auth.redirect_port,
        per_user=auth.per_user,
        principal=_caller_principal,
    )


def gateway_inputs(config: JunctionConfig) -> tuple[list[UpstreamSpec], GatewayOptions]:
    """The gateway's upstream specs and options for this configuration."""
    from mcp_gateway import GatewayOptions, HttpUpstream, StdioUpstream, ToolFilter

    specs: list[UpstreamSpec] = []
    for name, server in config.mcp_servers.items():
        tools = ToolFilter(allow=tuple(server.tools.allow), deny=tuple(server.tools.deny))
        common: dict[str, Any] = {
            "name": name,
            "tools": tools,
            "call_timeout": server.timeout,
            "connect_timeout": server.connect_timeout,
            "legacy_session": server.legacy_session,
        }
        if isinstance(server, StdioMcpServerConfig):
            specs.append(
                StdioUpstream(
                    command=server.command,
                    args=tuple(server.args),
                    env=dict(server.env),
                    cwd=server.cwd,
                    **common,
                )
            )
        else:
            specs.append(
                HttpUpstream(
                    url=server.url,
                    headers=dict(server.headers),
                    transport=server.transport,
                    auth=upstream_auth(config, server.auth),
                    **common,
                )
            )
    gateway = config.mcp
    options = GatewayOptions(
        version=__version__,
        prefix=gateway.prefix,
        separator=gateway.separator,
        deny=tuple(gateway.deny),
        call_timeout=gateway.call_timeout,
        connect_timeout=gateway.connect_timeout,
        catalog_mode=gateway.catalog_mode,
    )
    return specs, options


def hub_settings(config: JunctionConfig) -> HubSettings:
    """The `a2a:` section (its defaults when the file has none), with Junction's version on the
    hub's card unless one is configured; Junction's own agent, when it takes unrouted tasks, is
    the hub's fallback unless one is named."""
    settings: HubSettings = config.a2a
    if "version" not in settings.model_fields_set:
        settings = settings.model_copy(update={"version": __version__})
    own = config.a2a.self_agent
    if own is not None and own.fallback and settings.fallback_agent is None:
        settings = settings.model_copy(update={"fallback_agent": own.name})
    return settings


def agent_specs(config: JunctionConfig) -> dict[str, AgentSpec]:
    return {
        name: AgentSpec.model_validate(agent.model_dump(include=set(AgentSpec.model_fields)))
        for name, agent in config.a2a_agents.items()
    }


class AgentPools:
    """One `AgentPool` for a set of agents, made anew only when the set changes (a reload, the
    hub's registry): between changes its clients keep their cards and the tasks waiting for
    input."""

    def __init__(self) -> None:
        self._key: tuple[dict[str, AgentSpec], tuple[int, ...]] | None = None
        self._pool: AgentPool | None = None

    def get(self, specs: dict[str, AgentSpec], local: Sequence[RegisteredAgent] = ()) -> AgentPool:
        """The pool for `specs` (remote agents) and `local` (in-process ones)."""
        key = (specs, tuple(id(agent) for agent in local))
        if self._pool is None or key != self._key:
            from a2a import AgentPool

            pool = AgentPool(specs)
            for agent in local:
                assert agent.card is not None and agent.connection is not None
                pool.add_local(agent.name, agent.card, agent.connection)
            self._pool, self._key = pool, key
        return self._pool


def build_hub(config: JunctionConfig) -> Hub:
    """A hub over the configured store; call `await hub.start(agent_specs(config))` in the app's
    lifespan (or use `hub_lifespan`), `await hub.close()` at shutdown."""
    from a2a import Hub
    from junction.storage import task_store

    hub = Hub(task_store(config), hub_settings(config))
    if config.cluster.redis_url:  # task events fan out to the other replicas
        from a2a.fanout import RedisFanout
        from junction.cluster import replica_id

        hub.fanout = RedisFanout(
            config.cluster.redis_url,
            replica_id(),
            lease_seconds=config.cluster.relay_lease_seconds,
        )
    return hub


_SETTING_FIELDS = frozenset(AgentSettings.__dataclass_fields__)


def agent_settings(
    config: JunctionConfig, overrides: Mapping[str, Any] | None = None
) -> AgentSettings:
    """Agent settings from the `acp:` section; keys it does not have yet keep their defaults.

    `overrides` (tests, benchmarks) take the same keys as `AgentSettings`; `permissions` may be
    given as `{"rules": [[glob, decision], ...], "kinds": {kind: decision}}`.
    """
    values: dict[str, Any] = {
        key: value
        for key, value in config.acp.model_dump().items()
        if key in _SETTING_FIELDS and value is not None
    }
    values.setdefault("version", __version__)
    values.update(overrides or {})
    policy = values.get("permissions")
    if isinstance(policy, Mapping):
        kinds = {**PermissionPolicy().kinds, **policy.get("kinds", {})}
        rules = tuple((str(glob), decision) for glob, decision in policy.get("rules", ()))
        values["permissions"] = PermissionPolicy(rules=rules, kinds=kinds)
    return AgentSettings(**values)


__all__ = [
    "AgentPools",
    "agent_settings",
    "agent_specs",
    "backend_specs",
    "build_hub",
    "build_router",
    "closing_session",
    "gateway_inputs",
    "hub_settings",
    "router_settings",
]
