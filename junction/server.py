"""`junction --mode serve` and the library API: one Starlette application mounting every HTTP
surface (under uvicorn when Junction serves it itself), built by the `Junction` class, whose
configuration can be read, replaced and followed while it runs (`junction/reload.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from junction.config import JunctionConfig, ServerConfig
from junction.logs import configure_logging, redact, register_secret
from junction.metrics import Metrics, RequestMetrics
from junction.reload import (
    ConfigSource,
    Listener,
    ReloadResult,
    apply,
    plan,
    reload_and_log,
    validate,
    watch_files,
)
from junction.security import AccessGuard
from transports import MessageStream

log = logging.getLogger("junction.server")

SHUTDOWN_SETTLE_SECONDS = 3
"""After the grace period: how long cut work has to send its last answers, and upstream
connections and child processes to end, before the rest is cancelled."""


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
        from junction.a2a_mode import build_hub
        from junction.acp_mode import build_runtime
        from junction.mcp_mode import gateway_inputs
        from junction.router_mode import build_router
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
        self._mcp_app = http_app(self.gateway, path="/mcp", host=config.server.host)
        self.hub = build_hub(config)
        self.router = build_router(config)
        self.runtime = build_runtime(
            config, gateway=self.gateway, router=self.router, current=lambda: self.config
        )
        self.metrics = Metrics()
        self.metrics.watch(
            router=self.router, gateway=self.gateway, hub=self.hub, runtime=self.runtime
        )
        self._stack: contextlib.AsyncExitStack | None = None
        self._app: Starlette | None = None
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
        changed by a reload ends the connections opened with it (their running prompts answer
        `cancelled` as the connection closes); new requests are checked by the access guard."""
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
            failed = await apply(self, old, planned)
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
        from junction.a2a_mode import hub_lifespan
        from junction.mcp_mode import a2a_agent_tools

        if self._stack is not None:
            return
        stack = contextlib.AsyncExitStack()
        try:
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
            await stack.enter_async_context(self._mcp_app.router.lifespan_context(self._mcp_app))
            await stack.enter_async_context(
                hub_lifespan(
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

    def asgi_app(self) -> Starlette:
        """The application for every surface, guarded by API keys or Host/Origin checks; the
        metrics middleware sits outside the guard so refused requests are counted too."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def _build_app(self) -> Starlette:
        """Routes read the live objects (router, gateway, hub, runtime), which a reload changes
        in place; the access guard reads the running configuration's keys."""
        from junction.acp_mode import key_scope, serve_acp
        from junction.router_mode import openai_routes
        from transports import sse_routes, websocket_route

        limit = self._config.server.max_message_bytes
        runtime = self.runtime

        async def serve_acp_connection(stream: MessageStream) -> None:
            """One remote ACP client (WebSocket or SSE), on the runtime every connection shares."""
            state = getattr(stream, "state", {})
            owner = str(state["principal"]) if state.get("principal") else None
            self._acp_callers[stream] = owner
            try:
                await serve_acp(stream, runtime, scope=key_scope(state), owner=owner)
            finally:
                self._acp_callers.pop(stream, None)

        async def health(request: Request) -> JSONResponse:
            return JSONResponse(self.health())

        async def admin_mcp(request: Request) -> JSONResponse:
            return JSONResponse({"servers": self.mcp_servers()})

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            if self.running:  # a host application already started us
                yield
                return
            async with self:
                yield

        routes: list[BaseRoute] = [
            Route("/health", health),
            Route("/metrics", self.metrics.endpoint(), methods=["GET"]),
            Route("/admin/mcp", admin_mcp, methods=["GET"]),
            websocket_route("/acp", serve_acp_connection, max_message_bytes=limit),
            Mount("/acp", routes=sse_routes("", serve_acp_connection, max_message_bytes=limit)),
            *self.hub.routes(),
            *openai_routes(self.router),
            Mount("", app=self._mcp_app),  # last: it answers `/mcp` and 404s everything else
        ]
        return Starlette(
            routes=routes,
            lifespan=lifespan,
            middleware=[
                Middleware(RequestMetrics, metrics=self.metrics.http),
                Middleware(_CurrentAccessGuard, junction=self),
            ],
        )

    async def serve(
        self, host: str | None = None, port: int | None = None, *, uds: str | None = None
    ) -> None:
        """Serve over HTTP in this event loop until cancelled or signalled (then drain); built
        from a file, a change to it is reloaded while `server.watch_config`."""
        config = self._config.with_server(host, port) if (host or port is not None) else None
        server = _uvicorn(self, config or self._config, uds=uds, sighup=False)
        serving = asyncio.ensure_future(server.serve())
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            # Cancelled by the embedding application: drain like a SIGTERM, then stop.
            server.should_exit = True
            await serving
            raise


class _CurrentAccessGuard:
    """The `AccessGuard` for the keys of the running configuration: rebuilt when a reload
    changes `server`, so rotating a key needs no restart. A request keeps the grant it came
    in with (a WebSocket opened with a key that is then removed stays open)."""

    def __init__(self, app: ASGIApp, *, junction: Junction) -> None:
        self.app = app
        self.junction = junction
        self._server: ServerConfig | None = None
        self._guard: ASGIApp | None = None

    def _current(self) -> ASGIApp:
        server = self.junction.config.server
        if self._guard is None or server is not self._server:
            guard: ASGIApp = AccessGuard(
                self.app,
                grants=server.key_grants(),
                metrics_public=server.metrics_public,
                allowed_origins=server.allowed_origins,
            )
            if server.allowed_origins:
                # Answers allowed origins' preflights before the guard (which would want a key).
                guard = CORSMiddleware(
                    guard,
                    allow_origins=server.allowed_origins,
                    allow_methods=["*"],
                    allow_headers=["*"],
                    expose_headers=["*"],
                )
            self._guard = guard
            self._server = server
        return self._guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._current()(scope, receive, send)


async def _poll_until(done: Callable[[], bool], deadline: float) -> None:
    """Wait until `done()` or the loop time `deadline` (the counters it reads have no event)."""
    loop = asyncio.get_running_loop()
    while not done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await asyncio.sleep(min(0.05, remaining))


def _uvicorn(junction: Junction, config: JunctionConfig, *, uds: str | None, sighup: bool) -> Any:
    """A uvicorn server for the app that drains on shutdown and, while it serves, reloads the
    configuration when its file changes (and on SIGHUP when `sighup`: when Junction owns the
    process, never in an application that embeds it)."""
    import uvicorn
    from sse_starlette.sse import AppStatus

    class Server(uvicorn.Server):
        # sse-starlette cuts every event stream (MCP, A2A, ACP's SSE variant) mid-body the
        # moment uvicorn sees the signal; while we serve, `drain` ends them properly instead.
        # Its switches are process-wide, so they are put back once this server has stopped.
        _sse_auto_drain = True
        _reloads: set[asyncio.Task[None]]

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self._sse_auto_drain = AppStatus.enable_automatic_graceful_drain
            AppStatus.enable_automatic_graceful_drain = False
            AppStatus.should_exit = False
            self._reloads = set()
            # Before the socket opens, so the watcher's first look precedes any edit a client
            # makes once it sees the server listening.
            source = junction._source
            if source is not None:
                self._spawn(watch_files(junction, source))
            if sighup:
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP, lambda: self._spawn(reload_and_log(junction, "SIGHUP"))
                )
            try:
                await super().startup(sockets)
            except BaseException:  # a failed bind: uvicorn exits without calling shutdown
                self._stop_reloads()
                raise
            if self.should_exit:  # the lifespan failed: likewise
                self._stop_reloads()

        def _stop_reloads(self) -> None:
            if sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            for task in list(self._reloads):  # the watcher, and a reload under way
                task.cancel()

        def _spawn(self, work: Any) -> None:
            task = asyncio.ensure_future(work)
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            self._stop_reloads()
            # Stop accepting first, then drain while the connections are still open: uvicorn's
            # own shutdown closes every WebSocket at once (code 1012) and cuts the rest after
            # its timeout, which is only the backstop here.
            for server in self.servers:
                server.close()
            grace = junction.config.server.shutdown_grace_seconds
            if not self.force_exit:
                log.info("shutting down: in-flight work has up to %gs to finish", grace)
                draining = asyncio.ensure_future(junction.drain(grace))
                while not draining.done() and not self.force_exit:  # a second Ctrl-C forces
                    await asyncio.wait({draining}, timeout=0.1)
                if not draining.done():
                    log.warning("forced exit: in-flight work is not drained")
                    draining.cancel()
                    await asyncio.wait({draining})
                elif not draining.cancelled() and (error := draining.exception()) is not None:
                    log.error("draining in-flight work failed", exc_info=error)
            AppStatus.should_exit = True  # any event stream still open ends now
            try:
                await super().shutdown(sockets)
            finally:
                AppStatus.should_exit = False
                AppStatus.enable_automatic_graceful_drain = self._sse_auto_drain

        def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
            # One stable line (with the real port when --port 0) that people and tests can read.
            for listener in listeners:
                address = listener.getsockname()
                if isinstance(address, str):
                    log.info("listening on unix:%s", address)
                else:
                    log.info("listening on http://%s:%s", address[0], address[1])

    return Server(
        uvicorn.Config(
            junction.asgi_app(),
            host=config.server.host,
            port=config.server.port,
            uds=uds,
            log_config=None,  # keep our stderr logging (uvicorn's default writes to stdout)
            access_log=False,
            ws="websockets-sansio",
            ws_max_size=config.server.max_message_bytes,
            lifespan="on",
            timeout_graceful_shutdown=SHUTDOWN_SETTLE_SECONDS,  # after Junction.drain
        )
    )


def run_serve(
    config: JunctionConfig,
    *,
    uds: str | None = None,
    source: ConfigSource | None = None,
    log_level: str | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (uvicorn drains connections before returning); reload the
    configuration from `source` on SIGHUP and, while `server.watch_config`, when it changes.

    The CLI set up logging, so `logging:` changes apply (`log_level`, from `--log-level`,
    wins over the file's level)."""
    junction = Junction(config, source=source)
    junction._own_logging(log_level)
    server = _uvicorn(junction, config, uds=uds, sighup=True)
    # uvicorn drains on SIGTERM, then re-raises it under the handler that was in place before:
    # make that one a no-op so a graceful stop exits 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()  # on uvloop when it is installed (uvicorn picks the loop)
    finally:
        if uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(uds)
    return 0
