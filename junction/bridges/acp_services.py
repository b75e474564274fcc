"""The ACP agent over the rest of Junction: the router as its `ModelClient`, the MCP gateway as
its tools (and the MCP servers a session names), the A2A agent pool as its agents, and the
narrowing an API key applies to all three on a remote connection. The only place that knows
both Junction's objects and the agent's Protocols. Everything heavy (router_core's aiohttp, the
`mcp` SDK behind the gateway) is imported inside the runtime's lifespan, which the agent starts
after it has answered `initialize`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from acp import AgentRuntime, Credential, Services, ServiceScope, serve_connection
from junction.build import AgentPools, agent_settings, agent_specs, build_router
from junction.config import JunctionConfig
from junction.storage import session_store
from transports import MessageStream

if TYPE_CHECKING:
    from a2a import AgentPool
    from acp.protocols import (
        AgentDirectory,
        AgentInfo,
        AgentProgress,
        AgentQuestion,
        ClientRequestFn,
        ModelClient,
        ProgressCallback,
        SessionToolProvider,
        ToolInfo,
        ToolProvider,
    )
    from acp.schema import McpServer
    from junction.caller import LimitKind
    from mcp_gateway import Catalog, Gateway
    from router_core import ChatRequest, Router, RouterError, StreamEvent

log = logging.getLogger("junction.acp")


def build_runtime(
    config: JunctionConfig,
    overrides: Mapping[str, Any] | None = None,
    *,
    gateway: Gateway | None = None,
    router: Router | None = None,
    current: Callable[[], JunctionConfig] | None = None,
) -> AgentRuntime:
    """One runtime per process: shared by the stdio connection or by every `/acp` connection.

    Serve mode passes the `gateway` and `router` it already runs for `/mcp` and `/v1`, so
    upstreams and health checks run once (otherwise the runtime starts its own after
    `initialize`), and `current`, the config in force, so reloaded A2A agents reach sessions.
    """
    settings = agent_settings(config, overrides)
    store = session_store(config)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[Services]:
        from router_core import close_session

        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(close_session)
            routed = router
            if routed is None:
                routed = await stack.enter_async_context(build_router(config))
            if gateway is None:
                late = _LateGateway(config)
                stack.push_async_callback(late.aclose)
                found: GatewayGetter = late.get
            else:
                found = _running(gateway)
            agent_tools = f"a2a{config.mcp.separator}"
            yield Services(
                models=RoutedModels(routed),
                # Sessions reach A2A agents as agents (`a2a__NAME`, under the key's agent
                # globs); the gateway's `a2a__` tools for MCP clients would be a second way in.
                tools=FilteredTools(
                    _Annotated(found),
                    lambda name: not name.startswith(agent_tools),
                    "is not offered here",
                ),
                session_tools=_GatewaySessionTools(found),
                agents=_agent_pool(config, current),
            )

    # The gateway (the `mcp` SDK, ~0.6 s of imports) is not among these: a session's first
    # answer needs the models only, and _LateGateway imports it on a thread of its own.
    return AgentRuntime(settings, store, lifespan, warm_imports=("router_core.router",))


async def serve_acp(
    stream: MessageStream,
    runtime: AgentRuntime,
    *,
    scope: ServiceScope | None = None,
    owner: str | None = None,
) -> None:
    """One ACP client on any framing (stdio, WebSocket, SSE); a remote one signed in with the
    key or token its transport checked (the stream's ASGI `state`), which it may log out of."""
    credential = credential_of(getattr(stream, "state", None) or {})
    await serve_connection(stream, runtime, scope=scope, owner=owner, credential=credential)


def credential_of(state: Mapping[str, Any]) -> Credential | None:
    """What a remote connection signed in with: an OAuth token (the guard left its expiry in
    `expires_at`) or an API key (a `principal` without one). None on stdio and on a loopback
    server without keys, where there is nothing to log in to."""
    from acp.schema import AuthMethod

    if not state.get("principal"):
        return None
    expires_at = state.get("expires_at")
    if isinstance(expires_at, int | float):
        return Credential(
            AuthMethod(
                id="junction-token",
                name="OAuth access token",
                description="The bearer token this connection was opened with; logout ends "
                "this connection's sign-in, authenticate resumes it while the token is valid",
            ),
            float(expires_at),
        )
    return Credential(
        AuthMethod(
            id="junction-api-key",
            name="Junction API key",
            description="The API key this connection was opened with; logout ends this "
            "connection's sign-in, authenticate resumes it",
        )
    )


def key_scope(state: Mapping[str, Any]) -> ServiceScope | None:
    """What a remote ACP connection may use, from its API key (the ASGI `state` the access
    guard filled): the models, MCP tools and A2A agents its globs allow. MCP servers named in
    `session/new` would run on Junction's host, so only an `admin` key (or a loopback server
    without keys, which is the local user) may start them. None: no limit."""
    from junction.caller import allows
    from junction.limits.acp import LimitedAgents, LimitedModels, LimitedTools
    from router_core.quota import quota_of

    scopes = state.get("scopes")
    local_servers = scopes is None or "admin" in scopes
    limits = {kind: state.get(f"allowed_{kind}") is not None for kind in LIMITS}
    quota = quota_of(dict(state))  # rate limits on its model requests (junction.limits)
    if local_servers and not any(limits.values()) and quota is None:
        return None

    def narrow(services: Services) -> Services:
        tools, agents = services.tools, services.agents
        if tools is not None and limits["mcp_tools"]:
            tools = FilteredTools(tools, lambda n: allows(state, "mcp_tools", n), BY_KEY)
        if agents is not None and limits["a2a_agents"]:
            agents = FilteredAgents(agents, lambda n: allows(state, "a2a_agents", n), BY_KEY)
        models = _AllowedModels(services.models, state) if limits["models"] else services.models
        if quota is not None:  # the limits' check comes after the globs'
            tools = tools if tools is None else LimitedTools(tools, quota)
            agents = agents if agents is None else LimitedAgents(agents, quota)
        return Services(
            models=models if quota is None else LimitedModels(models, quota),
            tools=tools,
            session_tools=services.session_tools if local_servers else _NoLocalServers(),
            agents=agents,
        )

    return narrow


LIMITS: tuple[LimitKind, ...] = ("models", "mcp_tools", "a2a_agents")


BY_KEY = "is not allowed for this API key"


class _AllowedModels:
    """The models an API key may use (the router's answer for the rest: not allowed)."""

    def __init__(self, inner: ModelClient, state: Mapping[str, Any]) -> None:
        self._inner = inner
        self._state = state

    async def stream(
        self, request: ChatRequest, *, key: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        from junction.caller import allows
        from router_core import BackendError

        if not allows(self._state, "models", request.model):
            raise BackendError(f"model {request.model!r} {BY_KEY}")
        async for event in self._inner.stream(request, key=key):
            yield event

    async def models(self) -> list[str]:
        from junction.caller import allows

        return [m for m in await self._inner.models() if allows(self._state, "models", m)]


class FilteredTools:
    """The tools of `inner` that `allowed` lets through; a call to another is refused with
    "NAME `refusal`" (the model reads why)."""

    def __init__(self, inner: ToolProvider, allowed: Callable[[str], bool], refusal: str) -> None:
        self._inner = inner
        self._allowed = allowed
        self._refusal = refusal

    async def llm_tools(self) -> Sequence[ToolInfo]:
        return [t for t in await self._inner.llm_tools() if self._allowed(t.name)]

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_request: ClientRequestFn | None = None,
    ) -> dict[str, Any]:
        if not self._allowed(name):
            text = f"{name} {self._refusal}"
            return {"content": [{"type": "text", "text": text}], "isError": True}
        return await self._inner.call_tool(
            name, arguments, on_progress=on_progress, on_request=on_request
        )


class FilteredAgents:
    """The A2A agents of `inner` that `allowed` lets through; a task for another raises
    `PermissionError("agent NAME `refusal`")`."""

    def __init__(self, inner: AgentDirectory, allowed: Callable[[str], bool], refusal: str) -> None:
        self._inner = inner
        self._allowed = allowed
        self._refusal = refusal

    async def list_agents(self) -> Sequence[AgentInfo]:
        return [a for a in await self._inner.list_agents() if self._allowed(a.name)]

    async def send_task(
        self,
        agent: str,
        message: str,
        *,
        on_progress: AgentProgress | None = None,
        on_input: AgentQuestion | None = None,
        session_id: str | None = None,
    ) -> str:
        if not self._allowed(agent):
            raise PermissionError(f"agent {agent!r} {self._refusal}")
        return await self._inner.send_task(
            agent, message, on_progress=on_progress, on_input=on_input, session_id=session_id
        )


class _NoLocalServers:
    """Session MCP servers refused: they would run on Junction's host for a remote client."""

    @contextlib.asynccontextmanager
    async def open(
        self, servers: Sequence[McpServer], *, cwd: str, roots: Sequence[str] = ()
    ) -> AsyncIterator[SessionToolProvider]:
        raise PermissionError(
            "a remote ACP connection may not start MCP servers on the Junction host "
            "(that needs an API key with the admin scope)"
        )
        yield  # pragma: no cover  (unreachable; makes this an async generator)


class RoutedModels:
    """The router as the agent's `ModelClient`: a session's turns go through backend selection,
    with the session id as the affinity key."""

    def __init__(self, router: Router) -> None:
        self._router = router

    async def stream(
        self, request: ChatRequest, *, key: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        from router_core import BackendError, RouterError

        routed = self._router.stream(request, key=key)
        try:
            async for event in routed:
                yield event
        except RouterError as exc:
            # The turn loop fails the prompt with a BackendError's message.
            raise BackendError(_reason(exc), status=exc.status) from None
        finally:
            await routed.aclose()

    async def models(self) -> list[str]:
        available = self._router.available_models()
        if not available:  # nothing discovered yet (a session opened right after start)
            await self._router.refresh_models(force=False)
            available = self._router.available_models()
        return sorted(available)


def _reason(exc: RouterError) -> str:
    """Why the router got no answer, each distinct failure once: three tries that could not
    connect are one reason (and a count), not the same connect error three times."""
    from router_core import BackendFailed

    if not isinstance(exc, BackendFailed):
        return str(exc)
    last = str(exc.error)
    others = dict.fromkeys(a.error for a in exc.attempts if a.error and a.error != last)
    tries = len(exc.attempts)
    return (
        last
        + (f" (also: {'; '.join(others)})" if others else "")
        + (f" [{tries} tries]" if tries > 1 else "")
    )


def _agent_pool(
    config: JunctionConfig, current: Callable[[], JunctionConfig] | None
) -> PoolDirectory | None:
    """The configured A2A agents, each offered to the model as a tool (None when there are
    none and the config cannot change)."""
    if current is None and not config.a2a_agents:
        return None
    return PoolDirectory(current or (lambda: config))


MAX_QUESTIONS = 10
"""Rounds of an agent's questions answered within one delegated task."""

INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"


class PoolDirectory:
    """The A2A client's `AgentPool` as the agent's `AgentDirectory`, over the agents of the
    config in force (a new pool when a reload changes them)."""

    def __init__(self, current: Callable[[], JunctionConfig]) -> None:

        self._current = current
        self._pools = AgentPools()

    def pool(self) -> AgentPool:

        return self._pools.get(agent_specs(self._current()))

    async def list_agents(self) -> Sequence[AgentInfo]:
        separator = self._current().mcp.separator
        return [_Named(agent, separator) for agent in await self.pool().list_agents()]

    async def send_task(
        self,
        agent: str,
        message: str,
        *,
        on_progress: AgentProgress | None = None,
        on_input: AgentQuestion | None = None,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """The task to its end; each time the agent asks for input (`input-required`),
        `on_input` asks the person and their answer is the task's next message (up to
        `MAX_QUESTIONS` times). No answer leaves the question as the result, for the model."""
        pool = self.pool()
        result = await pool.run_task(
            agent, message, on_progress=on_progress, note_end="\n", metadata=metadata
        )
        for _ in range(MAX_QUESTIONS):
            if on_input is None or result.state != INPUT_REQUIRED or not result.context_id:
                break
            answer = await on_input(result.note or "(the agent asked for more input)")
            if answer is None:
                break
            result = await pool.run_task(
                agent,
                answer,
                context_id=result.context_id,
                on_progress=on_progress,
                note_end="\n",
                metadata=metadata,
            )
        return result.answer(agent)


class _Named:
    """An agent with the tool name it has as an MCP tool too (`a2a__<agent>`, the configured
    separator), so a session's model, permission rules and key globs see one name."""

    def __init__(self, agent: AgentInfo, separator: str) -> None:
        from junction.bridges.a2a_tools import a2a_tool_name

        self._agent = agent
        self.tool_name = a2a_tool_name(agent.name, separator)

    @property
    def name(self) -> str:
        return self._agent.name

    @property
    def description(self) -> str:
        return self._agent.description


GatewayGetter = Callable[[], Awaitable["Gateway | None"]]
"""Waits for the MCP gateway; None when it could not start (sessions run without MCP tools)."""


def _running(gateway: Gateway) -> GatewayGetter:
    async def get() -> Gateway | None:
        return gateway

    return get


class _LateGateway:
    """The MCP gateway, started in a task of its own: `session/new` answers without waiting for
    the `mcp` SDK to import and the upstreams to connect; tools wait for it on first use."""

    def __init__(self, config: JunctionConfig) -> None:
        loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[Gateway | None] = loop.create_future()
        self._stop = asyncio.Event()
        self._task = loop.create_task(self._run(config), name="mcp gateway")

    async def _run(self, config: JunctionConfig) -> None:
        try:
            from junction.build import gateway_inputs

            await _import_in_background("mcp_gateway.gateway")
            from mcp_gateway import Gateway

            specs, options = gateway_inputs(config)
            async with Gateway(specs, options) as started:
                self._ready.set_result(started)
                await self._stop.wait()
        except Exception:
            log.exception("the MCP gateway did not start; sessions run without MCP tools")
        finally:
            if not self._ready.done():
                self._ready.set_result(None)

    async def get(self) -> Gateway | None:
        return await asyncio.shield(self._ready)

    async def aclose(self) -> None:
        self._stop.set()
        if not self._ready.done():  # still importing or connecting: nothing to wind down
            self._task.cancel()
        try:
            await asyncio.wait_for(self._task, timeout=15)
        except asyncio.CancelledError:
            pass
        except TimeoutError:
            log.warning("the MCP gateway did not stop within 15 s")


async def _import_in_background(module: str) -> None:
    """Import `module` on a daemon thread: the event loop keeps answering meanwhile, and an
    agent whose editor goes away during the import (~0.6 s for the `mcp` SDK) exits at once
    instead of waiting for it (an executor thread would be joined at exit)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def load() -> None:
        error: BaseException | None = None
        try:
            importlib.import_module(module)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=load, name=f"import {module}", daemon=True).start()
    await done


class _SessionScope:
    """A gateway session view as the agent's `SessionToolProvider`."""

    def __init__(self, view: Catalog, names: Sequence[str], settle: float) -> None:
        self._view = view
        self._names = set(names)
        self._settle = settle

    async def llm_tools(self) -> Sequence[ToolInfo]:
        return await _annotated(self._view)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_request: ClientRequestFn | None = None,
    ) -> dict[str, Any]:
        return await self._view.call_tool(
            name, arguments, on_progress=on_progress, **_requests(on_request)
        )

    async def startup_problems(self) -> list[str]:
        await self._view.wait_settled(self._settle)
        return [
            f"{status.name}: {status.reason or status.state}"
            for status in self._view.statuses()
            if status.name in self._names and str(status.state) != "ready"
        ]


@dataclass(frozen=True)
class _Listed:
    """A gateway tool as the agent reads it: the LLM shape and the MCP tool's annotations
    (the agent derives the tool's kind, and so what the permission modes do, from them)."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    annotations: Mapping[str, Any] | None


async def _annotated(catalog: Catalog) -> list[ToolInfo]:
    listed = {tool["name"]: tool for tool in await catalog.list_tools()}
    return [
        _Listed(
            tool.name,
            tool.description,
            tool.parameters,
            listed.get(tool.name, {}).get("annotations") or None,
        )
        for tool in await catalog.llm_tools()
    ]


class _Annotated:
    """The gateway's tools with their MCP annotations (see `_Listed`), once it has started."""

    def __init__(self, gateway: GatewayGetter) -> None:
        self._gateway = gateway

    async def llm_tools(self) -> Sequence[ToolInfo]:
        gateway = await self._gateway()
        return [] if gateway is None else await _annotated(gateway)

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_request: ClientRequestFn | None = None,
    ) -> dict[str, Any]:
        gateway = await self._gateway()
        if gateway is None:
            text = f"{name}: the MCP gateway did not start (see Junction's log)"
            return {"content": [{"type": "text", "text": text}], "isError": True}
        return await gateway.call_tool(
            name, arguments, on_progress=on_progress, **_requests(on_request)
        )


def _requests(on_request: ClientRequestFn | None) -> dict[str, Any]:
    """`on_request=` for the gateway's `call_tool`, with the agent's `RpcError` turned into the
    `GatewayError` the gateway sends back to the upstream."""
    if on_request is None:
        return {}
    callback = on_request

    async def forward(method: str, params: dict[str, Any]) -> dict[str, Any]:
        from mcp_gateway import GatewayError
        from transports import RpcError

        try:
            return await callback(method, params)
        except RpcError as exc:
            raise GatewayError(exc.code, exc.message, data=exc.data) from None

    return {"on_request": forward}


class GatewayTools:
    """A running gateway as a `ToolProvider`, its listing as the gateway gives it."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    async def llm_tools(self) -> Sequence[ToolInfo]:
        return await self._gateway.llm_tools()

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_request: ClientRequestFn | None = None,
    ) -> dict[str, Any]:
        return await self._gateway.call_tool(
            name, arguments, on_progress=on_progress, **_requests(on_request)
        )


class _GatewaySessionTools:
    """Session-scoped upstreams (the `mcpServers` of session/new) on the global gateway."""

    def __init__(self, gateway: GatewayGetter) -> None:
        self._gateway = gateway

    @contextlib.asynccontextmanager
    async def open(
        self, servers: Sequence[McpServer], *, cwd: str, roots: Sequence[str] = ()
    ) -> AsyncIterator[_SessionScope]:
        gateway = await self._gateway()
        if gateway is None:
            raise RuntimeError("Junction's MCP gateway did not start (see its log)")
        from acp.schema import McpServerStdio
        from mcp_gateway import HttpUpstream, StdioUpstream, UpstreamSpec

        specs: list[UpstreamSpec] = []
        for server in servers:
            if isinstance(server, McpServerStdio):
                specs.append(
                    StdioUpstream(
                        name=server.name,
                        command=server.command,
                        args=tuple(server.args),
                        env={e.name: e.value for e in server.env},
                        cwd=cwd,
                    )
                )
            else:
                specs.append(
                    HttpUpstream(
                        name=server.name,
                        url=server.url,
                        headers={h.name: h.value for h in server.headers},
                        transport="sse" if server.type == "sse" else "streamable_http",
                    )
                )
        settle = gateway.options.connect_timeout + 1
        async with gateway.session(specs, roots or (cwd,)) as view:
            yield _SessionScope(view, [s.name for s in specs], settle)


__all__ = [
    "BY_KEY",
    "LIMITS",
    "FilteredAgents",
    "FilteredTools",
    "GatewayTools",
    "PoolDirectory",
    "RoutedModels",
    "build_runtime",
    "credential_of",
    "key_scope",
    "serve_acp",
]
