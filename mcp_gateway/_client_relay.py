"""An upstream's server-to-client traffic delivered to the MCP client whose call it serves.

- A 2025-11-25 client has a back-channel: an upstream's `elicitation/create`,
  `sampling/createMessage` and `roots/list` are sent to it raw on the request's own stream
  (after checking it declared the capability) and its answer, or its error, goes back; a
  2026-07-28 upstream's input-required result is answered the same way, round by round.
- A 2026-07-28 client has none: a 2025-11-25 upstream's request becomes an input-required
  result (`inputRequests` plus a `requestState` of ours) while the upstream's call waits in
  the background; the client's retry carrying that state answers the upstream, and the call
  goes on to its result or its next request (`Rounds`). A 2026-07-28 upstream's own
  input-required result goes to the client as it is.
- Log messages sent with a call go to its client (2026-07-28: only at the levels its request
  opted in to).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.connection import allowed_log_levels
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from mcp_gateway._sdk import connection_of, request_outbound
from mcp_gateway.errors import GatewayError
from mcp_gateway.relay import Relay, relayed_options

log = logging.getLogger("mcp_gateway.server")

ROUND_STATE_PREFIX = "junction-round:"
"""Starts every `requestState` Junction mints for a parked call (others are upstreams')."""

_NOT_OFFERED = types.METHOD_NOT_FOUND
"""What an upstream hears when the caller did not declare what it asks for: the caller does
not offer that method (the SDK's own client answers -32600; -32601 says which side lacks it)."""


def missing_capability(
    caps: types.ClientCapabilities | None, method: str, params: dict[str, Any]
) -> str:
    """The capability the client lacks for `method`, or ''."""
    if method == "elicitation/create":
        elicitation = caps.elicitation if caps else None
        if elicitation is None:
            return "elicitation"
        if params.get("mode") == "url" and elicitation.url is None:
            return "elicitation.url"
        return ""
    if method == "sampling/createMessage":
        sampling = caps.sampling if caps else None
        if sampling is None:
            return "sampling"
        return "sampling.tools" if params.get("tools") and sampling.tools is None else ""
    if method == "roots/list":
        return "" if caps is not None and caps.roots is not None else "roots"
    return method


def _declared(ctx: ServerRequestContext[Any, Any]) -> types.ClientCapabilities | None:
    """A 2026-07-28 request's client capabilities (its `_meta` carries them)."""
    meta = (ctx.params or {}).get("_meta")
    raw = meta.get(CLIENT_CAPABILITIES_META_KEY) if isinstance(meta, dict) else None
    try:
        return types.ClientCapabilities.model_validate(raw) if isinstance(raw, dict) else None
    except ValidationError:
        return None


def _caller(ctx: ServerRequestContext[Any, Any]) -> object:
    """Who made the request: the principal the access guard set (HTTP), else nobody."""
    scope = getattr(ctx.request, "scope", None)
    state = scope.get("state") if isinstance(scope, dict) else None
    return state.get("principal") if isinstance(state, dict) else None


@functools.cache  # a handful of levels, asked on every call
def levels_from(level: str) -> frozenset[str]:
    """The log levels at `level` and above (RFC 5424 order, as the spec's)."""
    return frozenset(allowed_log_levels(MODERN_PROTOCOL_VERSIONS[-1], {LOG_LEVEL_META_KEY: level}))


def _log_notifier(
    ctx: ServerRequestContext[Any, Any], level: str = "debug"
) -> Callable[[str, dict[str, Any]], Any]:
    """Relays log messages to the request's own stream: at 2026-07-28 the levels the request
    opted in to, at 2025-11-25 those at or above the level the client set (`level`)."""
    outbound = request_outbound(ctx.session)
    meta = (ctx.params or {}).get("_meta")
    levels: frozenset[str]
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        levels = allowed_log_levels(ctx.protocol_version, meta if isinstance(meta, dict) else None)
    else:
        levels = levels_from(level)
    connection = connection_of(ctx.session)

    async def notify(method: str, params: dict[str, Any]) -> None:
        try:
            if method == "notifications/message":
                if params.get("level") in levels:
                    await outbound.notify(method, params)
            elif connection is not None:  # elicitation/complete: it may come after the call
                await connection.outbound.notify(method, params)
        except Exception as exc:  # a client gone mid-call must not fail the upstream's call
            log.debug("could not relay %s: %r", method, exc)

    return notify


def legacy_relay(ctx: ServerRequestContext[Any, Any], level: str = "debug") -> Relay:
    """Relay to a 2025-11-25 client on the request's own stream (`level`: the one it set)."""
    outbound = request_outbound(ctx.session)
    caps = ctx.session.client_capabilities

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        lacking = missing_capability(caps, method, params)
        if lacking:
            raise GatewayError(
                _NOT_OFFERED, f"{method}: the client did not declare the {lacking} capability"
            )
        try:
            return await outbound.send_raw_request(method, params, relayed_options())
        except MCPError as exc:
            raise GatewayError(exc.error.code, exc.error.message, data=exc.error.data) from None

    owner = connection_of(ctx.session) or ctx.session
    return Relay(on_request, _log_notifier(ctx, level), owner=owner, legacy=True)


def _progress_of(ctx: ServerRequestContext[Any, Any]) -> ProgressFnT | None:
    """Reports progress on this request, if its client asked for progress."""
    meta = (ctx.params or {}).get("_meta")
    if not isinstance(meta, dict) or meta.get("progressToken") is None:
        return None
    session = ctx.session

    async def report(progress: float, total: float | None, message: str | None) -> None:
        try:
            await session.report_progress(progress, total, message)
        except Exception as exc:  # the request ended meanwhile
            log.debug("could not relay progress: %r", exc)

    return report


def log_relay(ctx: ServerRequestContext[Any, Any]) -> Relay:
    """A 2026-07-28 client's relay for a call no one can ask anything during: its logs."""
    return Relay(None, _log_notifier(ctx), resolves_input=False)


@dataclass(eq=False)
class _Ask:
    method: str
    params: dict[str, Any]
    answered: anyio.Event = field(default_factory=anyio.Event)
    result: dict[str, Any] | None = None


@dataclass(eq=False)
class _Parked:
    """One call of a 2026-07-28 client to a 2025-11-25 upstream, running in the background."""

    caller: object
    events: tuple[Any, Any] = field(
        default_factory=lambda: anyio.create_memory_object_stream[_Ask | None](64)
    )
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    pending: dict[str, _Ask] = field(default_factory=dict)
    outcome: dict[str, Any] | BaseException | None = None
    notify: Callable[[str, dict[str, Any]], Any] | None = None
    progress: ProgressFnT | None = None
    """Progress goes to the client's request that is open now (each retry is a new one)."""
    keys: int = 0


Run = Callable[[Relay], Awaitable[dict[str, Any]]]
"""Runs the client's request with a relay (the catalog call)."""


class Rounds:
    """Parked calls of 2026-07-28 clients, by the `requestState` each last returned."""

    def __init__(self, answer_timeout: float) -> None:
        self.answer_timeout = answer_timeout
        self._parked: dict[str, _Parked] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    def attach(self, tg: anyio.abc.TaskGroup) -> None:
        """Where parked calls run: a task group of the serving scope (they outlive requests)."""
        self._tg = tg

    @staticmethod
    def ours(ctx: ServerRequestContext[Any, Any]) -> str | None:
        state = (ctx.params or {}).get("requestState")
        return state if isinstance(state, str) and state.startswith(ROUND_STATE_PREFIX) else None

    async def relayed(
        self,
        ctx: ServerRequestContext[Any, Any],
        may_ask: Callable[[], bool],
        run: Run,
        log_level: str = "debug",
    ) -> dict[str, Any]:
        """Run a client's request with the relay its generation needs (see the module's doc);
        `may_ask`: whether the upstream serving it could send server-to-client requests;
        `log_level`: the one a 2025-11-25 client set."""
        state = self.ours(ctx)
        if state is not None:
            return await self.resume(ctx, state)
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return await run(legacy_relay(ctx, log_level))
        if may_ask():
            return await self.start(ctx, run)
        return await run(log_relay(ctx))

    async def start(self, ctx: ServerRequestContext[Any, Any], run: Run) -> dict[str, Any]:
        """Run a 2026-07-28 client's call; its upstream's first request (or its result)."""
        if self._tg is None:  # not serving: no background to park in
            return await run(log_relay(ctx))
        call = _Parked(_caller(ctx), notify=_log_notifier(ctx), progress=_progress_of(ctx))

        caps = _declared(ctx)

        async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
            lacking = missing_capability(caps, method, params)
            if lacking:  # never asked of a client that did not declare it can answer
                raise GatewayError(
                    _NOT_OFFERED, f"{method}: the client did not declare the {lacking} capability"
                )
            asked = _Ask(method, params)
            await call.events[0].send(asked)
            with anyio.move_on_after(self.answer_timeout):
                await asked.answered.wait()
            if asked.result is None:
                raise GatewayError(
                    types.REQUEST_TIMEOUT,
                    f"{method}: the client did not answer within {self.answer_timeout:g}s",
                )
            return asked.result

        async def notify(method: str, params: dict[str, Any]) -> None:
            if call.notify is not None:
                await call.notify(method, params)

        async def forward(progress: float, total: float | None, message: str | None) -> None:
            if call.progress is not None:
                await call.progress(progress, total, message)

        async def drive() -> None:
            with call.scope:
                try:
                    relay = Relay(ask, notify, resolves_input=False, on_progress=forward)
                    call.outcome = await run(relay)
                except BaseException as exc:
                    call.outcome = exc
                    if isinstance(exc, anyio.get_cancelled_exc_class()):
                        raise
                finally:
                    self._forget(call)
                    with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
                        call.events[0].send_nowait(None)

        self._tg.start_soon(drive)
        return await self._next(call)

    async def resume(self, ctx: ServerRequestContext[Any, Any], state: str) -> dict[str, Any]:
        """A 2026-07-28 client's retry of a parked call: its answers reach the upstream."""
        call = self._parked.pop(state, None)
        if call is None or call.caller != _caller(ctx):
            raise GatewayError(
                types.INVALID_PARAMS, "requestState: unknown or expired (start the call again)"
            )
        call.notify, call.progress = _log_notifier(ctx), _progress_of(ctx)
        responses = (ctx.params or {}).get("inputResponses")
        for key, response in (responses if isinstance(responses, dict) else {}).items():
            asked = call.pending.pop(key, None)
            if asked is not None and isinstance(response, dict):
                asked.result = response
                asked.answered.set()
        if call.pending:
            return self._input_required(call)
        return await self._next(call)

    async def _next(self, call: _Parked) -> dict[str, Any]:
        receive = call.events[1]
        try:
            first = await receive.receive()
        except BaseException:
            call.scope.cancel()  # the client gave up: so does the upstream's call
            raise
        asks = [first]
        while first is not None:
            try:
                asks.append(receive.receive_nowait())
            except anyio.WouldBlock:
                break
        if None in asks:
            call.notify = call.progress = None
            outcome = call.outcome
            if isinstance(outcome, anyio.get_cancelled_exc_class()):
                raise GatewayError(types.INTERNAL_ERROR, "the call was cancelled")
            if isinstance(outcome, BaseException):
                raise outcome
            assert outcome is not None
            return outcome
        for asked in asks:
            assert asked is not None
            call.keys += 1
            call.pending[f"junction-{call.keys}"] = asked
        return self._input_required(call)

    def _input_required(self, call: _Parked) -> dict[str, Any]:
        call.notify = call.progress = None  # no request of the client's is open to carry them
        state = ROUND_STATE_PREFIX + secrets.token_urlsafe(24)
        self._parked[state] = call
        return {
            "resultType": "input_required",
            "inputRequests": {
                key: {"method": asked.method, "params": asked.params}
                for key, asked in call.pending.items()
            },
            "requestState": state,
        }

    def _forget(self, call: _Parked) -> None:
        for state in [s for s, parked in self._parked.items() if parked is call]:
            del self._parked[state]
