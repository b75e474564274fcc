"""The aggregate: many upstreams seen as one catalog, with names and URIs routed back.

A `Gateway` owns the global upstreams; a `GatewaySession` layers session-scoped upstreams (an
ACP client's `mcpServers`) over them and closes them with the session. Both are `Catalog`
views: the exposed names are recomputed whenever an upstream's catalog or state changes, and
listeners hear which lists changed (so `list_changed` reaches MCP clients).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import (
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
import orjson
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.uri_template import UriTemplate
from mcp_types import SERVER_INFO_META_KEY

from mcp_gateway._arguments import ArgumentCheck
from mcp_gateway.errors import RESOURCE_NOT_FOUND, ClientRequestFn, GatewayError
from mcp_gateway.naming import assign_names, safe_name, stable_hash
from mcp_gateway.relay import Relay, input_required, resolved, roots_relay
from mcp_gateway.routes import LocalTool, ToolSchema, _InFlight, _input_schema, _Route
from mcp_gateway.specs import GatewayOptions, UpstreamSpec
from mcp_gateway.upstream import Upstream, UpstreamState, UpstreamStatus

log = logging.getLogger("mcp_gateway")

Listener = Callable[[frozenset[str]], None]
"""Told which lists changed: a subset of {"tools", "resources", "prompts"}."""

NoticeListener = Callable[[str, dict[str, Any]], None]
"""Told of an upstream notification no call claims: (method, params)."""

URI_PREFIX = "junction+"


TAKE_OVER_POLL_SECONDS = 0.5
"""How often a changed server's replacement is checked while the old one still serves."""


