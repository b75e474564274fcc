"""W3C trace context (`traceparent`/`tracestate`) and Junction's spans.

The context is accepted where a request enters Junction, carried in a context variable, and put
on every upstream call that request makes. It lives here because every package that calls
upstreams (router_core's backends, the MCP gateway, the A2A client, the ACP turn loop) may import
router_core and nothing lower.

Spans go the same way: `span(...)` (a block) and `start_span(...)` (a span whose end comes later,
such as a stream's) are what the packages call. With telemetry off (the default) no tracer is
installed: `span` returns one shared no-op object and `start_span` returns None, and no
OpenTelemetry module is imported by any of this. `junction.telemetry` installs a `Tracer` (the
OpenTelemetry SDK behind this small interface) at start-up when `OTEL_*` or `telemetry:` ask
for it.

Without a tracer, Junction is one anonymous participant in the trace: an accepted context gets
a fresh span id of ours, and upstream calls name it as their parent; with no incoming context
nothing is sent. With a tracer, every span is real: the incoming context parents Junction's
first span, each span becomes the current context while it runs (so upstream calls name the
innermost one), and a request with no context starts a trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, ParamSpec, Protocol, TypeVar

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_MAX_TRACESTATE = 512
"""W3C allows dropping tracestate entries past 512 characters; longer values are dropped whole."""

P = ParamSpec("P")
R = TypeVar("R")
SpanKind = Literal["internal", "server", "client", "producer", "consumer"]
AttributeValue = str | bool | int | float | Sequence[str] | Sequence[int] | Sequence[float]
Attributes = Mapping[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One trace, with Junction's own span in it.

    `parent_id` is set on a context accepted from a caller: the caller's span, which parents
    the first span Junction records (None: `span_id` is a span a tracer records)."""

    trace_id: str
    span_id: str
    flags: str
    state: str | None = None
    parent_id: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def headers(self) -> dict[str, str]:
        out = {"traceparent": self.traceparent}
        if self.state:
            out["tracestate"] = self.state
        return out


class Span(Protocol):
    """A span being recorded (or the no-op one): what instrumented code may do with it."""

    @property
    def recording(self) -> bool: ...

    def rename(self, name: str) -> None:
        """A better name once known (an HTTP route, after routing)."""

    def set_attribute(self, key: str, value: AttributeValue) -> None: ...

    def set_attributes(self, attributes: Attributes) -> None: ...

    def add_event(self, name: str, attributes: Attributes | None = None) -> None: ...

    def fail(self, error: BaseException | str) -> None:
        """Mark the span failed (status ERROR, `error.type`)."""

    def end(self) -> None: ...


class LiveSpan(Span, Protocol):
    """A span a tracer started: it has a W3C context of its own."""

    @property
    def context(self) -> TraceContext: ...


class Tracer(Protocol):
    """What `junction.telemetry` installs: span creation and the tracer's own current context."""

    def start(
        self, name: str, kind: SpanKind, attributes: Attributes | None, parent: TraceContext | None
    ) -> LiveSpan:
        """A started span: a child of `parent` when it came from a caller (`parent_id` set),
        else of the tracer's current span (none: a new trace)."""

    def enter(self, span: LiveSpan) -> object:
        """Make `span` the tracer's current span (what other instrumentation sees); the
        returned token undoes it in `leave`."""

    def leave(self, token: object) -> None: ...


class _NoopSpan:
    """The span `span()` hands out with telemetry off: every method does nothing."""

    __slots__ = ()
    recording = False

    def rename(self, name: str) -> None:
        pass

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        pass

    def set_attributes(self, attributes: Attributes) -> None:
        pass

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        pass

    def fail(self, error: BaseException | str) -> None:
        pass

    def end(self) -> None:
        pass


NOOP_SPAN: Span = _NoopSpan()


class _NoopScope:
    __slots__ = ()

    def __enter__(self) -> Span:
        return NOOP_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


_NOOP_SCOPE = _NoopScope()
_current: ContextVar[TraceContext | None] = ContextVar("junction_trace", default=None)
_tracer: Tracer | None = None


