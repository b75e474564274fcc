"""One upstream MCP server: one long-lived SDK session, supervised, reconnected, catalogued.

Every call shares the one session (a session per call is what makes other gateways ~10x
slower). A supervisor task owns the connection: it connects with a deadline, loads the
catalog, waits until the connection is lost, then reconnects with exponential backoff. A call
that arrives while the upstream is down wakes the supervisor and waits, within the call's own
deadline, for it to come back (reconnect-on-use).

Requests go through the session's dispatcher as raw dicts: a gateway passes results through
(structuredContent, images, embedded resources, `_meta`) rather than re-validating them against
models, and one malformed tool in a listing must cost that tool, not the whole server.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import anyio
import anyio.abc
import httpx2
import mcp_types as types
import orjson
from mcp import Client
from mcp.client import Transport
from mcp.client.session import ClientSession, IncomingMessage
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.dispatcher import CallOptions, ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import find_invalid_x_mcp_header, mcp_param_headers, x_mcp_header_map
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from mcp_gateway._http_keepalive import keepalive_http_client
from mcp_gateway._sdk import TransportStreams, raw_request
from mcp_gateway._stdio import ChildProcess, stdio_transport
from mcp_gateway._upstream_asks import NotifyFn, ServerAsks, dump
from mcp_gateway.errors import GatewayError
from mcp_gateway.oauth_client import http_auth, person_login_problem
from mcp_gateway.relay import HomeFn, InFlight, Relay
from mcp_gateway.specs import GatewayOptions, StdioUpstream, UpstreamSpec
from router_core import tracing
from router_core.semconv import mcp_request_attributes, mcp_request_name, mcp_request_result
from transports import Backoff

log = logging.getLogger("mcp_gateway.upstream")

_MAX_PAGES = 100
_RECONNECTABLE = {types.CONNECTION_CLOSED}
_LIST_EVENTS = {"ToolsListChanged": "tools", "PromptsListChanged": "prompts"}


class UpstreamState(StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    FAILED = "failed"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """A snapshot for `junction tools`, `/health` and `/admin/mcp`."""

    name: str
    kind: str
    state: UpstreamState
    reason: str | None
    protocol_version: str | None
    server_info: str | None
    tools: int
    attempts: int
    warnings: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "state": str(self.state),
            "reason": self.reason,
            "protocol_version": self.protocol_version,
            "server_info": self.server_info,
            "tools": self.tools,
            "attempts": self.attempts,
            "warnings": list(self.warnings),
        }


class ToolCallStats:
    """One tool's calls on one upstream, as plain numbers `/metrics` reads when scraped."""

    __slots__ = ("outcomes", "seconds")

    OUTCOMES = ("ok", "tool_error", "error", "cancelled")
    """`tool_error`: the tool answered `isError`; `error`: the call failed (timeout, protocol
    error, lost connection); `cancelled`: the caller gave up."""

    def __init__(self) -> None:
        self.outcomes = dict.fromkeys(self.OUTCOMES, 0)
        self.seconds = 0.0

    @property
    def calls(self) -> int:
        return sum(self.outcomes.values())


