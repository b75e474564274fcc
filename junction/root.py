"""The composition root: `Junction` builds the router, the MCP gateway, the A2A hub (with
Junction's own agent) and the ACP runtime once from the configuration, starts and stops them,
applies a changed configuration to them, and is the library API that serve mode runs.

`junction/reload.py` says which keys a running Junction can take (`APPLY`) and which need a
restart; the steps that bring each part from the old configuration to the new are here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette

from junction.config import JunctionConfig
from junction.http.app import build_app
from junction.http.metrics import Metrics
from junction.http.serve import SHUTDOWN_SETTLE_SECONDS, uvicorn_server
from junction.limits import Limiter
from junction.logs import configure_logging, redact, register_secret
from junction.reload import APPLY, ConfigSource, Listener, Plan, ReloadResult, plan, validate
from transports import MessageStream

if TYPE_CHECKING:
    from a2a import Hub
    from junction.bridges.self_agent import SelfAgent
    from mcp_gateway import Gateway
    from router_core import Router

log = logging.getLogger("junction.root")


class Junction:
    """Every surface of `junction --mode serve`, as an object a Python application can embed.

    One MCP gateway serves both `/mcp` and the ACP sessions, and one router both `/v1` and the
    ACP sessions, so each upstream runs, and is health-checked, once per process.

        junction = Junction.from_config_file("junction.yaml")
        app.mount("/junction", junction.asgi_app())   # in the host's lifespan: async with junction
        await junction.serve(port=8765)               # or run it on its own

    A mounted app's lifespan is not run by Starlette, so a host that mounts `asgi_app()` enters
    `async with junction:` in its own lifespan; served on its own, the app does that itself.

    The configuration is a handle: `config` is what runs now, `await replace_config(new)` runs
    another one without a restart (a `ReloadResult` says what changed and what still needs a
    restart), `subscribe(listener)` hears each change, `await reload()` reads the file again.
    Served by `serve()` or `junction --mode serve`, a change to the file reloads it (while
    `server.watch_config`); `junction --mode serve` also reloads on SIGHUP.

        junction.subscribe(lambda old, new: log.info("now %d backends", len(new.backends)))
        result = await junction.replace_config(junction.config.model_dump() | {"backends": {}})
    """

    def __init__(self, config: JunctionConfig, *, source: ConfigSource | None = None) -> None:
        from junction.bridges.a2a_security import hub_security
        from junction.bridges.acp_services import build_runtime
        from junction.build import build_hub, build_router, gateway_inputs
        from mcp_gateway import Gateway, http_app

        self._config = config
        self._source = source
        self._listeners: list[Listener] = []
        self._reloading = asyncio.Lock()
        self._owns_logging = False
        self._log_level: str | None = None
        specs, options = gateway_inputs(config)
        self.gateway = Gateway(specs, options)
        # No keys of its own: the access guard in front of everything checks `/mcp` too, with
        # the keys of the configuration running now.
        self.mcp_app = http_app(self.gateway, path="/mcp", host=config.server.host)
        self.hub = build_hub(config)
        self.hub.registry.security = lambda: hub_security(self.config.server)
        self.router = build_router(config)
        self.runtime = build_runtime(
            config, gateway=self.gateway, router=self.router, current=lambda: self.config
        )
        self.metrics = Metrics()
        self.metrics.watch(
            router=self.router, gateway=self.gateway, hub=self.hub, runtime=self.runtime
        )
        self.limiter = Limiter(lambda: self.config)
        self.metrics.registry.register(self.limiter.usage)
        self._stack: contextlib.AsyncExitStack | None = None
        self._app: Starlette | None = None
        self._acp_tokens: set[MessageStream] = set()
        """The open remote ACP connections opened with an OAuth token (closed when it expires,
        or when `server.oauth` changes)."""
        self._closing: set[asyncio.Future[None]] = set()
        self._acp_callers: dict[MessageStream, str | None] = {}
        """Open remote ACP connections and the API key name each was opened with (None: no
        keys were configured then)."""
        self.subscribe(self._close_revoked)

    @classmethod
    def from_config_file(cls, path: str | Path) -> Junction:
        """Load, substitute and validate a YAML file (raises `ConfigError` naming key paths);
        `reload()` reads it again."""
        source = ConfigSource(Path(path))
        return cls(source.load(), source=source)

    @classmethod
    def from_config(cls, config: JunctionConfig | Mapping[str, Any]) -> Junction:
        """From config objects, or from the same data a YAML file would hold."""
        if not isinstance(config, JunctionConfig):
            config = JunctionConfig.model_validate(config)
        return cls(config)

    # -- configuration -----------------------------------------------------------------------

    @property
    def config(self) -> JunctionConfig:
        """The configuration running now: after a reload the new one, except keys that need
        a restart, which keep their running values (`junction.reload.RESTART`)."""
        return self._config

    @property
    def source(self) -> ConfigSource | None:
        """Where the configuration was read from (None: built from config objects)."""
        return self._source

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(old, new)` (a function or a coroutine function) after each applied
        change of configuration; returns the function that unsubscribes it. A listener that
        raises is logged and does not stop the others."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    async def _close_revoked(self, old: JunctionConfig, new: JunctionConfig) -> None:
        """A remote ACP connection lives as long as its client wants, so a key removed or
        changed by a reload ends the connections opened with it, and a change of `server.oauth`
        those opened with a token (their running prompts answer `cancelled` as the connection
        closes); new requests are checked by the access guard."""
        if old.server.oauth != new.server.oauth:
            for stream in list(self._acp_tokens):
                log.info("closing an /acp connection opened with a token: server.oauth changed")
                await stream.aclose()
        if old.server.api_keys == new.server.api_keys:
            return
        before = {grant.name: grant for grant in old.server.key_grants()}
        after = {grant.name: grant for grant in new.server.key_grants()}
        for stream, name in list(self._acp_callers.items()):
            if name is None and after:
                log.info("closing an /acp connection opened without a key: keys are now required")
                await stream.aclose()
            elif name is not None and before.get(name) != after.get(name):
                log.info("closing an /acp connection: its API key %r was changed or removed", name)
                await stream.aclose()

    async def replace_config(self, new: JunctionConfig | Mapping[str, Any]) -> ReloadResult:
        """Run another configuration without a restart and without dropping work in flight.

        Raises `ConfigError` (naming key paths) when `new` is invalid; then nothing is applied.
        Changes to keys that need a restart are logged as a warning and not applied; the rest
        is. Reloads run one at a time.
        """
        config = validate(new)
        async with self._reloading:
            old = self._config
            planned = plan(old, config)
            if not planned.hot and not planned.restart:
                log.debug("configuration unchanged")
                return ReloadResult()
            for secret in planned.running.secret_values():
                register_secret(secret)  # new keys and tokens are redacted in logs from now on
            self._config = planned.running  # what every part reads from here on
            failed = await self._apply(old, planned)
            # Once applied (so a line at the new log level), for people and tests to rely on.
            if planned.hot:
                log.info("configuration changed: %s", ", ".join(planned.hot))
            if planned.restart:
                log.warning(
                    "configuration: %s needs a restart; still running with the old value",
                    ", ".join(planned.restart),
                )
            for listener in list(self._listeners):
                try:
                    outcome = listener(old, planned.running)
                    if isinstance(outcome, Awaitable):
                        await outcome
                except Exception:
                    log.exception("configuration listener failed")
        return ReloadResult(planned.hot, planned.restart, failed)

    async def _apply(self, old: JunctionConfig, planned: Plan) -> tuple[str, ...]:
        """Run each step the changed keys need, once, in `APPLY` order; returns `key: reason`
        for the keys whose step failed (logged; the other steps still run)."""
        steps: dict[str, list[str]] = {}
        for key in planned.hot:
            steps.setdefault(_STEPS[_applied_key(key)], []).append(key)
        failed: list[str] = []
        for step in dict.fromkeys(_STEPS[key] for key in APPLY):
            keys = steps.get(step)
            if not keys:
                continue
            try:
                await getattr(self, step)(old, planned.running)
            except Exception as exc:
                log.exception("applying %s failed", ", ".join(keys))
                failed.extend(f"{key}: {type(exc).__name__}: {exc}" for key in keys)
        return tuple(failed)

    async def _read_where_used(self, old: JunctionConfig, new: JunctionConfig) -> None:
        """Nothing to do: the parts that use these keys read `Junction.config` each time (the access
        guard per request, the file watcher per poll, shutdown when it starts, `mcp_servers_file`
        through the `mcp_servers` it fills)."""

    async def _apply_router(self, old: JunctionConfig, new: JunctionConfig) -> None:
        from junction.build import backend_specs, router_settings

        self.router.reconfigure(backend_specs(new), router_settings(new))

    async def _apply_gateway(self, old: JunctionConfig, new: JunctionConfig) -> None:
        from junction.build import gateway_inputs

        specs, options = gateway_inputs(new)
        self.gateway.reconfigure(specs, options)

    async def _apply_agents(self, old: JunctionConfig, new: JunctionConfig) -> None:
        """Add, replace or remove the configured agents in the hub's registry. Any change to an
        entry (`mcp_tool` too) replaces it, so registry listeners, such as the agents' MCP tools,
        hear of it. Agents registered through `/admin` are left alone."""
        if not self.running:
            return  # starting the hub registers the agents of the current configuration
        from junction.build import agent_specs

        registry = self.hub.registry
        specs = agent_specs(new)

        def ours(name: str) -> bool:
            agent = registry.get(name)
            return agent is None or agent.source == "config"

        changed = [name for name in specs if new.a2a_agents[name] != old.a2a_agents.get(name)]
        for name in changed:
            if not ours(name):
                log.warning(
                    "A2A agent %s not changed: the name belongs to a local or admin agent", name
                )
        changed = [name for name in changed if ours(name)]
        gone = [name for name in old.a2a_agents if name not in new.a2a_agents]
        for name in gone:
            agent = registry.get(name)
            if agent is not None and agent.source == "config":
                await registry.remove(name)
                log.info("A2A agent %s removed", name)
        # Cards are fetched concurrently; a bad one is logged and the agent shows as unavailable.
        await asyncio.gather(
            *(registry.add(name, specs[name], source="config", strict=False) for name in changed)
        )
        for name in changed:
            log.info("A2A agent %s %s", name, "added" if name not in old.a2a_agents else "replaced")

    async def _apply_acp(self, old: JunctionConfig, new: JunctionConfig) -> None:
        from junction.build import agent_settings

        self.runtime.settings = agent_settings(new)  # new turns read it

    async def _apply_logging(self, old: JunctionConfig, new: JunctionConfig) -> None:
        self._configure_logging(new)

    async def reload(self) -> ReloadResult:
        """Read the configuration again from where it came from (the file, with the command
        line's additions) and run it with `replace_config`; raises `ConfigError` if invalid."""
        source = self._source
        if source is None:
            raise RuntimeError(
                "this Junction was built from config objects: there is no file to read again "
                "(use replace_config)"
            )
        return await self.replace_config(await asyncio.to_thread(source.load))

    def _own_logging(self, level_override: str | None) -> None:
        """The process's logging is Junction's (the CLI set it up), so `logging:` changes apply
        to it; `level_override` (`--log-level`) wins over the file."""
        self._owns_logging, self._log_level = True, level_override

    def _configure_logging(self, config: JunctionConfig) -> None:
        if self._owns_logging:  # an embedding application owns its logging
            configure_logging(
                self._log_level or config.logging.level,
                config.logging.format,
                access_log=config.logging.access_log,
            )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._stack is not None

    async def start(self) -> None:
        """Start the router's health checks, the MCP upstreams, the hub; idempotent."""
        from junction.bridges.a2a_tools import a2a_agent_tools

        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
            stack.push_async_callback(self.limiter.aclose)
            await stack.enter_async_context(self.router)
            self.metrics.state.watch_breakers()
            await stack.enter_async_context(self.gateway)
            # After the gateway, so the agents' tools go away before it does.
            await stack.enter_async_context(
                a2a_agent_tools(
                    self.gateway,
                    self._config,
                    registry=self.hub.registry,
                    current=lambda: self.config,
                )
            )
            await stack.enter_async_context(self.mcp_app.router.lifespan_context(self.mcp_app))
            await stack.enter_async_context(
                _hub_lifespan(
                    self.hub,
                    self._config,
                    router=self.router,
                    gateway=self.gateway,
                    current=lambda: self.config,
                )
            )
            stack.push_async_callback(self.runtime.aclose)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def aclose(self) -> None:
        """Stop everything `start` started: sessions, upstream connections, child processes."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def drain(self, grace: float) -> None:
        """The first half of a graceful stop (the server has stopped accepting connections).

        In-flight HTTP requests and streams and running ACP turns get up to `grace` seconds
        to finish (new ACP prompts are refused meanwhile). Then what is left is cut, each
        with its protocol's ending: ACP prompts answer `stopReason: cancelled` and ACP
        connections close; A2A client streams end with a status event saying why (the tasks
        keep running at their agents); the MCP upstreams are closed, so tool calls in flight
        answer with a JSON-RPC error and the child processes exit. Returns within `grace`
        plus about `SHUTDOWN_SETTLE_SECONDS`; `aclose()` (the app's lifespan) does the rest.
        """
        loop = asyncio.get_running_loop()
        self.runtime.stop_accepting()
        deadline = loop.time() + grace
        await _poll_until(lambda: not self._busy(), deadline)
        if self._busy():
            log.info("shutdown grace period (%gs) is over: cutting in-flight work", grace)
        self.hub.end_streams("Junction is shutting down")
        # ACP first: a turn waiting on an MCP tool is cancelled (and says so) rather than
        # failing with the upstream that is about to close.
        await self.runtime.drain(SHUTDOWN_SETTLE_SECONDS / 2)
        await self.gateway.stop_upstreams(SHUTDOWN_SETTLE_SECONDS)
        settled = loop.time() + SHUTDOWN_SETTLE_SECONDS / 2
        await _poll_until(lambda: not self._requests_in_flight(), settled)

    def _requests_in_flight(self) -> int:
        return sum(surface.in_progress for surface in self.metrics.http.surfaces.values())

    def _busy(self) -> bool:
        return self.runtime.busy or self._requests_in_flight() > 0

    async def __aenter__(self) -> Junction:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- live state --------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """`healthy` only when every configured component is up; `degraded` names what is not."""
        components: dict[str, dict[str, str]] = {
            "mcp_servers": {
                status.name: (
                    f"{status.state}: {status.reason}"
                    if status.reason and status.state != "ready"
                    else str(status.state)
                )
                for status in self.gateway.statuses()
            },
            "a2a_agents": {agent.name: agent.state() for agent in self.hub.registry.all()},
            "backends": {
                row["name"]: "ready" if row["available"] else str(row["reason"])
                for row in self.router.snapshot()
            },
        }
        down = [
            f"{kind}.{name}"
            for kind, states in components.items()
            for name, state in states.items()
            if state != "ready"
        ]
        return {"status": "degraded" if down else "healthy", "down": down, "components": components}

    def readiness(self) -> tuple[bool, list[str]]:
        """Whether Junction should take traffic (`/health/ready`): it has started, and every
        component `server.ready_requires` names is up; and what is not."""
        if not self.running:
            return False, ["starting"]
        health = self.health()
        up = {
            f"{kind}.{name}" for kind, states in health["components"].items() for name in states
        } - set(health["down"])
        missing = [key for key in self.config.server.ready_requires if key not in up]
        return not missing, missing

    def mcp_servers(self) -> list[dict[str, Any]]:
        """Every MCP upstream's connection state; reasons pass through log redaction because
        upstream errors can quote URLs or headers."""
        servers = []
        for status in self.gateway.statuses():
            row = status.as_dict()
            row["reason"] = redact(row["reason"]) if row["reason"] else row["reason"]
            row["warnings"] = [redact(warning) for warning in row["warnings"]]
            servers.append(row)
        return servers

    # -- HTTP --------------------------------------------------------------------------------

    async def serve_acp_connection(self, stream: MessageStream) -> None:
        """One remote ACP client (`/acp`, WebSocket or SSE) on the runtime every connection
        shares, limited by the API key it came with and owning that key's sessions."""
        from junction.bridges.acp_services import key_scope, serve_acp

        state = getattr(stream, "state", {})
        owner = str(state["principal"]) if state.get("principal") else None
        self._acp_callers[stream] = owner
        expiry: asyncio.TimerHandle | None = None
        expires_at = state.get("expires_at")
        if isinstance(expires_at, float):  # opened with a token: it ends when the token does
            self._acp_tokens.add(stream)
            loop = asyncio.get_running_loop()
            delay = max(0.0, expires_at - time.time())
            expiry = loop.call_later(delay, self._close_expired, stream, owner)
        try:
            await serve_acp(stream, self.runtime, scope=key_scope(state), owner=owner)
        finally:
            self._acp_callers.pop(stream, None)
            self._acp_tokens.discard(stream)
            if expiry is not None:
                expiry.cancel()

    def _close_expired(self, stream: MessageStream, owner: str | None) -> None:
        log.info("closing an /acp connection: the token of %r has expired", owner)
        task = asyncio.ensure_future(stream.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def asgi_app(self) -> Starlette:
        """The application for every surface, guarded by API keys or Host/Origin checks; the
        metrics middleware sits outside the guard so refused requests are counted too."""
        if self._app is None:
            self._app = build_app(self)
        return self._app

    async def serve(
        self, host: str | None = None, port: int | None = None, *, uds: str | None = None
    ) -> None:
        """Serve over HTTP in this event loop until cancelled or signalled (then drain); built
        from a file, a change to it is reloaded while `server.watch_config`."""
        config = self._config.with_server(host, port) if (host or port is not None) else None
        server = uvicorn_server(self, config or self._config, uds=uds, sighup=False)
        serving = asyncio.ensure_future(server.serve())
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            # Cancelled by the embedding application: drain like a SIGTERM, then stop.
            server.should_exit = True
            await serving
            raise


async def _poll_until(done: Callable[[], bool], deadline: float) -> None:
    """Wait until `done()` or the loop time `deadline` (the counters it reads have no event)."""
    loop = asyncio.get_running_loop()
    while not done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await asyncio.sleep(min(0.05, remaining))


_STEPS: dict[str, str] = {
    "server.api_keys": "_read_where_used",
    "server.oauth": "_read_where_used",
    "server.metrics_public": "_read_where_used",
    "server.shutdown_grace_seconds": "_read_where_used",
    "server.watch_config": "_read_where_used",
    "server.allowed_origins": "_read_where_used",
    "server.ready_requires": "_read_where_used",
    "backends": "_apply_router",
    "routing": "_apply_router",
    "mcp_servers": "_apply_gateway",
    "mcp_servers_file": "_read_where_used",
    "mcp": "_apply_gateway",
    "a2a_agents": "_apply_agents",
    "acp": "_apply_acp",
    "logging": "_apply_logging",
    "cluster.limits_on_redis_down": "_read_where_used",
    "limits": "_read_where_used",
}
"""The `Junction` method that applies each key of `junction.reload.APPLY`."""


def _applied_key(key: str) -> str:
    """The `APPLY` entry a changed key falls under (its longest listed prefix)."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in _STEPS:
            return prefix
    raise KeyError(key)


@contextlib.asynccontextmanager
async def _hub_lifespan(
    hub: Hub,
    config: JunctionConfig,
    *,
    router: Router | None = None,
    gateway: Gateway | None = None,
    current: Callable[[], JunctionConfig] | None = None,
) -> AsyncIterator[None]:
    """Start the hub (store, configured agents, card refresh) and stop it; nest in the app's
    lifespan. With `a2a.self_agent` configured and a `router` to run its model turns on,
    Junction's own agent joins the hub's agents (its tools come from `gateway`; the agents it
    may ask from `current`, the config in force)."""
    from junction.bridges.self_agent import SelfAgent
    from junction.build import agent_specs

    await hub.start(agent_specs(config))
    own: SelfAgent | None = None
    try:
        if config.a2a.self_agent is not None and router is not None:
            own = SelfAgent(
                config, config.a2a.self_agent, router=router, gateway=gateway, current=current
            )
            await own.start()
            await hub.registry.add_local(own.name, own.card(), own)
        yield
    finally:
        if own is not None:
            await hub.registry.remove(own.name)
            await own.aclose()
        await hub.close()