def install(tracer: Tracer | None) -> None:
    """Record spans with `tracer` from now on (None: stop recording)."""
    global _tracer  # noqa: PLW0603 - one process-wide hook, read on every span
    _tracer = tracer


def enabled() -> bool:
    """Whether spans are recorded (a tracer is installed)."""
    return _tracer is not None


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
    return TraceContext(trace_id, _span_id(), flags, state or None, parent_id)


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


# -- spans ----------------------------------------------------------------------------------


def start_span(
    name: str, kind: SpanKind = "internal", attributes: Attributes | None = None
) -> LiveSpan | None:
    """A span under the current context that the caller ends (`end()`) when its work is done,
    possibly in another task; None when telemetry is off. It is not made current: run the
    work that belongs to it under `using(span)`."""
    tracer = _tracer
    if tracer is None:
        return None
    return tracer.start(name, kind, attributes, _current.get())


class _Scope:
    """A span made current for a block; `owned` spans are started on entry and ended on exit."""

    __slots__ = ("_otel", "_span", "_token", "attributes", "kind", "name", "owned", "tracer")

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        kind: SpanKind,
        attributes: Attributes | None,
        span: LiveSpan | None,
    ) -> None:
        self.tracer = tracer
        self.name = name
        self.kind = kind
        self.attributes = attributes
        self.owned = span is None
        self._span = span
        self._token: Token[TraceContext | None] | None = None
        self._otel: object = None

    def __enter__(self) -> Span:
        span = self._span
        if span is None:
            span = self._span = self.tracer.start(
                self.name, self.kind, self.attributes, _current.get()
            )
        self._token = _current.set(span.context)
        self._otel = self.tracer.enter(span)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        assert span is not None and self._token is not None
        self.tracer.leave(self._otel)
        # A generator closed by the garbage collector exits in another context: nothing to undo.
        with contextlib.suppress(ValueError):
            _current.reset(self._token)
        if self.owned:
            if exc is not None and not isinstance(exc, asyncio.CancelledError | GeneratorExit):
                span.fail(exc)
            span.end()


def span(
    name: str, kind: SpanKind = "internal", attributes: Attributes | None = None
) -> contextlib.AbstractContextManager[Span]:
    """A span around a block, current inside it (upstream calls name it as their parent);
    an exception leaving the block marks it failed. With telemetry off it costs one call and
    yields `NOOP_SPAN`."""
    tracer = _tracer
    if tracer is None:
        return _NOOP_SCOPE
    return _Scope(tracer, name, kind, attributes, None)


def using(span: LiveSpan | None) -> contextlib.AbstractContextManager[Span]:
    """Make a span from `start_span` current for a block (it is not ended here)."""
    tracer = _tracer
    if tracer is None or span is None:
        return _NOOP_SCOPE
    return _Scope(tracer, "", "internal", None, span)


def traced(
    name: str | Callable[..., str | None],
    kind: SpanKind = "internal",
    attributes: Callable[..., Attributes] | None = None,
    result: Callable[[Span, Any], None] | None = None,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate a coroutine function: each call runs in a span (`span`'s rules). `name` and
    `attributes` may be functions of the call's arguments (a name of None: no span for that
    call); `result(span, value)` records what the call returned. Off, it costs one check."""

    def decorate(
        function: Callable[P, Coroutine[Any, Any, R]],
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(function)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            tracer = _tracer
            if tracer is None:
                return await function(*args, **kwargs)
            title = name(*args, **kwargs) if callable(name) else name
            if title is None:
                return await function(*args, **kwargs)
            attrs = attributes(*args, **kwargs) if attributes is not None else None
            with _Scope(tracer, title, kind, attrs, None) as span:
                value = await function(*args, **kwargs)
                if result is not None:
                    result(span, value)
                return value

        return run

    return decorate


__all__ = [
    "NOOP_SPAN",
    "AttributeValue",
    "Attributes",
    "LiveSpan",
    "Span",
    "SpanKind",
    "TraceContext",
    "Tracer",
    "activate",
    "active",
    "current",
    "deactivate",
    "enabled",
    "from_meta",
    "headers",
    "install",
    "meta",
    "parse",
    "span",
    "start_span",
    "traced",
    "using",
]
