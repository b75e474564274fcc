"""W3C trace context (`traceparent`/`tracestate`): accepted where a request enters Junction,
carried in a context variable, and put on every upstream call that request makes.

It lives here because every package that calls upstreams (router_core's backends, the MCP
gateway, the A2A client, the ACP turn loop) may import router_core and nothing lower. Junction
is one participant in the trace: an accepted context gets a fresh span id of ours, and upstream
calls name that span as their parent. With no incoming context nothing is sent (no trace is
started on Junction's behalf), so an untraced request pays for one context-variable read.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_MAX_TRACESTATE = 512
"""W3C allows dropping tracestate entries past 512 characters; longer values are dropped whole."""


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One trace, with Junction's own span in it."""

    trace_id: str
    span_id: str
    flags: str
    state: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> dict[str, str]:
        out = {"traceparent": self.traceparent}
        if self.state:
            out["tracestate"] = self.state
        return out


_current: ContextVar[TraceContext | None] = ContextVar("junction_trace", default=None)


def _span_id() -> str:
    return os.urandom(8).hex()


def parse(traceparent: str | None, tracestate: str | None = None) -> TraceContext | None:
    """An incoming context with a new span id of ours, or None when absent or malformed
    (a malformed header is ignored, as the W3C spec asks, never an error)."""
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent.strip().lower())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"}:
        return None
    if set(parent_id) == {"0"}:
        return None
    state = tracestate.strip() if tracestate else None
    if state and len(state) > _MAX_TRACESTATE:
        state = None
    return TraceContext(trace_id, _span_id(), flags, state or None)


def from_meta(meta: Any) -> TraceContext | None:
    """The context in a JSON-RPC `_meta` object (ACP and MCP carry it there)."""
    if not isinstance(meta, Mapping):
        return None
    parent, state = meta.get("traceparent"), meta.get("tracestate")
    return parse(
        parent if isinstance(parent, str) else None, state if isinstance(state, str) else None
    )


def current() -> TraceContext | None:
    return _current.get()


def activate(context: TraceContext | None) -> Token[TraceContext | None]:
    """Make `context` current for this task (and tasks it starts); undo with `deactivate`."""
    return _current.set(context)


def deactivate(token: Token[TraceContext | None]) -> None:
    _current.reset(token)


@contextlib.contextmanager
def active(context: TraceContext | None) -> Iterator[None]:
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def headers() -> dict[str, str]:
    """HTTP headers for an upstream call: empty when the request is not traced."""
    context = _current.get()
    return context.headers() if context is not None else {}


def meta() -> dict[str, str]:
    """The same, for a JSON-RPC `_meta` object (MCP `params._meta`, ACP `_meta`)."""
    return headers()


__all__ = [
    "TraceContext",
    "activate",
    "active",
    "current",
    "deactivate",
    "from_meta",
    "headers",
    "meta",
    "parse",
]
