"""The aggregate served with the SDK's own server: stdio, and Streamable HTTP for `/mcp`.

Both protocol revisions are served from the same server: the SDK picks the era per connection
(initialize handshake for 2025-11-25, per-request envelopes for 2026-07-28). List changes reach
handshake-era clients as `notifications/*/list_changed` on their connection, and 2026-era
clients on their `subscriptions/listen` streams.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from fnmatch import fnmatchcase
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server import CacheHint, NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY
from mcp_types.methods import CacheableMethod
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_gateway import _catalog_mode as catalog_mode
from mcp_gateway._client_home import StdioClient
from mcp_gateway._client_relay import Rounds, levels_from
from mcp_gateway._fast_lane import FastLane
from mcp_gateway._fast_lane import enabled as lane_on
from mcp_gateway._sdk import connection_of
from mcp_gateway._sse_endpoint import add_sse_endpoint
from mcp_gateway._stdio_server import serve_streams
from mcp_gateway._subscriptions import Subscriptions
from mcp_gateway.errors import RESOURCE_NOT_FOUND, GatewayError
from mcp_gateway.gateway import Catalog
from mcp_gateway.relay import Relay
from router_core.audit import audit
from router_core.quota import RATE_LIMITED, LimitExceeded, admit, quota_of
from transports import DEFAULT_MAX_MESSAGE_BYTES
from transports.owners import owners_of

log = logging.getLogger("mcp_gateway.server")

_EVENTS: dict[str, Callable[[], ServerEvent]] = {
    "tools": ToolsListChanged,
    "resources": ResourcesListChanged,
    "prompts": PromptsListChanged,
}


_RELEASE = "junction/release"
"""An internal notice: release an upstream subscription of a connection that ended."""


class _Notifier:
    """Fans gateway list changes out to every connected client, in a task of the serving scope."""

    def __init__(self, catalog: Catalog) -> None:
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self._sessions: dict[int, ServerSession] = {}
        self._catalog = catalog
        self._tools_wire: dict[tuple[Any, ...], dict[str, Any]] = {}
        """Per protocol version and per key limit (a limited key sees a filtered list)."""
        self._send, self._recv = anyio.create_memory_object_stream[frozenset[str]](64)
        self._notices, self._notices_in = anyio.create_memory_object_stream[
            tuple[str, dict[str, Any]]
        ](256)
        self._levels: dict[int, str] = {}
        self.subscriptions = Subscriptions(catalog, self.listen)
        self._unsubscribe = catalog.subscribe(self._on_change)
        self._unsubscribe_notices = catalog.subscribe_notices(self._on_notice)
        self.rounds = Rounds(catalog.options.call_timeout)

    def _on_notice(self, method: str, params: dict[str, Any]) -> None:
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
            self._notices.send_nowait((method, params))

    async def deliver_notices(self) -> None:
        """Upstream notifications no call claimed: log messages to every handshake-era client,
        resource updates to the clients subscribed to the resource (and to listen streams)."""
        async with self._notices_in:
            async for method, params in self._notices_in:
                if method == _RELEASE:  # a connection that held subscriptions has ended
                    await self.subscriptions.release(str(params["uri"]))
                    continue
                if method == "notifications/resources/updated":
                    uri = str(params.get("uri"))
                    await self.bus.publish(ResourceUpdated(uri=uri))
                    keys = self.subscriptions.subscribers(uri)
                else:  # a log message: to each client whose level it reaches
                    level = params.get("level")
                    keys = {
                        key
                        for key in self._sessions
                        if level in levels_from(self._levels.get(key, "debug"))
                    }
                for key in list(keys):
                    session = self._sessions.get(key)
                    connection = connection_of(session) if session is not None else None
                    if connection is None:
                        continue
                    try:
                        await connection.outbound.notify(method, params)
                    except Exception as exc:
                        log.debug("could not send %s to a client: %s", method, exc)

    def _on_change(self, kinds: frozenset[str]) -> None:
        if "tools" in kinds:
            self._tools_wire.clear()
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
            self._send.send_nowait(kinds)

    async def track(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Middleware: remember each handshake-era connection so it can be notified."""
        connection = connection_of(ctx.session)
        if connection is not None and ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            key = id(connection)
            if key not in self._sessions:
                self._sessions[key] = ctx.session
                connection.exit_stack.callback(self._forget, key)
        return await call_next(ctx)

    def set_log_level(self, ctx: ServerRequestContext[Any, Any], level: str) -> None:
        connection = connection_of(ctx.session)
        if connection is not None:
            self._levels[id(connection)] = level

    def log_level(self, ctx: ServerRequestContext[Any, Any]) -> str:
        """The level a handshake-era client set (`logging/setLevel`), else all of them."""
        connection = connection_of(ctx.session)
        return self.level_of(connection) if connection is not None else "debug"

    def level_of(self, connection: object) -> str:
        return self._levels.get(id(connection), "debug")

    def _forget(self, key: int) -> None:
        self._sessions.pop(key, None)
        self._levels.pop(key, None)
        for uri in self.subscriptions.gone(key):
            self._on_notice(_RELEASE, {"uri": uri})

    async def cached_tools(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Middleware: an unchanged, unpaged `tools/list` is answered from its last wire form.

        Validating and dumping a thousand tools through the SDK's result models costs ~20 ms;
        the list only changes when an upstream's does, which clears this cache.
        """
        if ctx.method != "tools/list" or (ctx.params or {}).get("cursor"):
            return await call_next(ctx)
        kinds = sorted({"mcp_tools", *(t.grant[0] for t in self._catalog.local_tools() if t.grant)})
        mode = self._catalog.options.catalog_mode
        key = (ctx.protocol_version, mode, *(allowed(ctx, kind) for kind in kinds))
        cached = self._tools_wire.get(key)
        if cached is None:
            result = await call_next(ctx)
            if not isinstance(result, dict) or "nextCursor" in result:
                return result
            self._tools_wire[key] = cached = result
        return cached

    async def pump(self) -> None:
        async with self._recv:
            async for kinds in self._recv:
                for kind in sorted(kinds):
                    await self.bus.publish(_EVENTS[kind]())
                    for session in list(self._sessions.values()):
                        if session.protocol_version in MODERN_PROTOCOL_VERSIONS:
                            continue
                        try:
                            if kind == "tools":
                                await session.send_tool_list_changed()
                            elif kind == "resources":
                                await session.send_resource_list_changed()
                            else:
                                await session.send_prompt_list_changed()
                        except Exception as exc:
                            log.debug("could not notify a client of %s changes: %s", kind, exc)

    def close(self) -> None:
        self._unsubscribe()
        self._unsubscribe_notices()
        self.listen.close()
        self._send.close()
        self._notices.close()


def _page(items: list[dict[str, Any]], cursor: str | None, size: int, key: str) -> dict[str, Any]:
    if size <= 0 and cursor is None:
        return {key: items, "resultType": "complete"}
    try:
        start = int(cursor) if cursor is not None else 0
        if start < 0 or start > len(items):
            raise ValueError(cursor)
    except ValueError:
        raise MCPError(types.INVALID_PARAMS, f"invalid cursor: {cursor!r}") from None
    end = len(items) if size <= 0 else start + size
    result: dict[str, Any] = {key: items[start:end], "resultType": "complete"}
    if end < len(items):
        result["nextCursor"] = str(end)
    return result


def allowed(ctx: ServerRequestContext[Any, Any], kind: str) -> tuple[str, ...] | None:
    """The globs the caller's API key is limited to for `kind` (`mcp_tools`, or what a local
    tool's `grant` names), or None when it is not limited.

    Over HTTP the server's access guard puts them in `scope["state"]["allowed_<kind>"]`; over
    stdio there is no key, so no limit.
    """
    request = ctx.request
    scope = getattr(request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    globs = state.get(f"allowed_{kind}") if isinstance(state, dict) else None
    return None if globs is None else tuple(globs)


def tool_allowed(allowed: tuple[str, ...] | None, name: str) -> bool:
    return allowed is None or any(fnmatchcase(name, glob) for glob in allowed)


def _caller_may_use(ctx: ServerRequestContext[Any, Any], catalog: Catalog) -> Callable[[str], bool]:
    """Whether the caller may see and call a tool: its name against the key's tool globs, and a
    local tool's `grant` against the globs of that kind."""
    tools = allowed(ctx, "mcp_tools")
    grants = {t.name: t.grant for t in catalog.local_tools() if t.grant is not None}

    def may_use(name: str) -> bool:
        if not tool_allowed(tools, name):
            return False
        grant = grants.get(name)
        return grant is None or tool_allowed(allowed(ctx, grant[0]), grant[1])

    return may_use


def _principal(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The caller the access guard named in the request's `scope["state"]` (None over stdio)."""
    scope = getattr(ctx.request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    principal = state.get("principal") if isinstance(state, dict) else None
    return None if principal is None else str(principal)


async def _admit_tool(ctx: ServerRequestContext[Any, Any], name: str) -> None:
    """Count a tool call against the caller's rate limits (the access guard put its quota in
    the request's `scope["state"]`); over one, a JSON-RPC error `RATE_LIMITED` whose data says
    which limit and when it resets."""
    scope = getattr(ctx.request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    try:
        await admit(quota_of(state), "mcp_tools", name)
    except LimitExceeded as exc:
        raise MCPError(RATE_LIMITED, str(exc), exc.data()) from None


def _complete(result: dict[str, Any]) -> dict[str, Any]:
    """2026-07-28 results must say `resultType`; handshake-era upstreams never do."""
    result.setdefault("resultType", "complete")
    return result


_RESUME = ("inputResponses", "requestState")
_CALLER_META = (CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY)


def _resume(ctx: ServerRequestContext[Any, Any]) -> dict[str, Any] | None:
    """A client's retry of an input-required result, as it sent it (the upstream reads it)."""
    params = ctx.params or {}
    found = {k: params[k] for k in _RESUME if k in params}
    return found or None


def _caller_meta(ctx: ServerRequestContext[Any, Any], level: str) -> dict[str, Any] | None:
    """What the upstream must see of the client rather than of Junction: the client's
    capabilities (which input requests it can answer) and its log-level opt-in (2026-07-28).

    A 2025-11-25 client's are its session's: its declared capabilities, and the level it set
    (`level`; all of them until it sets one), which a 2026-07-28 upstream needs per request.
    """
    meta = (ctx.params or {}).get("_meta")
    if isinstance(meta, dict):
        found = {k: meta[k] for k in _CALLER_META if k in meta}
        if found:
            return found
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return None
    caps = ctx.session.client_capabilities or types.ClientCapabilities()
    return {
        CLIENT_CAPABILITIES_META_KEY: caps.model_dump(by_alias=True, exclude_none=True),
        LOG_LEVEL_META_KEY: level,
    }


def _mcp_error(exc: GatewayError) -> MCPError:
    return MCPError(exc.code, exc.message, exc.data)


def build_server(catalog: Catalog) -> tuple[Server[Any], _Notifier]:
    """An SDK low-level `Server` whose handlers are the catalog's listings and calls."""
    notifier = _Notifier(catalog)
    rounds = notifier.rounds
    size = catalog.options.page_size

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> Any:
        if catalog.options.catalog_mode:
            return _hinted({"tools": catalog_mode.TOOLS, "resultType": "complete"}, "tools/list")
        may_use = _caller_may_use(ctx, catalog)
        tools = [t for t in await catalog.list_tools() if may_use(t["name"])]
        return _hinted(_page(tools, params.cursor if params else None, size, "tools"), "tools/list")

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> Any:
        name, arguments = params.name, params.arguments
        if catalog.options.catalog_mode:  # three tools stand for the whole catalog
            if name in (catalog_mode.SEARCH, catalog_mode.DESCRIBE):
                tools = await catalog.list_tools()
                return _complete(
                    catalog_mode.answer(name, arguments or {}, tools, _caller_may_use(ctx, catalog))
                )
            if name == catalog_mode.CALL:
                target = catalog_mode.unwrap(arguments)
                if target is None:
                    raise _mcp_error(
                        GatewayError(types.INVALID_PARAMS, "call_tool needs a name and arguments")
                    )
                name, arguments = target
        if not _caller_may_use(ctx, catalog)(name):
            audit(
                "tool",
                "deny",
                principal=_principal(ctx),
                surface="mcp",
                tool=name,
                reason="the tool is outside the caller's tool globs",
            )
            # The same answer as for a tool that does not exist: a key learns nothing more.
            raise _mcp_error(GatewayError(types.INVALID_PARAMS, f"Unknown tool: {name!r}"))
        await _admit_tool(ctx, name)
        meta = params.meta or {}
        token = meta.get("progress_token", meta.get("progressToken"))

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        async def run(relay: Relay) -> dict[str, Any]:
            return await catalog.call_tool(
                name,
                arguments,
                on_progress=relay.on_progress or (progress if token is not None else None),
                meta=_caller_meta(ctx, notifier.log_level(ctx)),
                resume=_resume(ctx),
                relay=relay,
            )

        try:
            return _complete(
                await rounds.relayed(
                    ctx, lambda: catalog.may_ask("tools", name), run, notifier.log_level(ctx)
                )
            )
        except GatewayError as exc:
            raise _mcp_error(exc) from None

    def _hinted(page: dict[str, Any], method: str) -> dict[str, Any]:
        page["ttlMs"], page["cacheScope"] = catalog.list_hint(method)
        return page

    def lister(
        items: Callable[[], Awaitable[list[dict[str, Any]]]], key: str, method: str
    ) -> Callable[[ServerRequestContext[Any, Any], types.PaginatedRequestParams | None], Any]:
        """A list handler that every caller sees whole (resources, templates, prompts)."""

        async def handler(
            ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
        ) -> Any:
            page = _page(await items(), params.cursor if params else None, size, key)
            return _hinted(page, method)

        return handler

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> Any:
        uri = str(params.uri)

        async def run(relay: Relay) -> dict[str, Any]:
            return await catalog.read_resource(
                uri,
                meta=_caller_meta(ctx, notifier.log_level(ctx)),
                resume=_resume(ctx),
                relay=relay,
            )

        try:
            return _complete(
                await rounds.relayed(
                    ctx, lambda: catalog.may_ask("resources", uri), run, notifier.log_level(ctx)
                )
            )
        except GatewayError as exc:
            modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
            if exc.code == RESOURCE_NOT_FOUND and exc.server is None and modern:
                exc = GatewayError(types.INVALID_PARAMS, exc.message, data=exc.data)  # SEP-2164
            raise _mcp_error(exc) from None

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> Any:
        async def run(relay: Relay) -> dict[str, Any]:
            return await catalog.get_prompt(
                params.name,
                params.arguments,
                meta=_caller_meta(ctx, notifier.log_level(ctx)),
                resume=_resume(ctx),
                relay=relay,
            )

        try:
            return _complete(
                await rounds.relayed(
                    ctx,
                    lambda: catalog.may_ask("prompts", params.name),
                    run,
                    notifier.log_level(ctx),
                )
            )
        except GatewayError as exc:
            raise _mcp_error(exc) from None

    async def complete(
        ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> Any:
        try:
            return _complete(await catalog.complete(ctx.params or {}))
        except GatewayError as exc:
            raise _mcp_error(exc) from None

    async def set_level(
        ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams
    ) -> Any:
        notifier.set_log_level(ctx, params.level)
        await catalog.set_logging_level(params.level)
        return {}

    def subscriber(method: str) -> Callable[[ServerRequestContext[Any, Any], Any], Any]:
        async def handler(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
            subscriptions = notifier.subscriptions
            connection = connection_of(ctx.session)
            key = id(connection if connection is not None else ctx.session)
            try:
                if method == "resources/subscribe":
                    return await subscriptions.subscribe(key, str(params.uri))
                return await subscriptions.unsubscribe(key, str(params.uri))
            except GatewayError as exc:
                raise _mcp_error(exc) from None

        return handler

    # Lists change whenever an upstream does: immediately stale, shareable across callers.
    fresh = CacheHint(ttl_ms=0, scope="public")
    # Logging is deprecated at 2026-07-28 and current at 2025-11-25, which is served too.
    warnings.filterwarnings("ignore", "The logging capability", MCPDeprecationWarning)
    server: Server[Any] = Server(
        catalog.options.name,
        cache_hints=dict.fromkeys(_LISTS, fresh),
        version=catalog.options.version,
        instructions="Junction: tools, resources and prompts of several MCP servers in one.",
        get_tool_input_schema=catalog.tool_input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=lister(catalog.list_resources, "resources", "resources/list"),
        on_list_resource_templates=lister(
            catalog.list_resource_templates, "resourceTemplates", "resources/templates/list"
        ),
        on_read_resource=read_resource,
        on_list_prompts=lister(catalog.list_prompts, "prompts", "prompts/list"),
        on_get_prompt=get_prompt,
        on_completion=complete,
        on_set_logging_level=set_level,
        on_subscribe_resource=subscriber("resources/subscribe"),
        on_unsubscribe_resource=subscriber("resources/unsubscribe"),
        on_subscriptions_listen=notifier.subscriptions.listen,
    )
    server.middleware.append(notifier.track)
    if size <= 0:
        server.middleware.append(notifier.cached_tools)
    return server, notifier


_LISTS: tuple[CacheableMethod, ...] = (
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
)
_NOTIFICATIONS = NotificationOptions(
    prompts_changed=True, resources_changed=True, tools_changed=True
)


async def serve_stdio(
    catalog: Catalog, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> None:
    """Serve the catalog as an MCP server on this process's stdin/stdout until stdin closes;
    a line over `max_message_bytes` is refused (-32600) and skipped."""
    server, notifier = build_server(catalog)
    client = StdioClient(catalog)
    client.attach(server)  # the one client: asked what upstreams ask outside calls
    lane = None
    if lane_on():  # the fast lane for tools/call (_fast_lane.py)
        lane = FastLane(
            catalog, lambda: client.session, notifier.level_of, lambda: server.server_info_stamp
        )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(notifier.pump)
            tg.start_soon(notifier.deliver_notices)
            notifier.rounds.attach(tg)
            async with serve_streams(max_message_bytes, lane) as (read, write):
                await server.run(read, write, server.create_initialization_options(_NOTIFICATIONS))
            tg.cancel_scope.cancel()
    finally:
        notifier.close()


MAX_BOUND_SESSIONS = 100_000
"""Session-to-caller bindings kept (a DELETE forgets one; past this the oldest go)."""


class _SessionOwners:
    """An `Mcp-Session-Id` answers only the caller that opened it.

    The caller is `scope["state"]["principal"]`, which the embedding application's auth
    middleware sets (Junction: the API key's name); without one there is nothing to bind. A
    session id used by another caller gets 404, as an unknown session does, so it is neither
    usable nor confirmed to exist.

    With several processes behind one endpoint (an `Owners` in the scope, `transports.owners`),
    each new session id is recorded there before its response goes out, and a DELETE ends it.
    """

    def __init__(self, app: ASGIApp, *, live: Callable[[str], bool] = lambda _: True) -> None:
        self.app = app
        self.owners: dict[bytes, str] = {}
        self.live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state") or {}
        caller = state.get("principal") if scope["type"] == "http" else None
        shared = owners_of(scope) if scope["type"] == "http" else None
        if not caller and shared is None:
            await self.app(scope, receive, send)
            return
        session = dict(scope.get("headers") or []).get(b"mcp-session-id")
        if session is not None:
            owner = self.owners.get(session)
            if caller and owner is not None and owner != caller:
                await _not_found(send)
                return
            if scope.get("method") == "DELETE":
                self.owners.pop(session, None)
                if shared is not None:
                    shared.closed("mcp", session.decode("latin-1"))
            await self.app(scope, receive, send)
            return

        async def remember(message: Message) -> None:
            if message["type"] == "http.response.start":
                for name, value in message.get("headers") or []:
                    if name.lower() == b"mcp-session-id":
                        if caller:
                            self.owners[bytes(value)] = str(caller)
                        if len(self.owners) > MAX_BOUND_SESSIONS:  # forget the oldest binding
                            del self.owners[next(iter(self.owners))]
                        if shared is not None:
                            ident = bytes(value).decode("latin-1")
                            await shared.opened("mcp", ident, functools.partial(self.live, ident))
            await send(message)

        await self.app(scope, receive, remember)


class _TrimmedHeaders:
    """`Mcp-*` header values without the optional whitespace around them (RFC 9110 5.5).

    The SDK compares `Mcp-Name` and `Mcp-Method` with the body as they come; h11 trims the
    whitespace, httptools (uvicorn's default) keeps it, and a valid request was refused.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers") if scope["type"] == "http" else None
        if headers and any(n.startswith(b"mcp-") and v != v.strip(b" \t") for n, v in headers):
            scope = dict(scope)
            scope["headers"] = [
                (n, v.strip(b" \t") if n.startswith(b"mcp-") else v) for n, v in headers
            ]
        await self.app(scope, receive, send)


async def _not_found(send: Send) -> None:
    body = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32001,"message":"Session not found"}}'
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def http_app(
    catalog: Catalog,
    *,
    path: str = "/mcp",
    host: str = "127.0.0.1",
    manage_gateway: bool = False,
    json_response: bool = False,
) -> Starlette:
    """A Starlette app serving the catalog on `path` (Streamable HTTP, both revisions), and
    on `{path}/sse` + `{path}/messages/` (the HTTP+SSE transport of 2024-11-05).

    It checks no API key: who may call is the embedding application's middleware's decision
    (Junction's access guard), and each session answers only the principal that opened it.

    Its lifespan runs the SDK's session manager and the notifier (and enters the gateway
    itself when `manage_gateway`). Mounted inside another Starlette app, whose lifespan does
    not run sub-app lifespans, enter `app.router.lifespan_context(app)` from the parent's.
    """
    server, notifier = build_server(catalog)
    security = None
    if host not in ("127.0.0.1", "localhost", "::1"):
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(
        streamable_http_path=path,
        json_response=json_response,
        host=host,
        transport_security=security,
        max_request_body_size=catalog.options.max_argument_bytes + 1024 * 1024,
    )
    manager = server.session_manager

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if manage_gateway:
                await stack.enter_async_context(catalog)  # type: ignore[arg-type]
            tg = await stack.enter_async_context(anyio.create_task_group())
            tg.start_soon(notifier.pump)
            tg.start_soon(notifier.deliver_notices)
            notifier.rounds.attach(tg)
            await stack.enter_async_context(manager.run())
            try:
                yield
            finally:
                notifier.close()
                tg.cancel_scope.cancel()

    add_sse_endpoint(  # 2024-11-05 clients: GET {path}/sse, POST {path}/messages/
        app,
        server,
        path,
        server.create_initialization_options(_NOTIFICATIONS),
        security=security,
        max_body=catalog.options.max_argument_bytes + 1024 * 1024,
    )
    app.router.lifespan_context = lifespan
    # The SDK's session manager has no public view of its live sessions.
    app.add_middleware(_SessionOwners, live=lambda ident: ident in manager._server_instances)
    app.add_middleware(_TrimmedHeaders)
    return app
