"""`/metrics`: per-surface HTTP metrics from one ASGI middleware, live state read at scrape time.

Requests are counted by a pure ASGI middleware (so WebSocket upgrades and streaming responses
are seen, and a stream is timed to its last byte). The same middleware accepts a W3C trace
context (`traceparent`/`tracestate` headers) for the request's upstream calls and writes its
access log record (`junction.http.access_log`). Everything else (backends and their tokens, MCP
upstreams and tool calls, A2A agents and tasks, ACP sessions and turns) is read from the running
objects by a custom collector when Prometheus scrapes: the packages keep plain counters and
carry no metrics code, and an idle process does no metrics work at all.

Each app gets its own `CollectorRegistry`: several apps in one process (tests, an embedding
application) never clash over metric names.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from junction.http.access_log import log_access
from junction.http.security import SURFACES, surface_of
from router_core import tracing

if TYPE_CHECKING:
    from a2a import Hub
    from acp.runtime import AgentRuntime
    from mcp_gateway import Gateway
    from router_core import Router
    from router_core.health import BreakerState, CircuitBreaker

log = logging.getLogger("junction.metrics")

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0
)  # fmt: skip
"""Seconds; wide at the top because streams (SSE, chat completions) are timed to their end."""

_CODE_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")
_CIRCUIT_STATES = ("closed", "open", "half_open")
_MCP_STATES = ("connecting", "ready", "failed", "reconnecting", "closed")
_AGENT_STATES = ("ready", "unavailable", "error")


class _Surface:
    """One surface's request counters: plain numbers, bumped on the event loop's one thread."""

    __slots__ = ("buckets", "codes", "errors", "in_progress", "latency_sum", "ws", "ws_open")

    def __init__(self) -> None:
        self.codes = dict.fromkeys(_CODE_CLASSES, 0)
        self.errors = 0
        self.in_progress = 0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.latency_sum = 0.0
        self.ws = {"accepted": 0, "refused": 0}
        self.ws_open = 0


class HttpMetrics:
    """The request-path metrics, kept as plain counters and turned into metric families when
    Prometheus scrapes.

    prometheus-client's own Counter/Histogram take a lock per increment (six per request here):
    about 4.6 µs a request on the development machine, against about 1 µs like this. ASGI apps
    run on one event-loop thread, so plain counters are exact; `collect` runs on that thread too
    (the `/metrics` handler calls it).
    """

    def __init__(self) -> None:
        self.surfaces = {surface: _Surface() for surface in SURFACES}

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "junction_http_requests",
            "HTTP requests by surface and status class (none: no response was sent).",
            labels=["surface", "code"],
        )
        errors = CounterMetricFamily(
            "junction_http_errors",
            "HTTP requests that ended in a 5xx status or an exception, by surface.",
            labels=["surface"],
        )
        latency = HistogramMetricFamily(
            "junction_http_request_duration_seconds",
            "Time from request to the last byte of the response (streams included), by surface.",
            labels=["surface"],
        )
        in_progress = GaugeMetricFamily(
            "junction_http_requests_in_progress",
            "HTTP requests (including open streams) being served now, by surface.",
            labels=["surface"],
        )
        websockets = CounterMetricFamily(
            "junction_websocket_connections",
            "WebSocket connection attempts by surface and outcome (accepted or refused).",
            labels=["surface", "outcome"],
        )
        ws_open = GaugeMetricFamily(
            "junction_websocket_connections_open",
            "WebSocket connections open now, by surface.",
            labels=["surface"],
        )
        bounds = [*(str(bound) for bound in LATENCY_BUCKETS), "+Inf"]
        for name, surface in self.surfaces.items():
            for code, count in surface.codes.items():
                requests.add_metric([name, code], count)
            errors.add_metric([name], surface.errors)
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, surface.buckets, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            latency.add_metric([name], buckets, surface.latency_sum)
            in_progress.add_metric([name], surface.in_progress)
            for outcome, count in surface.ws.items():
                websockets.add_metric([name, outcome], count)
            ws_open.add_metric([name], surface.ws_open)
        return (requests, errors, latency, in_progress, websockets, ws_open)


class RequestMetrics:
    """Pure ASGI middleware: counts, times and tracks every HTTP request and WebSocket."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.surfaces = metrics.surfaces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = surface_of(scope["path"])
        surface = self.surfaces[name]
        status = 0

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        trace = _trace_of(scope)
        token = tracing.activate(trace) if trace is not None else None
        surface.in_progress += 1
        start = time.perf_counter()
        failed = True
        try:
            await self.app(scope, receive, send_and_see)
            failed = False
        finally:
            elapsed = time.perf_counter() - start
            if token is not None:
                tracing.deactivate(token)
            surface.in_progress -= 1
            surface.latency_sum += elapsed
            surface.buckets[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
            if 100 <= status < 600:
                surface.codes[_CODE_CLASSES[status // 100]] += 1
            else:  # uvicorn answers 500 for an app that raised before responding
                surface.codes["5xx" if failed else "none"] += 1
                status = 500 if failed else status
            if failed or status >= 500:
                surface.errors += 1
            log_access(
                scope,
                surface=name,
                status=status,
                seconds=elapsed,
                trace_id=trace.trace_id if trace is not None else None,
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = surface_of(scope["path"])
        surface = self.surfaces[name]
        accepted = False
        status = 0

        async def send_and_see(message: Message) -> None:
            nonlocal accepted, status
            kind = message["type"]
            if kind == "websocket.accept":
                accepted = True
                status = 101
                surface.ws_open += 1
            elif kind == "websocket.http.response.start":
                status = message["status"]
            elif kind == "websocket.close" and not accepted:
                status = 403  # what the server answers a handshake closed before accepting
            await send(message)

        trace = _trace_of(scope)
        token = tracing.activate(trace) if trace is not None else None
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_see)
        finally:
            elapsed = time.perf_counter() - start
            if token is not None:
                tracing.deactivate(token)
            surface.ws["accepted" if accepted else "refused"] += 1
            if accepted:
                surface.ws_open -= 1
            log_access(
                scope,
                surface=name,
                status=status,
                seconds=elapsed,
                trace_id=trace.trace_id if trace is not None else None,
            )


def _trace_of(scope: Scope) -> tracing.TraceContext | None:
    """The W3C trace context in the request's headers (None when absent or malformed)."""
    parent = state = None
    for name, value in scope["headers"]:
        if name == b"traceparent":
            parent = value.decode("latin-1")
        elif name == b"tracestate":
            state = value.decode("latin-1")
    return tracing.parse(parent, state) if parent is not None else None


class StateCollector:
    """Backends, MCP upstreams, A2A agents and ACP sessions as gauges and counters, read at
    scrape time.

    Each part is read on its own: one that fails (a package changed its snapshot shape) is
    logged and skipped, and the rest of the scrape still answers.
    """

    def __init__(
        self,
        *,
        router: Router | None = None,
        gateway: Gateway | None = None,
        hub: Hub | None = None,
        runtime: AgentRuntime | None = None,
    ) -> None:
        self.router = router
        self.gateway = gateway
        self.hub = hub
        self.runtime = runtime
        self._transitions: dict[tuple[str, str], int] = {}
        self._watched: set[int] = set()

    def watch_breakers(self) -> None:
        """Count circuit transitions through the breakers' own listeners (new backends are
        picked up here and at every scrape)."""
        if self.router is None:
            return
        for entry in self.router.registry.entries():
            breaker = entry.breaker
            if id(breaker) not in self._watched:
                self._watched.add(id(breaker))
                breaker.add_listener(self._count_transition)

    def _count_transition(
        self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState
    ) -> None:
        key = (breaker.name, str(new))
        self._transitions[key] = self._transitions.get(key, 0) + 1

    def collect(self) -> Iterable[Metric]:
        for part in (
            self._backends,
            self._tokens,
            self._mcp,
            self._tool_calls,
            self._agents,
            self._tasks,
            self._acp,
        ):
            try:
                yield from part()
            except Exception:  # a scrape must answer even if one part breaks
                log.exception("metrics: reading %s failed", part.__name__.lstrip("_"))

    def _backends(self) -> Iterator[Metric]:
        if self.router is None:
            return
        self.watch_breakers()
        rows = self.router.snapshot()
        labels = ["backend"]
        in_flight = GaugeMetricFamily(
            "junction_backend_in_flight", "Requests in flight to each backend.", labels=labels
        )
        latency = GaugeMetricFamily(
            "junction_backend_latency_ewma_seconds",
            "EWMA of each backend's non-streaming request latency.",
            labels=labels,
        )
        ttft = GaugeMetricFamily(
            "junction_backend_ttft_ewma_seconds",
            "EWMA of each backend's time to first streamed token.",
            labels=labels,
        )
        available = GaugeMetricFamily(
            "junction_backend_available",
            "1 when the router would send a request to the backend now.",
            labels=labels,
        )
        circuit = GaugeMetricFamily(
            "junction_backend_circuit_state",
            "1 for the backend's current circuit breaker state, 0 for the others.",
            labels=["backend", "state"],
        )
        successes = CounterMetricFamily(
            "junction_backend_successes", "Requests each backend answered well.", labels=labels
        )
        failures = CounterMetricFamily(
            "junction_backend_failures", "Requests to each backend that failed.", labels=labels
        )
        selections = CounterMetricFamily(
            "junction_backend_selections", "Times the router chose each backend.", labels=labels
        )
        for row in rows:
            name = [str(row["name"])]
            in_flight.add_metric(name, row["in_flight"])
            if row.get("latency_ewma_ms") is not None:
                latency.add_metric(name, row["latency_ewma_ms"] / 1000)
            if row.get("ttft_ewma_ms") is not None:
                ttft.add_metric(name, row["ttft_ewma_ms"] / 1000)
            available.add_metric(name, 1.0 if row["available"] else 0.0)
            state = row["circuit"]["state"]
            for candidate in _CIRCUIT_STATES:
                circuit.add_metric([name[0], candidate], 1.0 if candidate == state else 0.0)
            successes.add_metric(name, row["successes"])
            failures.add_metric(name, row["failures"])
            selections.add_metric(name, row["selections"])
        transitions = CounterMetricFamily(
            "junction_backend_circuit_transitions",
            "Circuit breaker transitions since start, by backend and new state.",
            labels=["backend", "to"],
        )
        for (backend, to), count in sorted(self._transitions.items()):
            transitions.add_metric([backend, to], count)
        yield from (
            in_flight,
            latency,
            ttft,
            available,
            circuit,
            selections,
            successes,
            failures,
            transitions,
        )

    def _tokens(self) -> Iterator[Metric]:
        if self.router is None:
            return
        tokens = CounterMetricFamily(
            "junction_backend_tokens",
            "Tokens each backend reported using, by kind (prompt or completion).",
            labels=["backend", "kind"],
        )
        for entry in self.router.registry.entries():
            backend = entry.backend
            tokens.add_metric([entry.name, "prompt"], backend.prompt_tokens)
            tokens.add_metric([entry.name, "completion"], backend.completion_tokens)
        yield tokens

    def _mcp(self) -> Iterator[Metric]:
        if self.gateway is None:
            return
        state = GaugeMetricFamily(
            "junction_mcp_upstream_state",
            "1 for each MCP upstream's current connection state, 0 for the others.",
            labels=["server", "state"],
        )
        tools = GaugeMetricFamily(
            "junction_mcp_upstream_tools",
            "Tools each MCP upstream exposes (after filters).",
            labels=["server"],
        )
        attempts = CounterMetricFamily(
            "junction_mcp_upstream_connect_attempts",
            "Connection attempts to each MCP upstream.",
            labels=["server"],
        )
        for status in self.gateway.statuses():
            current = str(status.state)
            for candidate in _MCP_STATES:
                state.add_metric([status.name, candidate], 1.0 if candidate == current else 0.0)
            tools.add_metric([status.name], status.tools)
            attempts.add_metric([status.name], status.attempts)
        yield from (state, tools, attempts)

    def _tool_calls(self) -> Iterator[Metric]:
        if self.gateway is None:
            return
        calls = CounterMetricFamily(
            "junction_mcp_tool_calls",
            "MCP tools/call requests to each upstream, by tool (the upstream's own name) and "
            "outcome (ok; tool_error: the tool answered isError; error: the call failed; "
            "cancelled).",
            labels=["server", "tool", "outcome"],
        )
        duration = SummaryMetricFamily(
            "junction_mcp_tool_call_duration_seconds",
            "Time from sending a tools/call to its answer, by upstream and tool.",
            labels=["server", "tool"],
        )
        for upstream in self.gateway.upstreams():
            for tool, stats in sorted(upstream.tool_calls.items()):
                for outcome, count in stats.outcomes.items():
                    calls.add_metric([upstream.name, tool, outcome], count)
                duration.add_metric([upstream.name, tool], stats.calls, stats.seconds)
        yield from (calls, duration)

    def _agents(self) -> Iterator[Metric]:
        if self.hub is None:
            return
        state = GaugeMetricFamily(
            "junction_a2a_agent_state",
            "1 for each A2A agent's current state (ready, unavailable: circuit open or "
            "unhealthy, error: no usable card), 0 for the others.",
            labels=["agent", "state"],
        )
        in_flight = GaugeMetricFamily(
            "junction_a2a_agent_in_flight", "Tasks in flight to each agent.", labels=["agent"]
        )
        successes = CounterMetricFamily(
            "junction_a2a_agent_successes", "Calls each agent answered well.", labels=["agent"]
        )
        failures = CounterMetricFamily(
            "junction_a2a_agent_failures", "Calls to each agent that failed.", labels=["agent"]
        )
        for agent in self.hub.registry.all():
            summary: dict[str, Any] = agent.summary()
            word = summary["state"]
            current = (
                "ready"
                if word == "ready"
                else "error"
                if word.startswith("error")
                else ("unavailable")
            )
            for candidate in _AGENT_STATES:
                state.add_metric([agent.name, candidate], 1.0 if candidate == current else 0.0)
            stats = summary["stats"]
            in_flight.add_metric([agent.name], stats["in_flight"])
            successes.add_metric([agent.name], stats["successes"])
            failures.add_metric([agent.name], stats["failures"])
        yield from (state, in_flight, successes, failures)

    def _tasks(self) -> Iterator[Metric]:
        # The hub counts its stored tasks by state in versions that have `task_state_counts`.
        counts = getattr(self.hub, "task_state_counts", None)
        if counts is None:
            return
        tasks = GaugeMetricFamily(
            "junction_a2a_tasks",
            "A2A tasks in the hub's store, by current state.",
            labels=["state"],
        )
        for state, count in sorted(counts().items()):
            tasks.add_metric([str(state)], count)
        yield tasks
        fanout = getattr(self.hub, "fanout", None)
        if fanout is not None:  # cluster.redis_url: this replica's part of the task streams
            yield from fanout.metrics()

    def _acp(self) -> Iterator[Metric]:
        runtime = self.runtime
        if runtime is None:
            return
        yield GaugeMetricFamily(
            "junction_acp_sessions_open",
            "ACP sessions open now, on every connection.",
            value=runtime.open_sessions(),
        )
        yield CounterMetricFamily(
            "junction_acp_sessions_created",
            "ACP sessions created (session/new) since start.",
            value=runtime.sessions_created,
        )
        turns = CounterMetricFamily(
            "junction_acp_turns",
            "ACP prompt turns ended, by stop reason (error: the turn failed).",
            labels=["stop_reason"],
        )
        for stop, count in sorted(runtime.turns.items()):
            turns.add_metric([stop], count)
        yield turns


class Metrics:
    """One app's metrics: its registry, the request middleware's metrics, the state collector."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        self.http = HttpMetrics()
        self.registry.register(self.http)
        self.state = StateCollector()
        self.registry.register(self.state)
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def watch(
        self,
        *,
        router: Router | None = None,
        gateway: Gateway | None = None,
        hub: Hub | None = None,
        runtime: AgentRuntime | None = None,
    ) -> None:
        """Report these live objects' state at each scrape."""
        self.state.router = router
        self.state.gateway = gateway
        self.state.hub = hub
        self.state.runtime = runtime

    def endpoint(self) -> Callable[[Request], Any]:
        """The `/metrics` handler: text format, or OpenMetrics when the scraper asks for it."""

        async def metrics(request: Request) -> Response:
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
            return Response(encoder(self.registry), headers={"content-type": content_type})

        return metrics


__all__ = ["LATENCY_BUCKETS", "HttpMetrics", "Metrics", "RequestMetrics", "StateCollector"]
