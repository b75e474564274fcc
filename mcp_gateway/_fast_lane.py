"""`tools/call` of `junction --mode mcp`'s client, answered without the SDK's server machinery.

Through the SDK, one `tools/call` on stdin passes a pydantic parse of the JSON-RPC union, two
memory streams, the dispatcher's task and context objects, the server runner, its
OpenTelemetry middleware (spans even with nothing exporting them), our middleware and the
relay plumbing, and a pydantic dump on the way out: about two thirds of the CPU Junction spent
per call, most of what it added to a call's latency. The gateway's own work (routing, limits,
argument checks, the upstream request, relays, error mapping) is `Catalog.call_tool`'s and
stays there; this lane only replaces the envelope around it, for the case it can answer
exactly as the SDK path would:

- a 2025-11-25 session whose client has sent `notifications/initialized`, or a connection the
  SDK's dual-era loop made a 2026-07-28 one (its first request enveloped); nothing before
  the era is known;
- a well-formed request (`jsonrpc`, an integer or string `id`, `params` holding only a string
  `name`, an object `arguments` and a `_meta` with at most a `progressToken`; at 2026-07-28
  also the envelope's keys, which the SDK's own inbound ladder and surface validation must
  accept, and an upstream's own `requestState`/`inputResponses`). Anything else goes to the
  SDK, which validates and answers it;
- at 2026-07-28, a tool whose upstream cannot ask the client anything (a 2025-11-25
  upstream's questions park the call between rounds: the SDK path's `Rounds`);
- tracing off (with a tracer the SDK's spans are part of the trace) and catalog mode off.

Its answer is the SDK path's: the result through the same per-version serialiser (and, at
2026-07-28, our `serverInfo` stamp), the same error codes, messages and data; progress under
the client's token and log messages at the level the client set (or, at 2026-07-28, the
request opted in to), written as lines while the call runs; what an upstream asks a
2025-11-25 client (sampling, elicitation, roots) is sent through the SDK's connection, whose
dispatcher routes the client's answer back. `notifications/cancelled` for a lane call
cancels it (no answer, as the SDK does); end of input cancels the rest with "Connection
closed", as the SDK does. `JUNCTION_MCP_FAST_LANE=0` turns the lane off (tests compare both
paths).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.connection import allowed_log_levels
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    CORE_RESULT_TYPES,
    LOG_LEVEL_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
)
from mcp_types import methods as _methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from pydantic_core import from_json, to_json

from mcp_gateway._client_relay import ROUND_STATE_PREFIX, levels_from, missing_capability
from mcp_gateway._plain_results import plain_call_result
from mcp_gateway._sdk import connection_of
from mcp_gateway.errors import GatewayError
from mcp_gateway.gateway import Catalog
from mcp_gateway.relay import Relay, relayed_options
from router_core import tracing

log = logging.getLogger("mcp_gateway.fast_lane")

SWITCH = "JUNCTION_MCP_FAST_LANE"
"""Set to 0 to serve every message through the SDK."""

_REQUEST_KEYS = frozenset({"jsonrpc", "id", "method", "params"})
_PARAM_KEYS = frozenset({"name", "arguments", "_meta"})
_MODERN_PARAM_KEYS = _PARAM_KEYS | {"inputResponses", "requestState"}
_CLOSE_WRITE_SECONDS = 1.0
"""Bound on the "Connection closed" answer written at end of input (the SDK's too)."""

Write = Callable[[bytes], Awaitable[None]]
"""Writes one JSON-RPC message (a line without its newline) to the client."""

WriteAfter = Callable[[dict[str, Any]], Awaitable[None]]
"""Writes one JSON-RPC message behind what the SDK session has queued for the client."""


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


class FastLane:
    """Takes the `tools/call` lines it can answer exactly; see the module's doc."""

    def __init__(
        self,
        catalog: Catalog,
        session: Callable[[], ServerSession | None],
        level: Callable[[object], str],
        stamp: Callable[[], dict[str, Any]],
    ) -> None:
        """`session`: the client's session once it has initialized (else None); `level`: the
        log level the client set on a connection (`logging/setLevel`); `stamp`: the server's
        identity, as a 2026-07-28 result's `_meta` carries it."""
        self._catalog = catalog
        self._session = session
        self._level = level
        self._stamp = stamp
        self._identity: dict[str, Any] | None = None
        """The stamp, taken once: the server's identity is fixed when it is built, and the
        SDK's stamp deep-copies it on every access (for callers that mutate it; we never do)."""
        self._era: str | None = None
        """"legacy" or "modern", as the SDK decided from the client's first request."""
        self._calls: dict[int | str, asyncio.Task[None]] = {}
        self._cancelled: set[int | str] = set()
        self._open = False
        self._write: Write | None = None
        self._write_after: WriteAfter | None = None
        self._caps: tuple[object, dict[str, Any]] | None = None
        self._announced = False

    @contextlib.asynccontextmanager
    async def running(self, write: Write, write_after: WriteAfter) -> AsyncIterator[None]:
        """Serve lane calls while the block runs; on leaving (end of input), cancel those
        still running, each answered "Connection closed". `write_after` writes behind what the
        SDK session queued: the answer of a call that asked the client something goes that
        way, after the question and its withdrawal, as it would through the SDK."""
        self._write, self._write_after = write, write_after
        self._open = True
        try:
            yield
        finally:
            self._open = False
            if self._calls:  # a call taken just now must start, to answer once cancelled
                with anyio.CancelScope(shield=True):
                    await asyncio.sleep(0)
            calls = list(self._calls.values())
            for task in calls:
                task.cancel()
            if calls:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2 * _CLOSE_WRITE_SECONDS):
                    await asyncio.gather(*calls, return_exceptions=True)

    def opened(self, method: str, params: Any) -> None:
        """A request the SDK is handed: the first decides the connection's era, as the SDK's
        dual-era loop decides it (the 2026-07-28 envelope on anything but `initialize`)."""
        if self._era is None:
            meta = params.get("_meta") if isinstance(params, dict) else None
            enveloped = isinstance(meta, dict) and PROTOCOL_VERSION_META_KEY in meta
            self._era = "modern" if method != "initialize" and enveloped else "legacy"

    def take(self, line: bytes) -> bool:
        """Whether the lane took `line` (a call it now serves, or a cancellation of one)."""
        if not self._open:
            return False
        if b'"tools/call"' in line:
            return self._call(line)
        if self._calls and b'"notifications/cancelled"' in line:
            return self._cancel(line)
        return False

    def _call(self, line: bytes) -> bool:
        if self._era is None or self._catalog.options.catalog_mode or tracing.enabled():
            return False
        session: ServerSession | None = None
        connection: Any = None
        if self._era == "legacy":
            session = self._session()
            connection = connection_of(session) if session is not None else None
            if connection is None or connection.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
                return False
            request = _request(line, modern=False)
        else:
            request = _request(line, modern=True)
            # A 2025-11-25 upstream may ask the client: the SDK path parks such calls (Rounds).
            if request is not None and self._catalog.may_ask("tools", request.name):
                return False
        if request is None or request.id in self._calls:
            return False
        # A plain asyncio task: an anyio task group's spawn cost a tenth of the call.
        task = asyncio.get_running_loop().create_task(self._serve(request, session, connection))
        self._calls[request.id] = task  # `_serve` forgets it (no done callback: one turn less)
        if not self._announced:
            self._announced = True
            log.info("tools/call answered in front of the SDK's server (fast lane)")
        return True

    def _cancel(self, line: bytes) -> bool:
        try:
            message = from_json(line)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("method") != "notifications/cancelled":
            return False
        params = message.get("params")
        request_id = params.get("requestId") if isinstance(params, dict) else None
        if isinstance(request_id, bool) or not isinstance(request_id, int | str):
            return False
        task = self._calls.get(request_id)
        if task is None:
            return False
        self._cancelled.add(request_id)
        task.cancel()  # one cancelled before its first step never runs its own `finally`
        task.add_done_callback(lambda _: self._done(request_id, task))
        return True

    async def _serve(
        self, request: _Request, session: ServerSession | None, connection: Any
    ) -> None:
        """One call, answered unless the client cancelled it (then nothing is written, as
        the SDK writes nothing); cancelled at end of input, it is answered "Connection
        closed"."""
        request_id = request.id
        answered = False
        try:
            if request.version is None:
                assert session is not None
                level = self._level(connection)
                call = _Call(self, request.token, session, level, levels_from(level))
                work = self._legacy_result(request, session, connection, call)
            else:
                levels = allowed_log_levels(request.version, request.meta)
                call = _Call(self, request.token, None, "", levels)
                work = self._modern_result(request, call)
            answer = await self._answer(request, call, work)
            if request_id not in self._cancelled:
                answered = True
                if call.asked:
                    assert self._write_after is not None
                    await self._write_after(answer)
                else:
                    await self._send(answer)
        except asyncio.CancelledError:
            if not answered and request_id not in self._cancelled:  # end of input
                closed = _error(request_id, types.CONNECTION_CLOSED, "Connection closed", None)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._send(closed), _CLOSE_WRITE_SECONDS)
        except Exception as exc:  # the client is gone: nobody to answer
            log.debug("could not answer tools/call %r: %r", request_id, exc)
        finally:
            self._done(request_id, asyncio.current_task())

    def _done(self, request_id: int | str, task: asyncio.Task[Any] | None) -> None:
        """Forget a call, unless its id now names a newer one."""
        if self._calls.get(request_id) is task:
            del self._calls[request_id]
            self._cancelled.discard(request_id)

    async def _answer(self, request: _Request, call: _Call, work: Awaitable[Any]) -> dict[str, Any]:
        """The response the SDK path would write for `work` (the call's result): errors as
        the SDK maps them, a handler's crash as each era's SDK answers it."""
        request_id = request.id
        try:
            return {"jsonrpc": "2.0", "id": request_id, "result": await work}
        except GatewayError as exc:
            return _error(request_id, exc.code, exc.message, exc.data)
        except MCPError as exc:
            return _error(request_id, exc.error.code, exc.error.message, exc.error.data)
        except ValidationError:
            return _error(request_id, types.INVALID_PARAMS, "Invalid request parameters", "")
        except Exception as exc:
            if request.version is None:  # a 2025-11-25 handler's crash: code 0, its text
                log.exception("handler for 'tools/call' raised")
                return _error(request_id, 0, str(exc), None)
            log.exception("modern request handler raised")
            return _error(request_id, types.INTERNAL_ERROR, "Internal server error", None)
        finally:
            call.done = True

    async def _legacy_result(
        self, request: _Request, session: ServerSession, connection: Any, call: _Call
    ) -> dict[str, Any]:
        """The result `build_server`'s `call_tool` gives over stdio (no key, so no tool globs
        or rate limits; a 2025-11-25 client's relay)."""
        result = await self._catalog.call_tool(
            request.name,
            request.arguments,
            on_progress=call.progress if request.token is not None else None,
            meta={
                CLIENT_CAPABILITIES_META_KEY: self._capabilities(session),
                LOG_LEVEL_META_KEY: call.level,
            },
            relay=call.relay(),
        )
        result.setdefault("resultType", "complete")
        return _wire(dict(result), connection.protocol_version)

    async def _modern_result(self, request: _Request, call: _Call) -> dict[str, Any]:
        """The result the SDK's 2026-07-28 stream path gives: the caller's own capabilities
        and log level go upstream, a retry's `inputResponses`/`requestState` too; log lines
        at the levels the request opted in to; the result sieved for its version and stamped
        with the server's identity."""
        meta = request.meta
        assert request.version is not None
        caller = {
            k: meta[k] for k in (CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY) if k in meta
        }
        result = await self._catalog.call_tool(
            request.name,
            request.arguments,
            on_progress=call.progress if request.token is not None else None,
            meta=caller or None,
            resume=request.resume,
            relay=Relay(None, call.notify, resolves_input=False),
        )
        result.setdefault("resultType", "complete")
        wire = dict(result)
        kind = wire.get("resultType")
        if not isinstance(kind, str) or kind in CORE_RESULT_TYPES:
            wire = _wire(wire, request.version)
        if wire.get("resultType") is None:
            wire["resultType"] = "complete"
        own = wire.get("_meta")
        if own is None:
            wire["_meta"] = {SERVER_INFO_META_KEY: self._server_info()}
        elif isinstance(own, dict) and own.get(SERVER_INFO_META_KEY) is None:
            wire["_meta"] = {**own, SERVER_INFO_META_KEY: self._server_info()}
        return wire

    def _server_info(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = self._stamp()
        return self._identity

    def _capabilities(self, session: ServerSession) -> dict[str, Any]:
        """The client's declared capabilities as the upstream sees them (dumped once)."""
        cached = self._caps
        if cached is None or cached[0] is not session:
            caps = session.client_capabilities or types.ClientCapabilities()
            cached = self._caps = (session, caps.model_dump(by_alias=True, exclude_none=True))
        return dict(cached[1])

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._write is not None
        await self._write(to_json(message))


class _Call:
    """One lane call's back-channel: progress and log messages while it runs, requests."""

    def __init__(
        self,
        lane: FastLane,
        token: int | str | None,
        session: ServerSession | None,
        level: str,
        levels: frozenset[str],
    ) -> None:
        """`session`: a 2025-11-25 client's (None: a 2026-07-28 client, who is never asked);
        `level`: the log level it set; `levels`: the log levels it hears during the call."""
        self._lane = lane
        self._token = token
        self._session = session
        self.level = level
        self._levels = levels
        self.done = False
        self.asked = False
        """The upstream asked the client something (sent through the SDK's session)."""

    def relay(self) -> Relay:
        assert self._session is not None
        owner = connection_of(self._session) or self._session
        return Relay(self._ask, self.notify, owner=owner, legacy=True)

    async def progress(self, progress: float, total: float | None, message: str | None) -> None:
        if self.done:  # the SDK drops what comes after its answer
            return
        params: dict[str, Any] = {"progressToken": self._token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._quietly("notifications/progress", params)

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        if method == "notifications/message":
            if params.get("level") in self._levels and not self.done:
                await self._quietly(method, params)
        else:  # elicitation/complete: it may come after the call
            await self._quietly(method, params)

    async def _quietly(self, method: str, params: dict[str, Any]) -> None:
        try:
            await self._lane._send({"jsonrpc": "2.0", "method": method, "params": params})
        except Exception as exc:  # a client gone mid-call must not fail the upstream's call
            log.debug("could not relay %s: %r", method, exc)

    async def _ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.asked = True
        assert self._session is not None
        lacking = missing_capability(self._session.client_capabilities, method, params)
        if lacking:
            raise GatewayError(
                types.METHOD_NOT_FOUND,
                f"{method}: the client did not declare the {lacking} capability",
            )
        connection = connection_of(self._session)
        if connection is None:
            raise GatewayError(types.INTERNAL_ERROR, f"{method}: the client is gone")
        try:
            result: dict[str, Any] = await connection.outbound.send_raw_request(
                method, params, relayed_options()
            )
        except MCPError as exc:
            raise GatewayError(exc.error.code, exc.error.message, data=exc.error.data) from None
        return result


@dataclass(frozen=True, slots=True)
class _Request:
    id: int | str
    name: str
    arguments: dict[str, Any] | None
    token: int | str | None
    """The client's `progressToken` (None: it asked for no progress)."""
    meta: dict[str, Any]
    resume: dict[str, Any] | None = None
    """A 2026-07-28 retry's `inputResponses` and `requestState` (an upstream's own)."""
    version: str | None = None
    """The 2026-07-28 request's protocol version (None: a 2025-11-25 session's request)."""


_ENVELOPE_KEYS = frozenset(
    {
        "progressToken",
        PROTOCOL_VERSION_META_KEY,
        CLIENT_INFO_META_KEY,
        CLIENT_CAPABILITIES_META_KEY,
        LOG_LEVEL_META_KEY,
    }
)
_RESUME_KEYS = ("inputResponses", "requestState")


def _request(line: bytes, *, modern: bool) -> _Request | None:
    """The `tools/call` on `line` when the lane can answer it as the SDK would, else None
    (not one: the SDK serves it, and refuses it if it is malformed). `modern`: the
    connection serves 2026-07-28 requests, each with its envelope."""
    try:
        message = from_json(line)
    except ValueError:
        return None
    if (
        not isinstance(message, dict)
        or message.keys() - _REQUEST_KEYS
        or message.get("jsonrpc") != "2.0"
        or message.get("method") != "tools/call"
    ):
        return None
    request_id, params = message.get("id"), message.get("params")
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None
    if not isinstance(params, dict) or params.keys() - (
        _MODERN_PARAM_KEYS if modern else _PARAM_KEYS
    ):
        return None
    name, arguments, meta = params.get("name"), params.get("arguments"), params.get("_meta", {})
    if not isinstance(name, str) or not isinstance(arguments, dict | None):
        return None
    if not isinstance(meta, dict) or meta.keys() - (
        _ENVELOPE_KEYS if modern else {"progressToken"}
    ):
        return None
    token = meta.get("progressToken")
    if isinstance(token, bool) or not isinstance(token, int | str | None):
        return None
    if not modern:
        return _Request(request_id, name, arguments, token, meta)
    state = params.get("requestState")
    if isinstance(state, str) and state.startswith(ROUND_STATE_PREFIX):
        return None  # a parked call's retry: the SDK path's rounds hold it
    route = classify_inbound_request({"method": "tools/call", "params": params})
    if isinstance(route, InboundLadderRejection):
        return None
    try:  # what the SDK's runner checks before the handler runs
        _methods.validate_client_request("tools/call", route.protocol_version, params)
    except (KeyError, ValueError):  # pydantic's ValidationError is a ValueError
        return None
    resume = {k: params[k] for k in _RESUME_KEYS if k in params} or None
    return _Request(request_id, name, arguments, token, meta, resume, route.protocol_version)


def _wire(result: dict[str, Any], version: str) -> dict[str, Any]:
    """A `tools/call` result's wire form at `version`: built directly when plain, else by the
    SDK's serialiser; one that does not validate is the SDK's internal error."""
    try:
        return plain_call_result(result, version) or _methods.serialize_server_result(
            "tools/call", version, result
        )
    except ValidationError:
        log.exception("handler for 'tools/call' returned an invalid result")
        raise GatewayError(types.INTERNAL_ERROR, "Handler returned an invalid result") from None


def _error(request_id: int | str, code: int, message: str, data: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}