class Catalog:
    """A routed view over a list of upstreams; the shared core of gateway and session."""

    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self._listeners: list[Listener] = []
        self._notice_listeners: list[NoticeListener] = []
        self._tools: dict[str, _Route | LocalTool] = {}
        self._tool_list: list[dict[str, Any]] = []
        self._prompts: dict[str, _Route] = {}
        self._prompt_list: list[dict[str, Any]] = []
        self._resources: dict[str, _Route] = {}
        self._resource_list: list[dict[str, Any]] = []
        self._template_list: list[dict[str, Any]] = []
        self._templates: list[tuple[UriTemplate, _Route]] = []
        self._validators: dict[str, ArgumentCheck] = {}
        self._grace_deadline = math.inf
        self._in_flight = _InFlight()
        self.home: Relay | None = None
        """The one client of this catalog's own upstreams, for what they ask outside a call."""

    def _home(self) -> Relay | None:
        return self.home

    # ------------------------------------------------------------------ composition

    def upstreams(self) -> list[Upstream]:
        raise NotImplementedError

    def local_tools(self) -> Sequence[LocalTool]:
        """Tools served by this process (see `Gateway.set_local_tools`)."""
        return ()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Hear about list changes; returns an unsubscribe callable."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def subscribe_notices(self, listener: NoticeListener) -> Callable[[], None]:
        """Hear upstream notifications that no call claims (`notifications/message` logged
        outside a call, `notifications/resources/updated` with the URI as exposed here)."""
        self._notice_listeners.append(listener)
        return lambda: (
            self._notice_listeners.remove(listener) if listener in self._notice_listeners else None
        )

    def _notice(self, server: str, method: str, params: dict[str, Any]) -> None:
        if method == "notifications/resources/updated":
            uri = params.get("uri")
            exposed = next(
                (
                    e
                    for e, r in self._resources.items()
                    if r.upstream.name == server and r.name == uri
                ),
                uri,
            )
            params = {**params, "uri": exposed}
        for listener in list(self._notice_listeners):
            try:
                listener(method, params)
            except Exception:
                log.exception("gateway notice listener failed")

    def rebuild(self) -> None:
        """Recompute exposed names and routes; tell listeners what changed."""
        ups = self.upstreams()
        sep, prefix = self.options.separator, self.options.prefix
        tool_entries = [(u, n) for u in ups for n in u.catalog.tools]
        names = assign_names(((u.name, n) for u, n in tool_entries), prefix=prefix, separator=sep)
        tools: dict[str, _Route | LocalTool] = {local.name: local for local in self.local_tools()}
        tool_list = [local.as_mcp() for local in self.local_tools()]
        for upstream, name in tool_entries:
            exposed = names[(upstream.name, name)]
            attempt = 0
            while exposed in tools:  # a local tool holds the name: the upstream's is hashed
                attempt += 1
                suffix = stable_hash(upstream.name, name, str(attempt))
                exposed = safe_name(f"{exposed}_{suffix}", (upstream.name, name))
            tools[exposed] = _Route(upstream, name)
            tool_list.append({**upstream.catalog.tools[name], "name": exposed})

        prompt_entries = [(u, p) for u in ups for p in u.catalog.prompts]
        pnames = assign_names(
            ((u.name, p["name"]) for u, p in prompt_entries), prefix=prefix, separator=sep
        )
        prompts: dict[str, _Route] = {}
        prompt_list: list[dict[str, Any]] = []
        for upstream, prompt in prompt_entries:
            exposed = pnames[(upstream.name, prompt["name"])]
            if exposed not in prompts:
                prompts[exposed] = _Route(upstream, prompt["name"])
                prompt_list.append({**prompt, "name": exposed})

        owners: dict[str, set[str]] = {}
        for u in ups:
            for r in u.catalog.resources:
                owners.setdefault(r["uri"], set()).add(u.name)
        resources: dict[str, _Route] = {}
        resource_list: list[dict[str, Any]] = []
        for u in ups:
            for r in u.catalog.resources:
                uri = r["uri"]
                exposed_uri = uri if len(owners[uri]) == 1 else f"{URI_PREFIX}{u.name}:{uri}"
                if exposed_uri not in resources:
                    resources[exposed_uri] = _Route(u, uri)
                    resource_list.append({**r, "uri": exposed_uri})
        templates: list[tuple[UriTemplate, _Route]] = []
        template_list: list[dict[str, Any]] = []
        for u in ups:
            for t in u.catalog.templates:
                template_list.append(t)
                try:
                    templates.append((UriTemplate.parse(t["uriTemplate"]), _Route(u, "")))
                except Exception:
                    log.debug("upstream %s: unparseable uriTemplate %r", u.name, t["uriTemplate"])

        changed: set[str] = set()
        for u in ups:
            changed |= u.announced
            u.announced.clear()
        if tool_list != self._tool_list:
            changed.add("tools")
            self._validators = {}
        if resource_list != self._resource_list or template_list != self._template_list:
            changed.add("resources")
        if prompt_list != self._prompt_list:
            changed.add("prompts")
        self._tools, self._tool_list = tools, tool_list
        self._prompts, self._prompt_list = prompts, prompt_list
        self._resources, self._resource_list = resources, resource_list
        self._templates, self._template_list = templates, template_list
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(frozenset(changed))
                except Exception:
                    log.exception("gateway listener failed")

    # ------------------------------------------------------------------ status

    def statuses(self) -> list[UpstreamStatus]:
        return [u.status() for u in self.upstreams()]

    @property
    def healthy(self) -> bool:
        """True only when every configured upstream is ready (a partial list is not healthy)."""
        return all(u.state == UpstreamState.READY for u in self.upstreams())

    async def wait_settled(self, timeout: float | None = None) -> None:
        """Wait until every upstream has finished its first connection attempt."""
        with anyio.move_on_after(math.inf if timeout is None else timeout):
            for upstream in self.upstreams():
                await upstream.first_attempt_done.wait()

    async def _settled(self) -> None:
        remaining = self._grace_deadline - anyio.current_time()
        if remaining > 0 and not all(u.first_attempt_done.is_set() for u in self.upstreams()):
            await self.wait_settled(remaining)

    # ------------------------------------------------------------------ listings

    async def list_tools(self) -> list[dict[str, Any]]:
        """Every exposed tool as an MCP tool dict (waits out the start-up grace once)."""
        await self._settled()
        return self._tool_list

    async def list_resources(self) -> list[dict[str, Any]]:
        await self._settled()
        return self._resource_list

    async def list_resource_templates(self) -> list[dict[str, Any]]:
        await self._settled()
        return self._template_list

    async def list_prompts(self) -> list[dict[str, Any]]:
        await self._settled()
        return self._prompt_list

    async def llm_tools(self) -> list[ToolSchema]:
        """The tool list in the shape LLM tool-calling APIs take (after the start-up grace)."""
        await self._settled()
        return self.exposed_tools()

    def list_hint(self, method: str) -> tuple[int, str]:
        """`ttlMs` and `cacheScope` for a merged list: the shortest and narrowest any upstream
        gave (one that gave none, a 2025-11-25 server, counts as 0: its list may change at
        any time, and a `list_changed` says so)."""
        ttl, scope = None, "public"
        for upstream in self.upstreams():
            given = upstream.catalog.hints.get(method)
            ttl = min(ttl if ttl is not None else math.inf, given[0] if given else 0)
            if given and given[1] == "private":
                scope = "private"
        return (0 if ttl is None else int(ttl)), scope

    def exposed_tools(self) -> list[ToolSchema]:
        """The current tool list, now, without waiting for upstreams still connecting."""
        result = []
        for tool in self._tool_list:
            route = self._tools[tool["name"]]
            result.append(
                ToolSchema(
                    name=tool["name"],
                    description=tool.get("description") or tool.get("title") or "",
                    parameters=tool.get("inputSchema") or {"type": "object"},
                    server=route.server if isinstance(route, LocalTool) else route.upstream.name,
                    upstream_name=route.origin if isinstance(route, LocalTool) else route.name,
                )
            )
        return result

    def tool_input_schema(self, name: str) -> Mapping[str, Any] | None:
        route = self._tools.get(name)
        if route is None:
            return None
        schema = _input_schema(route)
        return schema if isinstance(schema, dict) else None

    # ------------------------------------------------------------------ calls

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        on_progress: ProgressFnT | None = None,
        meta: Mapping[str, Any] | None = None,
        resume: Mapping[str, Any] | None = None,
        on_request: ClientRequestFn | None = None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        """Call an exposed tool on its upstream; returns the upstream's result dict as is.

        `on_request` answers what the upstream asks its client while it serves this call:
        `elicitation/create` (form and URL modes), `sampling/createMessage` and `roots/list`,
        as (method, params) -> result dict; raising `GatewayError(code, message)` sends that
        error back to the upstream. It hears both generations: a 2025-11-25 upstream's
        server-to-client requests, and each input request of a 2026-07-28 upstream's
        input-required result (answered, then retried with the upstream's `requestState`
        until a final result comes back). Without it, the upstream's requests are refused
        with -32601 (Method not found: nobody here can answer them) and an input-required
        result comes back as it is; `resume` then holds the client's retry of it
        (`inputResponses`, `requestState`), sent on unchanged. `relay` is the server's form
        of the same (see `relay.Relay`).
        Cancel the calling task to cancel the call (the upstream gets `notifications/cancelled`).
        Raises GatewayError: unknown tool, oversized arguments, upstream down, timeout.
        """
        route = self._tools.get(name)
        if route is None:
            await self._settled()
            route = self._tools.get(name)
        if route is None:
            raise GatewayError(types.INVALID_PARAMS, f"Unknown tool: {name!r}")
        args = dict(arguments or {})
        size = len(orjson.dumps(args))
        if size > self.options.max_argument_bytes:
            raise GatewayError(
                types.INVALID_PARAMS,
                f"arguments for tool {name!r} are {size} bytes; the limit is "
                f"{self.options.max_argument_bytes} bytes",
            )
        problem = self._argument_problem(name, route, args)
        if problem is not None:
            return {
                "content": [{"type": "text", "text": f"Invalid arguments for {name}: {problem}"}],
                "isError": True,
            }
        if isinstance(route, LocalTool):
            limit = self.options.call_timeout if timeout is None else timeout
            try:
                with anyio.fail_after(limit):
                    return await route.handler(args, on_progress)
            except TimeoutError:
                raise GatewayError(
                    types.REQUEST_TIMEOUT, f"tool {name!r} timed out after {limit:g}s"
                ) from None
        params: dict[str, Any] = {"name": route.name, "arguments": args, **(resume or {})}
        if meta:
            params["_meta"] = {k: v for k, v in meta.items() if k != "progressToken"}
        result = await self._relayed(
            route.upstream,
            "tools/call",
            params,
            _relay_of(on_request, relay),
            timeout=timeout,
            on_progress=on_progress,
            idempotent=False,
        )
        if not isinstance(result.get("content"), list) and not input_required(result):
            raise GatewayError(
                types.INTERNAL_ERROR,
                f"MCP server {route.upstream.name!r} returned an invalid tools/call result",
                server=route.upstream.name,
            )
        return _unstamped(result)

    def _argument_problem(
        self, name: str, route: _Route | LocalTool, args: dict[str, Any]
    ) -> str | None:
        """Check arguments against the tool's input schema, so a wrong type is a clear error."""
        check = self._validators.get(name)
        if check is None:
            check = self._validators[name] = ArgumentCheck(_input_schema(route))
        return check.problem(args)

    async def _relayed(
        self,
        upstream: Upstream,
        method: str,
        params: dict[str, Any],
        relay: Relay | None,
        *,
        timeout: float | None = None,
        on_progress: ProgressFnT | None = None,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """One request whose server-to-client traffic goes to `relay`; an input-required
        result is resolved through it when it answers input itself."""

        async def send(resume: dict[str, Any]) -> dict[str, Any]:
            return await upstream.request(
                method,
                {**params, **resume},
                timeout=timeout,
                on_progress=on_progress,
                idempotent=idempotent,
                relay=relay,
            )

        with self._in_flight.using(upstream):
            result = await send({})
            if relay is not None and relay.resolves_input and input_required(result):
                for key in _RESUME_KEYS:
                    params.pop(key, None)
                result = await resolved(result, relay, upstream.name, send)
        return result

    async def read_resource(
        self,
        uri: str,
        *,
        timeout: float | None = None,
        meta: Mapping[str, Any] | None = None,
        resume: Mapping[str, Any] | None = None,
        on_request: ClientRequestFn | None = None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        """`resources/read` on the resource's owner (`on_request`, `relay`: as `call_tool`)."""
        route = self._resource_route(uri)
        if route is None:
            await self._settled()
            route = self._resource_route(uri)
        if route is None:
            # A URI nobody lists may still be served (or refused in its own words) by the one
            # server that has resources; with several, whose it is cannot be told.
            owners = [u for u in self.upstreams() if u.offers("resources")]
            if len(owners) != 1:
                raise GatewayError(
                    RESOURCE_NOT_FOUND,
                    f"Unknown resource: {uri!r} (a URI several servers share is listed as "
                    f"'{URI_PREFIX}<server>:<uri>')",
                    data={"uri": uri},
                )
            route = _Route(owners[0], uri)
        params = _with_meta({"uri": route.name, **(resume or {})}, meta)
        relay = _relay_of(on_request, relay)
        return _unstamped(
            await self._relayed(route.upstream, "resources/read", params, relay, timeout=timeout)
        )

    def _resource_route(self, uri: str) -> _Route | None:
        route = self._resources.get(uri)
        if route is not None:
            return route
        if uri.startswith(URI_PREFIX):
            server, _, original = uri[len(URI_PREFIX) :].partition(":")
            for u in self.upstreams():
                if u.name == server:
                    return _Route(u, original)
        for template, troute in self._templates:
            if template.match(uri) is not None:
                return _Route(troute.upstream, uri)
        return None

    async def get_prompt(
        self,
        name: str,
        arguments: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
        meta: Mapping[str, Any] | None = None,
        resume: Mapping[str, Any] | None = None,
        on_request: ClientRequestFn | None = None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        """`prompts/get` on the prompt's owner (`on_request`, `relay`: as `call_tool`)."""
        route = self._prompts.get(name)
        if route is None:
            await self._settled()
            route = self._prompts.get(name)
        if route is None:
            raise GatewayError(types.INVALID_PARAMS, f"Unknown prompt: {name!r}")
        params: dict[str, Any] = {"name": route.name, **(resume or {})}
        if arguments:
            params["arguments"] = dict(arguments)
        relay = _relay_of(on_request, relay)
        return _unstamped(
            await self._relayed(
                route.upstream, "prompts/get", _with_meta(params, meta), relay, timeout=timeout
            )
        )

    async def complete(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`completion/complete`, routed to the upstream owning the prompt or resource template
        the reference names (under that upstream's own name); nothing to offer otherwise."""
        await self._settled()
        ref = dict(params.get("ref") or {})
        upstream: Upstream | None = None
        if ref.get("type") == "ref/prompt":
            route = self._prompts.get(str(ref.get("name")))
            if route is not None:
                upstream, ref["name"] = route.upstream, route.name
        else:
            uri = ref.get("uri")
            upstream = next(
                (
                    u
                    for u in self.upstreams()
                    for t in u.catalog.templates
                    if t["uriTemplate"] == uri
                ),
                None,
            )
        if upstream is None or not upstream.offers("completions"):
            return {"completion": {"values": [], "total": 0, "hasMore": False}}
        with self._in_flight.using(upstream):
            return _unstamped(await upstream.request("completion/complete", {**params, "ref": ref}))

    async def set_logging_level(self, level: str) -> None:
        """`logging/setLevel`, fanned out to every handshake-era upstream that logs (2026-07-28
        upstreams take the level per request instead); an upstream that fails it is skipped."""

        async def one(upstream: Upstream) -> None:
            with contextlib.suppress(GatewayError):
                await upstream.request("logging/setLevel", {"level": level})

        async with anyio.create_task_group() as tg:
            for upstream in self.upstreams():
                if upstream.offers("logging") and not upstream.modern:
                    tg.start_soon(one, upstream)

    def may_ask(self, kind: str, name: str) -> bool:
        """Whether the upstream serving tool, prompt or resource `name` may send the caller
        server-to-client requests (a 2025-11-25 one; a 2026-07-28 one answers input-required)."""
        route: _Route | LocalTool | None
        if kind == "tools":
            route = self._tools.get(name)
        elif kind == "prompts":
            route = self._prompts.get(name)
        else:
            route = self._resource_route(name)
        return isinstance(route, _Route) and not route.upstream.modern

    async def subscribe_resource(self, method: str, uri: str) -> dict[str, Any]:
        """`resources/subscribe` or `resources/unsubscribe`, sent to the resource's owner when
        it is a handshake-era server offering subscriptions; a 2026-07-28 server has no such
        method: the URI joins (or leaves) the listen stream Junction keeps open to it."""
        route = self._resource_route(uri)
        if route is None:
            await self._settled()
            route = self._resource_route(uri)
        if route is None:
            raise GatewayError(RESOURCE_NOT_FOUND, f"Unknown resource: {uri!r}", data={"uri": uri})
        if route.upstream.modern:  # 2026-07-28: updates ride a listen stream naming the URI
            route.upstream.watch(route.name, method == "resources/subscribe")
            return {}
        if not route.upstream.offers("subscribe"):
            return {}
        with self._in_flight.using(route.upstream):
            return _unstamped(await route.upstream.request(method, {"uri": route.name}))


_RESUME_KEYS = ("inputResponses", "requestState")


def _relay_of(on_request: ClientRequestFn | None, relay: Relay | None) -> Relay | None:
    return relay if relay is not None else Relay(on_request) if on_request else None


def _with_meta(params: dict[str, Any], meta: Mapping[str, Any] | None) -> dict[str, Any]:
    if meta:
        params["_meta"] = dict(meta)
    return params


def _unstamped(result: dict[str, Any]) -> dict[str, Any]:
    """The upstream's identity stamp must not pass for ours on 2026-era clients."""
    meta = result.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        result["_meta"] = {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}
    return result


class Gateway(Catalog):
    """The global aggregate. Use as `async with Gateway(specs, options) as gateway:`.

    Entering starts every upstream concurrently and returns at once: a slow or broken upstream
    never blocks the others. Listings wait (once, up to `options.startup_grace`) for upstreams
    still on their first attempt, so the first `tools/list` is complete when it can be.
    `reconfigure` changes the set of upstreams while it serves.
    """

    def __init__(
        self, specs: Iterable[UpstreamSpec] = (), options: GatewayOptions | None = None
    ) -> None:
        super().__init__(options or GatewayOptions())
        self._specs = _unique(specs)
        self._upstreams: list[Upstream] = []
        self._starting: dict[str, Upstream] = {}
        """Replacements of changed upstreams, connecting beside the ones still serving."""
        self._retiring: set[Upstream] = set()
        self._local: tuple[LocalTool, ...] = ()
        self._stack: contextlib.AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None

    def upstreams(self) -> list[Upstream]:
        return self._upstreams

    def local_tools(self) -> Sequence[LocalTool]:
        return self._local

    def set_local_tools(self, tools: Iterable[LocalTool]) -> None:
        """Replace the local tools; listeners (so MCP clients) hear of it if the list changed."""
        local = tuple(tools)
        names = [t.name for t in local]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate local tool names: {names}")
        self._local = local
        self.rebuild()

    async def __aenter__(self) -> Gateway:
        async with contextlib.AsyncExitStack() as stack:
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._close_upstreams)
            self._grace_deadline = anyio.current_time() + self.options.startup_grace
            self._upstreams = [
                Upstream(s, self.options, self.rebuild, self._notice, self._home)
                for s in self._specs
            ]
            for upstream in self._upstreams:
                self._tg.start_soon(upstream.run, name=f"mcp upstream {upstream.name}")
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            try:
                await stack.aclose()
            finally:
                self._tg = None

    def _every_upstream(self) -> list[Upstream]:
        return [*self._upstreams, *self._starting.values(), *self._retiring]

    def _close_upstreams(self) -> None:
        for upstream in self._every_upstream():
            upstream.close()

    async def stop_upstreams(self, timeout: float = 10.0) -> None:
        """Close every upstream (children get stdin EOF, then TERM, then KILL) and wait for it.

        For a process about to exit from a task that cannot unwind the gateway's own scope
        (a signal handler while the stdio server is blocked reading stdin).
        """
        upstreams = self._every_upstream()
        self._close_upstreams()
        with anyio.move_on_after(timeout):
            for upstream in upstreams:
                await upstream.stopped.wait()

    def reconfigure(
        self, specs: Iterable[UpstreamSpec], options: GatewayOptions | None = None
    ) -> None:
        """Make the upstreams exactly `specs` (a hot reload); returns at once.

        An added server starts connecting; a removed one leaves the catalog now and is closed
        once the calls it is answering are done (at most its call timeout). A changed one (or
        every one, when `options` changed) starts anew beside the old one, which keeps serving
        until the new one's first connection attempt is over. Listeners hear each change of
        the lists, so MCP clients get `list_changed`. Before the gateway is entered, this only
        replaces what entering will start.
        """
        wanted = _unique(specs)
        options = options or self.options
        restart_all = options != self.options
        self._specs, self.options = wanted, options
        tg = self._tg
        if tg is None:
            return
        serving = {upstream.name: upstream for upstream in self._upstreams}
        upstreams: list[Upstream] = []
        for spec in wanted:
            current, pending = serving.get(spec.name), self._starting.get(spec.name)
            intended = pending or current
            if intended is not None and intended.spec == spec and not restart_all:
                if current is not None:
                    upstreams.append(current)
                continue
            if pending is not None:  # superseded before it took over
                del self._starting[spec.name]
                tg.start_soon(self._retire, pending)
            fresh = Upstream(spec, options, self.rebuild, self._notice, self._home)
            tg.start_soon(fresh.run, name=f"mcp upstream {fresh.name}")
            if current is None:
                upstreams.append(fresh)
                log.info("MCP server %s added", spec.name)
            else:
                upstreams.append(current)
                self._starting[spec.name] = fresh
                tg.start_soon(self._take_over, current, fresh)
                log.info("MCP server %s changed: restarting it", spec.name)
        names = {spec.name for spec in wanted}
        for name in [name for name in self._starting if name not in names]:
            tg.start_soon(self._retire, self._starting.pop(name))
        for name, current in serving.items():
            if name not in names:
                log.info("MCP server %s removed", name)
                tg.start_soon(self._retire, current)
        self._upstreams = upstreams
        self.rebuild()

    async def _take_over(self, old: Upstream, fresh: Upstream) -> None:
        """Serve with `fresh` instead of `old` once its first connection attempt is over; while
        `fresh` cannot connect and `old` still serves, `old` keeps serving (a typo in a reload
        does not take a working server away)."""
        await fresh.first_attempt_done.wait()
        warned = False
        while fresh.state != UpstreamState.READY and old.state == UpstreamState.READY:
            if self._starting.get(fresh.name) is not fresh:
                return  # superseded (and retired) meanwhile
            if not warned:
                log.warning(
                    "MCP server %s: the changed configuration does not connect; the running one "
                    "keeps serving until it does",
                    fresh.name,
                )
                warned = True
            await anyio.sleep(TAKE_OVER_POLL_SECONDS)
        if self._starting.get(fresh.name) is not fresh:
            return  # superseded (and retired) meanwhile
        del self._starting[fresh.name]
        self._upstreams = [fresh if upstream is old else upstream for upstream in self._upstreams]
        self.rebuild()
        await self._retire(old)

    async def _retire(self, upstream: Upstream) -> None:
        """Close an upstream that left the configuration once its calls in flight are done."""
        self._retiring.add(upstream)
        try:
            with anyio.move_on_after(upstream.call_timeout):
                await self._in_flight.wait_idle(upstream)
        finally:
            upstream.close()
            self._retiring.discard(upstream)

    @contextlib.asynccontextmanager
    async def session(
        self, specs: Sequence[UpstreamSpec], roots: Sequence[str] = ()
    ) -> AsyncIterator[GatewaySession]:
        """A view with session-scoped upstreams layered over the global ones.

        A session upstream with the same name as a global one shadows it for this session.
        The session's upstreams are closed (children killed) when the block exits. `roots`
        (absolute directories) answer their `roots/list` outside a call.
        """
        view = GatewaySession(self, specs)
        view.home = roots_relay(roots) if roots else None
        async with view._running():
            yield view


def _unique(specs: Iterable[UpstreamSpec]) -> list[UpstreamSpec]:
    listed = list(specs)
    names = [spec.name for spec in listed]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate upstream names: {names}")
    return listed


class GatewaySession(Catalog):
    """Session-scoped upstreams over a `Gateway`; made by `Gateway.session()`."""

    def __init__(self, gateway: Gateway, specs: Sequence[UpstreamSpec]) -> None:
        super().__init__(gateway.options)
        self._gateway = gateway
        self._in_flight = gateway._in_flight  # so a reload waits for this session's calls too
        self._specs = list(specs)
        self._own: list[Upstream] = []

    def upstreams(self) -> list[Upstream]:
        mine = {u.name for u in self._own}
        return [u for u in self._gateway.upstreams() if u.name not in mine] + self._own

    def local_tools(self) -> Sequence[LocalTool]:
        return self._gateway.local_tools()

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        unsubscribe = self._gateway.subscribe(lambda _kinds: self.rebuild())
        try:
            async with anyio.create_task_group() as tg:
                self._grace_deadline = anyio.current_time() + self.options.startup_grace
                self._own = [
                    Upstream(s, self.options, self.rebuild, self._notice, self._home)
                    for s in self._specs
                ]
                for upstream in self._own:
                    tg.start_soon(upstream.run, name=f"mcp session upstream {upstream.name}")
                self.rebuild()
                try:
                    yield
                finally:
                    for upstream in self._own:
                        upstream.close()
        finally:
            unsubscribe()