@dataclass(slots=True)
class Catalog:
    """What an upstream offers, as wire dicts, after its filters."""

    tools: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    param_headers: dict[str, dict[tuple[str, ...], str]] = field(default_factory=dict)
    """Per tool with `x-mcp-header` arguments: argument path -> `Mcp-Param-*` name (2026-07-28)."""
    hints: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per list method: the `ttlMs` and `cacheScope` the server gave it (2026-07-28; the
    shortest and narrowest over its pages)."""


class _WatchedRead:
    """The transport's read stream, reporting end-of-stream: that is how a lost peer shows."""

    def __init__(self, inner: Any, on_end: Callable[[str], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._on_end("connection closed")
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _WatchedRead:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> _WatchedRead:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _describe(exc: BaseException) -> str:
    """One readable line for why a connection attempt failed."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MCPError):
        return exc.error.message
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.url}"
    if isinstance(exc, httpx2.ConnectError):
        return f"cannot connect: {exc}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, OSError) else text


class Upstream(ServerAsks):
    """One configured server and its supervised session. Create inside a running event loop."""

    def __init__(
        self,
        spec: UpstreamSpec,
        options: GatewayOptions,
        on_change: Callable[[], None],
        on_notify: NotifyFn | None = None,
        home: HomeFn | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self._options = options
        self._on_change = on_change
        self._on_notify = on_notify
        self._home = home
        """The one client this server serves, for what it asks outside every call."""
        self._calls = InFlight()
        self._twin: Upstream | None = None
        self._parent: Upstream | None = None
        """Of a second, 2025-11-25 session: the upstream it serves for (its list changes are
        that one's to load)."""
        self._tg: anyio.abc.TaskGroup | None = None
        self._url_elicitations: dict[str, Relay] = {}
        self.state = UpstreamState.CONNECTING
        self.reason: str | None = None
        self.catalog = Catalog()
        self.attempts = 0
        self.protocol_version: str | None = None
        self.server_info: str | None = None
        self.first_attempt_done = anyio.Event()
        self.stopped = anyio.Event()
        self._client: Client | None = None
        self._changed = anyio.Event()
        self._lost = anyio.Event()
        self._lost_reason: str | None = None
        self._wake = anyio.Event()
        self._refresh = anyio.Event()
        self._heard: set[str] = set()
        self._watched: set[str] = set()
        self._watch_changed = anyio.Event()
        self.announced: set[str] = set()
        """Lists the server said changed since the catalog last heard (see `Catalog.rebuild`):
        passed on even when the aggregate looks the same, as the server meant them."""
        self._closing = False
        self._was_ready = False
        self._sequence = 0
        self._child = ChildProcess(spec.name) if isinstance(spec, StdioUpstream) else None
        self.tool_calls: dict[str, ToolCallStats] = {}
        """Per tool (the upstream's own name); tool names are bounded by the upstream's list."""

    # ------------------------------------------------------------------ status

    @property
    def call_timeout(self) -> float:
        return self.spec.call_timeout or self._options.call_timeout

    def status(self) -> UpstreamStatus:
        return UpstreamStatus(
            name=self.name,
            kind=self.spec.kind,
            state=self.state,
            reason=self.reason,
            protocol_version=self.protocol_version,
            server_info=self.server_info,
            tools=len(self.catalog.tools),
            attempts=self.attempts,
            warnings=tuple(self.catalog.warnings),
        )

    @property
    def modern(self) -> bool:
        """Connected at 2026-07-28 (stateless, per-request envelopes)."""
        return self.protocol_version in MODERN_PROTOCOL_VERSIONS

    def offers(self, feature: str) -> bool:
        """Whether the connected server declared `completions`, `logging` or (resources)
        `subscribe` in its capabilities."""
        client = self._client
        caps = client.server_capabilities if client is not None else None
        if caps is None:
            return False
        if feature == "subscribe":
            return bool(caps.resources and caps.resources.subscribe)
        return getattr(caps, feature, None) is not None

    def _set_state(self, state: UpstreamState, reason: str | None = None) -> None:
        if state != self.state or reason != self.reason:
            level = logging.INFO if state == UpstreamState.READY else logging.WARNING
            if state in (
                UpstreamState.CONNECTING,
                UpstreamState.RECONNECTING,
                UpstreamState.CLOSED,
            ):
                level = logging.DEBUG
            elif state == UpstreamState.FAILED and self.attempts > 1 and not self._was_ready:
                level = logging.DEBUG  # the same server still failing: said once is enough
            log.log(level, "upstream %s: %s%s", self.name, state, f" ({reason})" if reason else "")
        self.state, self.reason = state, reason
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        self._on_change()

    def _mark_lost(self, reason: str) -> None:
        self._client = None  # no new request goes to a session known to be dead
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    # ------------------------------------------------------------------ supervisor

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff, until `close()`; never raises."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                await self._supervise()
            finally:
                self._tg = None
                if self._twin is not None:
                    self._twin.close()

    def _twin_for(self, relay: Relay | None) -> Upstream:
        """The session a call goes over: a 2025-11-25 client's call to a server that speaks
        2026-07-28 goes over a second session at 2025-11-25 (`UpstreamSpec.legacy_session`)."""
        if (
            relay is None
            or not relay.legacy
            or not self.modern
            or not self.spec.wants_legacy_session
        ):
            return self
        if self._twin is None and self._tg is not None:
            spec = dataclasses.replace(self.spec, protocol="legacy")
            self._twin = Upstream(spec, self._options, lambda: None, self._on_notify)
            self._twin.tool_calls = self.tool_calls  # counted as this server's
            self._twin._parent = self
            self._tg.start_soon(self._twin.run, name=f"mcp upstream {self.name} (2025-11-25)")
            log.info("upstream %s: a 2025-11-25 session for 2025-11-25 clients", self.name)
        return self._twin or self

    async def _supervise(self) -> None:
        backoff = Backoff(self._options.reconnect_initial_delay, self._options.reconnect_max_delay)
        try:
            while not self._closing:
                self.attempts += 1
                again = self.first_attempt_done.is_set()
                state = UpstreamState.RECONNECTING if again else UpstreamState.CONNECTING
                self._set_state(state, self.reason)  # the last failure stays visible
                was_ready, reason = await self._connect_once()
                self.first_attempt_done.set()
                if self._closing:
                    break
                self._was_ready = was_ready
                if was_ready:
                    backoff.reset()
                self._set_state(UpstreamState.FAILED, reason)
                delay = backoff.next_delay()
                assert delay is not None  # a schedule without an attempt limit never runs out
                with anyio.move_on_after(delay):
                    await self._wake.wait()
                if self._wake.is_set():  # a caller is waiting: retry soon, but never spin
                    await anyio.sleep(min(delay, backoff.initial))
                self._wake = anyio.Event()
        finally:
            self.first_attempt_done.set()
            self._closing = True
            self._set_state(UpstreamState.CLOSED, self.reason)
            self.stopped.set()

    def close(self) -> None:
        self._closing = True
        self._mark_lost("gateway closing")
        self._wake.set()

    async def _connect_once(self) -> tuple[bool, str]:
        self._lost = anyio.Event()
        self._lost_reason = None
        if self._child is not None:
            self._child = ChildProcess(self.name)
        timeout = self.spec.connect_timeout or self._options.connect_timeout
        ready = False
        try:
            with anyio.CancelScope() as scope:
                scope.deadline = anyio.current_time() + timeout
                async with self._open() as client, anyio.create_task_group() as tg:
                    session = client.session
                    self.protocol_version = client.protocol_version
                    info = client.server_info
                    self.server_info = f"{info.name} {info.version}".strip() if info else None
                    self._refresh = anyio.Event()
                    if self.protocol_version in MODERN_PROTOCOL_VERSIONS:
                        # Listening before listing: a change in between is not lost.
                        await tg.start(self._listen, client)
                        caps = client.server_capabilities
                        if caps.resources is not None and caps.resources.subscribe:
                            tg.start_soon(self._watch_resources, client)
                    self.catalog = await self._load_catalog(session)
                    scope.deadline = math.inf
                    self._client = client
                    ready = True
                    self._set_state(UpstreamState.READY)
                    self.first_attempt_done.set()
                    tg.start_soon(self._refresher, session)
                    await self._lost.wait()
                    tg.cancel_scope.cancel()
                self._client = None
                return ready, self._lost_reason or "connection lost"
            return ready, self._with_child(f"timed out after {timeout:g}s connecting", False)
        except Exception as exc:
            log.debug("upstream %s: connection attempt failed", self.name, exc_info=True)
            described = _describe(exc)
            if self._lost_reason and described in ("Connection closed", "connection closed"):
                return ready, self._lost_reason  # the child's exit says more than EOF does
            return ready, self._with_child(described)
        finally:
            self._client = None

    def _with_child(self, reason: str, exit_status: bool = True) -> str:
        if self._child is None or self._child.pid is None:
            return reason
        detail = self._child.describe_exit(exit_status)
        return reason if detail in reason else f"{reason}; {detail}"

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Client]:
        async with self._transport() as (read, write):
            watched = _WatchedRead(read, self._mark_lost)
            # Junction answers for its callers: it declares what they may (each call's relay
            # refuses what its caller cannot); 2026-07-28 requests carry the caller's own.
            client = Client(
                _Streams(watched, write),
                message_handler=self._on_message,
                sampling_callback=self._sampling,
                sampling_capabilities=types.SamplingCapability(
                    context=types.SamplingContextCapability(), tools=types.SamplingToolsCapability()
                ),
                elicitation_callback=self._elicitation,
                list_roots_callback=self._roots,
                logging_callback=self._log,
                cache=None,
                mode=self.spec.protocol,
                client_info=types.Implementation(
                    name=self._options.name, version=self._options.version
                ),
            )
            async with client:
                yield client

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[TransportStreams]:
        spec = self.spec
        if isinstance(spec, StdioUpstream):
            assert self._child is not None
            async with stdio_transport(spec, self._child, self._mark_lost) as streams:
                yield streams
        elif spec.transport == "sse":
            auth = http_auth(spec)  # OAuth toward the upstream, if configured
            async with sse_client(spec.url, headers=dict(spec.headers), auth=auth) as streams:
                yield streams
        else:
            auth = http_auth(spec)
            async with keepalive_http_client(dict(spec.headers) or None, auth) as http:
                # The SDK caps one SSE event at 1 MiB by default; a tool result may be larger.
                async with streamable_http_client(
                    spec.url, http_client=http, max_sse_event_size=None
                ) as streams:
                    yield streams

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, Exception):
            log.debug("upstream %s: transport reported %r", self.name, message)
            return
        method = getattr(message, "method", "")
        if method.endswith("/list_changed"):
            heard = self._parent or self
            heard._heard.add(method.split("/")[1])
            heard._refresh.set()
        elif isinstance(message, types.ElicitCompleteNotification):
            await self._elicit_complete(message.params)
        elif isinstance(message, types.ResourceUpdatedNotification) and self._on_notify:
            self._on_notify(self.name, method, dump(message.params))

    async def _listen(
        self, client: Client, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """2026-07-28 upstreams deliver list changes only on a `subscriptions/listen` stream."""
        caps = client.server_capabilities
        tools = bool(caps.tools and caps.tools.list_changed)
        prompts = bool(caps.prompts and caps.prompts.list_changed)
        resources = bool(caps.resources and caps.resources.list_changed)
        if not (tools or prompts or resources):
            task_status.started()
            return
        try:
            async with client.listen(
                tools_list_changed=tools,
                prompts_list_changed=prompts,
                resources_list_changed=resources,
            ) as subscription:
                task_status.started()
                async for event in subscription:
                    log.debug("upstream %s: %s", self.name, type(event).__name__)
                    self._heard.add(_LIST_EVENTS.get(type(event).__name__, "resources"))
                    self._refresh.set()
        except Exception as exc:
            log.debug("upstream %s: listen stream ended: %s", self.name, exc)
        finally:
            with contextlib.suppress(RuntimeError):
                task_status.started()  # a server that refuses to listen still gets served

    async def _refresher(self, session: ClientSession) -> None:
        while True:
            await self._refresh.wait()
            self._refresh = anyio.Event()
            heard, self._heard = self._heard, set()
            try:
                with anyio.fail_after(self.call_timeout):
                    catalog = await self._load_catalog(session)
            except Exception as exc:
                log.warning("upstream %s: refreshing the catalog failed: %s", self.name, exc)
                continue
            self.catalog = catalog
            self.announced |= heard
            self._on_change()

    # ------------------------------------------------------------------ catalog

    async def _list_all(
        self, session: ClientSession, method: str, key: str, catalog: Catalog
    ) -> list[Any]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params = {"cursor": cursor} if cursor else {}
            page = await raw_request(session, method, params, {})
            _note_hint(catalog.hints, method, page)
            batch = page.get(key)
            if isinstance(batch, list):
                items.extend(batch)
            cursor = page.get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
        return items

    async def _load_catalog(self, session: ClientSession) -> Catalog:
        caps = session.server_capabilities or types.ServerCapabilities()
        catalog = Catalog()
        if caps.tools is not None:
            for raw in await self._list_all(session, "tools/list", "tools", catalog):
                self._admit_tool(raw, catalog)
        if caps.resources is not None:
            catalog.resources = [
                r
                for r in await self._list_all(session, "resources/list", "resources", catalog)
                if isinstance(r, dict) and isinstance(r.get("uri"), str)
            ]
            try:
                catalog.templates = [
                    t
                    for t in await self._list_all(
                        session, "resources/templates/list", "resourceTemplates", catalog
                    )
                    if isinstance(t, dict) and isinstance(t.get("uriTemplate"), str)
                ]
            except MCPError as exc:
                if exc.error.code != types.METHOD_NOT_FOUND:
                    raise
        if caps.prompts is not None:
            catalog.prompts = [
                p
                for p in await self._list_all(session, "prompts/list", "prompts", catalog)
                if isinstance(p, dict) and isinstance(p.get("name"), str)
            ]
        return catalog

    def _admit_tool(self, raw: Any, catalog: Catalog) -> None:
        """Keep a listed tool only if it is well formed, unique and not filtered out."""
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name:
            catalog.warnings.append("skipped a tool without a name")
            return
        try:
            types.Tool.model_validate(raw, by_name=False)
            schema = raw.get("inputSchema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise ValueError("inputSchema must be a JSON Schema object with type 'object'")
        except (ValidationError, ValueError) as exc:
            first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            catalog.warnings.append(f"skipped tool {name!r}: invalid definition ({first})")
            return
        if name in catalog.tools:
            catalog.warnings.append(f"tool {name!r} is listed twice; the first one is used")
            return
        if not self.spec.tools.permits(name) or self._options.globally_denied(self.name, name):
            return
        if self.modern and "x-mcp-header" in orjson.dumps(schema).decode():
            problem = find_invalid_x_mcp_header(schema)
            if problem is not None:  # 2026-07-28: a client must drop such a tool
                catalog.warnings.append(f"skipped tool {name!r}: invalid x-mcp-header ({problem})")
                return
            catalog.param_headers[name] = x_mcp_header_map(schema)
        catalog.tools[name] = raw
        for warning in catalog.warnings[-1:]:
            log.debug("upstream %s: %s", self.name, warning)

    # ------------------------------------------------------------------ calls

    async def _session_within_deadline(self) -> ClientSession:
        """The live session, waiting (and waking the supervisor) while the upstream is down."""
        while True:
            client = self._client
            if client is not None and self.state == UpstreamState.READY:
                return client.session
            if self._closing:
                raise GatewayError(
                    types.INTERNAL_ERROR, f"MCP server {self.name!r} is closed", server=self.name
                )
            changed = self._changed
            self._wake.set()
            await changed.wait()

    @tracing.traced(  # a client span per call a caller asked for (no-op with tracing off)
        lambda self, method, params, **_: mcp_request_name(method, params),
        "client",
        lambda self, method, params, **_: mcp_request_attributes(self.name, method, params),
        mcp_request_result,
    )
    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        *,
        timeout: float | None = None,
        on_progress: ProgressFnT | None = None,
        idempotent: bool = True,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        """Send one request within `timeout` seconds (reconnecting on use if needed).

        Raises GatewayError naming this server for every failure: the caller never hangs.
        A traced caller's context (`router_core.tracing`) goes along in `params._meta`, and
        `tools/call` is counted per tool for `/metrics`. What the server asks or logs while
        it serves this request goes to `relay` (none: its requests are refused).
        """
        refused = person_login_problem(self.spec)  # a `per_user` login the caller has not made
        if refused is not None:
            raise GatewayError(types.INVALID_REQUEST, refused, server=self.name)
        trace = tracing.current()
        if trace is not None:
            params = dict(params or {})
            params["_meta"] = {**(params.get("_meta") or {}), **trace.headers()}
        target = self._twin_for(relay)
        with target._calls.serving(relay):
            return await target._counted(method, params, timeout, on_progress, idempotent)

    async def _counted(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timeout: float | None,
        on_progress: ProgressFnT | None,
        idempotent: bool,
    ) -> dict[str, Any]:
        if method != "tools/call":
            return await self._request(method, params, timeout, on_progress, idempotent)
        tool = str((params or {}).get("name"))
        stats = self.tool_calls.get(tool)
        if stats is None:
            stats = self.tool_calls[tool] = ToolCallStats()
        outcome = "error"
        start = time.perf_counter()
        try:
            result = await self._request(method, params, timeout, on_progress, idempotent)
            outcome = "tool_error" if result.get("isError") is True else "ok"
            return result
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                outcome = "cancelled"
            raise
        finally:
            stats.outcomes[outcome] += 1
            stats.seconds += time.perf_counter() - start

    async def _request(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        timeout: float | None,
        on_progress: ProgressFnT | None,
        idempotent: bool,
    ) -> dict[str, Any]:
        limit = min(timeout or math.inf, self.call_timeout)
        self._sequence += 1
        request_id = f"gw-{self._sequence}"  # ours, so a failed write can be recognised
        opts: CallOptions = {"request_id": request_id}
        if method == "tools/call" and self.catalog.param_headers:
            header_map = self.catalog.param_headers.get(str((params or {}).get("name")))
            if header_map:  # what the SDK's typed call_tool would send from its own listing
                opts["headers"] = mcp_param_headers(
                    header_map, (params or {}).get("arguments") or {}
                )
        if on_progress is not None:
            opts["on_progress"] = on_progress
        try:
            # asyncio's own deadline, not anyio's cancel scope: the same TimeoutError for a
            # fraction of the cost on the per-call path (~6% of a relayed call's CPU)
            async with asyncio.timeout(None if math.isinf(limit) else limit):
                client = self._client
                if client is not None and self.state == UpstreamState.READY:
                    session = client.session  # up: no coroutine to wait on
                else:
                    session = await self._session_within_deadline()
                try:
                    return await raw_request(session, method, params, opts)
                except MCPError as exc:
                    if not self._connection_error(exc):
                        raise
                    self._mark_lost(f"connection lost during {method}")
                    child = self._child
                    undelivered = child is not None and request_id in child.undelivered
                    if not idempotent and not undelivered and not _never_delivered(exc):
                        raise GatewayError(
                            types.INTERNAL_ERROR,
                            f"MCP server {self.name!r}: connection lost during {method}"
                            f" ({self._with_child(exc.error.message)})",
                            server=self.name,
                        ) from None
                    session = await self._session_within_deadline()
                    self._sequence += 1
                    retry: CallOptions = {**opts, "request_id": f"gw-{self._sequence}"}
                    return await raw_request(session, method, params, retry)
        except TimeoutError:
            state = (
                ""
                if self.state == UpstreamState.READY
                else f"; server is {self.state}{f': {self.reason}' if self.reason else ''}"
            )
            raise GatewayError(
                types.REQUEST_TIMEOUT,
                f"MCP server {self.name!r}: {method} timed out after {limit:g}s{state}",
                server=self.name,
            ) from None
        except MCPError as exc:
            # The server's own error goes on as it gave it (code, message, data); one the
            # connection made up says which server it was.
            message = exc.error.message
            if self._connection_error(exc):
                message = f"MCP server {self.name!r}: {message}"
            raise GatewayError(
                exc.error.code, message, data=exc.error.data, server=self.name
            ) from None

    @staticmethod
    def _connection_error(exc: MCPError) -> bool:
        return exc.error.code in _RECONNECTABLE or _never_delivered(exc)


_REJECTED_BY_HTTP = {
    (types.INVALID_REQUEST, "Session terminated"),
    (types.INTERNAL_ERROR, "Server returned an error response"),
}


def _note_hint(hints: dict[str, tuple[int, str]], method: str, page: dict[str, Any]) -> None:
    ttl, scope = page.get("ttlMs"), page.get("cacheScope")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or scope not in ("public", "private"):
        return
    known = hints.get(method)
    if known is not None:
        ttl = min(ttl, known[0])
        scope = "private" if "private" in (scope, known[1]) else "public"
    hints[method] = (max(ttl, 0), str(scope))


def _never_delivered(exc: MCPError) -> bool:
    """An HTTP-level rejection (404 unknown session, 4xx/5xx without a JSON-RPC body): the
    server restarted or refused the POST, and never ran the request, so a retry is safe."""
    return (exc.error.code, exc.error.message) in _REJECTED_BY_HTTP


class _Streams:
    """A ready-made (read, write) pair presented as the SDK's `Transport`."""

    def __init__(self, read: Any, write: Any) -> None:
        self._streams: TransportStreams = (read, write)

    async def __aenter__(self) -> TransportStreams:
        return self._streams

    async def __aexit__(self, *exc: object) -> None:
        return None


_: type[Transport] | None = None  # `_Streams` satisfies Transport structurally
