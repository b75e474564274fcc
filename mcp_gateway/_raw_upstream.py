"""A stdio upstream's requests written as lines and answered from lines, beside its SDK session.

Through the SDK's client session, one request to a stdio upstream builds a pydantic request
model, crosses a memory stream to the task that dumps and writes it, and its response is parsed
into the JSON-RPC union, crosses another memory stream to the session's dispatcher and a third
to the waiting caller: five task hops and two model round trips, a third of what Junction
spends per `tools/call`. For a request with nothing to trace, the channel writes the line the
SDK would have written to the child's stdin itself, and the child's stdout reader hands it
the response line before any parse (`claim`), so the caller wakes straight from the reader;
the server's progress on it (under the request id as token, as the session sends it) goes to
the caller's callback the same way. Everything else on the wire (the server's requests, its
other notifications, responses to the session's own requests) goes the SDK's way as before,
and a response whose shape is not the plain one is parsed by the SDK's own JSON-RPC model,
so what the caller gets is what the session would have returned.

As with the session: a caller's cancellation after the write sends `notifications/cancelled`
("caller cancelled"); a write that fails marks the request undelivered and ends the
connection; end of output fails every waiting request with "Connection closed" (-32000).
`JUNCTION_MCP_FAST_LANE=0` turns the channel off.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import mcp_types as types
from mcp.shared.dispatcher import CallOptions, ProgressFnT
from mcp.shared.exceptions import MCPError
from opentelemetry.trace import get_current_span
from pydantic import ValidationError
from pydantic_core import from_json, to_json

from router_core import tracing

log = logging.getLogger("mcp_gateway.raw_upstream")

SWITCH = "JUNCTION_MCP_FAST_LANE"
"""Set to 0 to send every upstream request through the SDK session."""

_PLAIN_OPTIONS = frozenset({"request_id", "headers", "on_progress"})
"""Options the channel carries out as the session would (headers are HTTP's: none over stdio)."""

_RESPONSE_KEYS = frozenset({"jsonrpc", "id", "result"})

_SETTLE_TURNS = 2
"""Event-loop turns a response waits behind a message just handed to the session: one for
its dispatcher to take and dispatch it, one for the handler it started to begin."""

_Outcome = dict[str, Any] | types.ErrorData
_Waiter = asyncio.Future[_Outcome]

_channels: weakref.WeakKeyDictionary[Any, RawChannel] = weakref.WeakKeyDictionary()
"""Each stdio transport's channel, by the write stream its session sends on."""


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


class RawChannel:
    """Requests written straight to a child's stdin, answered by its stdout reader."""

    def __init__(
        self, stdin: asyncio.StreamWriter, on_write_failed: Callable[[str], Awaitable[None]]
    ) -> None:
        """`on_write_failed(request_id)`: what the transport does when a write to the child
        fails (marks the request undelivered and ends the connection)."""
        self._stdin = stdin
        self._on_write_failed = on_write_failed
        self._pending: dict[str, asyncio.Future[dict[str, Any] | types.ErrorData]] = {}
        self._progress: dict[str, ProgressFnT] = {}
        """The progress callbacks of pending requests, by their token (the request id)."""
        self._reports: dict[str, set[asyncio.Task[None]]] = {}
        """Progress reports still being delivered, by the request they are about."""
        self._held: set[asyncio.Task[None]] = set()
        """Every report and delayed answer under way (the loop keeps only weak references)."""
        self._closed = False
        self._behind = False
        """The session was handed a message while requests were pending: the next response
        claimed waits until the session has dispatched it (see `claim`)."""

    def register(self, write_stream: Any) -> None:
        """Serve the session that sends on `write_stream` (see `channel_of`)."""
        _channels[write_stream] = self

    def takes(self, opts: CallOptions) -> bool:
        """Whether a request with `opts` needs nothing more of the SDK session: nothing
        traced, and no OpenTelemetry span current (the SDK's server opens one for a request
        whose `_meta` carries a `traceparent`, and the session puts it on the upstream
        request)."""
        return (
            "request_id" in opts
            and opts.keys() <= _PLAIN_OPTIONS
            and opts.get("cancel_on_abandon", True)
            and not tracing.enabled()
            and not get_current_span().get_span_context().is_valid
        )

    async def request(
        self,
        request_id: str,
        method: str,
        params: Mapping[str, Any] | None,
        on_progress: ProgressFnT | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its result dict; raises `MCPError` as the session's
        dispatcher does (the server's error, or "Connection closed"). `on_progress` hears the
        server's progress on it, under the request id as its token (the session's way)."""
        if self._closed:
            raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed")
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        body = dict(params or {})
        if on_progress is not None:
            body["_meta"] = {**(body.get("_meta") or {}), "progressToken": request_id}
            self._progress[request_id] = on_progress
        elif "_meta" in body and not body["_meta"]:
            del body["_meta"]  # the session drops an empty `_meta` too
        if body:
            message["params"] = body
        waiter: asyncio.Future[dict[str, Any] | types.ErrorData]
        waiter = asyncio.get_running_loop().create_future()
        if not _announced:
            _announce()
        self._pending[request_id] = waiter
        written = False
        try:
            try:
                self._stdin.write(to_json(message) + b"\n")
                written = True
                await self._stdin.drain()
            except (ConnectionError, OSError):
                await self._on_write_failed(request_id)
                raise MCPError(code=types.CONNECTION_CLOSED, message="Connection closed") from None
            outcome = await waiter
        except asyncio.CancelledError:
            if written and not self._closed:  # the session's courtesy cancel
                cancel = {"requestId": request_id, "reason": "caller cancelled"}
                note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel}
                self._stdin.write(to_json(note) + b"\n")
            raise
        finally:
            self._pending.pop(request_id, None)
            self._progress.pop(request_id, None)
            self._reports.pop(request_id, None)  # reports still under way hold their own set
        if isinstance(outcome, types.ErrorData):
            raise MCPError(code=outcome.code, message=outcome.message, data=outcome.data)
        return outcome

    def forwarded(self) -> None:
        """The reader handed the session a message (a notification, a server request)."""
        if self._pending:
            self._behind = True

    async def claim(self, line: bytes) -> bool:
        """Whether `line` answered a request of the channel (its caller now has it).

        What the server sent before a response reaches the session first and must be seen
        first: a log line, a progress report, the cancellation of its own question. Through
        the session, the caller wakes only after the session's dispatcher has taken those and
        started their handlers; here, after the dispatcher has had the same turns.
        """
        found = self._match(line)
        if not isinstance(found, tuple):
            return found is True
        if self._behind:
            self._behind = False
            for _ in range(_SETTLE_TURNS):
                await asyncio.sleep(0)
        self._resolve(*found)
        return True

    def claim_now(self, line: bytes) -> bool:
        """`claim` in the pipe's callback, when nothing handed to the session must be seen
        first (else the reading task's `claim` takes the line, after those turns)."""
        if self._behind:
            return False
        found = self._match(line)
        if not isinstance(found, tuple):
            return found is True
        self._resolve(*found)
        return True

    def _match(self, line: bytes) -> tuple[str, _Waiter, _Outcome] | bool | None:
        """The pending request `line` answers and its outcome; True for a progress report
        taken; None when the line is not the channel's."""
        if not self._pending:
            return None
        try:
            message = from_json(line)
        except ValueError:
            return None
        if not isinstance(message, dict):
            return None
        if "method" in message:
            return self._progressed(message) or None
        request_id = message.get("id")
        if not isinstance(request_id, str):
            return None
        waiter = self._pending.get(request_id)
        if waiter is None or waiter.done():
            return None
        outcome: _Outcome
        result = message.get("result")
        if (
            message.keys() == _RESPONSE_KEYS
            and message["jsonrpc"] == "2.0"
            and type(result) is dict
        ):
            outcome = result
        else:  # any other shape is the SDK model's to judge, as it would have been
            try:
                parsed = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
            except ValidationError:
                return None
            if isinstance(parsed, types.JSONRPCResponse):
                outcome = parsed.result
            elif isinstance(parsed, types.JSONRPCError):
                outcome = parsed.error
            else:
                return None
        return request_id, waiter, outcome

    def _resolve(self, request_id: str, waiter: _Waiter, outcome: _Outcome) -> None:
        reports = self._reports.get(request_id)
        if reports:  # its progress reaches its caller before its result does
            self._hold(asyncio.get_running_loop().create_task(_after(reports, waiter, outcome)))
        elif not waiter.done():  # else its caller gave up meanwhile: a late response, dropped
            waiter.set_result(outcome)

    def _progressed(self, message: dict[str, Any]) -> bool:
        """A progress report on a pending request of the channel goes to its callback, in a
        task of its own (as the session's dispatcher starts it)."""
        if not self._progress or message.get("method") != "notifications/progress":
            return False
        params = message.get("params")
        if not isinstance(params, dict):
            return False
        token, done = params.get("progressToken"), params.get("progress")
        report = self._progress.get(token) if isinstance(token, str) else None
        if report is None or isinstance(done, bool) or not isinstance(done, int | float):
            return False
        total, text = params.get("total"), params.get("message")
        task = asyncio.get_running_loop().create_task(
            _report(
                report,
                float(done),
                float(total) if isinstance(total, int | float) else None,
                text if isinstance(text, str) else None,
            )
        )
        reports = self._reports.setdefault(str(token), set())
        reports.add(task)
        task.add_done_callback(reports.discard)
        self._hold(task)
        return True

    def _hold(self, task: asyncio.Task[None]) -> None:
        self._held.add(task)
        task.add_done_callback(self._held.discard)

    def close(self) -> None:
        """End of the child's output: every waiting request fails "Connection closed"."""
        self._closed = True
        closed = types.ErrorData(code=types.CONNECTION_CLOSED, message="Connection closed")
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_result(closed)


async def _after(
    reports: set[asyncio.Task[None]],
    waiter: asyncio.Future[dict[str, Any] | types.ErrorData],
    outcome: dict[str, Any] | types.ErrorData,
) -> None:
    """Resolve `waiter` once the progress reports delivered before it are done (the
    session's dispatcher starts them before it wakes the caller, and they run first)."""
    under_way = set(reports)
    if under_way:
        await asyncio.wait(under_way)
    if not waiter.done():
        waiter.set_result(outcome)


async def _report(report: ProgressFnT, done: float, total: float | None, text: str | None) -> None:
    try:
        await report(done, total, text)
    except Exception:  # a failing callback must not end the reader (the session's rule)
        log.exception("progress callback raised")


_announced = False


def _announce() -> None:
    global _announced  # noqa: PLW0603 - said once per process, for whoever reads the log
    _announced = True
    log.info("requests to stdio upstreams written as lines beside their SDK sessions")


def channel_of(write_stream: Any) -> RawChannel | None:
    """The channel serving the session that sends on `write_stream`, if any."""
    try:
        return _channels.get(write_stream)
    except TypeError:  # None, or a stream no weak reference can name: not a stdio transport's
        return None
