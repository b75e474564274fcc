"""OpenTelemetry traces: decide from `telemetry:` and the standard `OTEL_*` variables whether to
record spans, and if so set up the SDK (TracerProvider, BatchSpanProcessor, OTLP exporter over
http/protobuf or gRPC) behind `router_core.tracing`'s small `Tracer` interface.

Off by default, and then free: `export_settings` reads only the environment and the config,
and no `opentelemetry` module is imported by Junction (the SDK and an exporter cost 70-140 ms
to import, docs/operations.md). On whenever `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `telemetry.otlp_endpoint` is set, unless
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.

The provider is also made OpenTelemetry's global one, so libraries that trace through the
OpenTelemetry API (the `mcp` SDK traces every MCP message it sends and serves) land in the same
traces, under Junction's spans: each Junction span is made OpenTelemetry's current span while
it runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from junction.config import JunctionConfig
from router_core import tracing
from router_core.tracing import Attributes, AttributeValue, LiveSpan, SpanKind, TraceContext

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span as OtelSpan
    from opentelemetry.trace import Tracer as OtelTracer

log = logging.getLogger("junction.telemetry")

Protocol = Literal["http/protobuf", "grpc"]
_PROTOCOLS: tuple[Protocol, ...] = ("http/protobuf", "grpc")
DEFAULT_SERVICE_NAME = "junction"


@dataclass(frozen=True)
class ExportSettings:
    """Where and how spans are exported (None from `export_settings`: tracing is off)."""

    protocol: Protocol
    endpoint: str | None
    """The full URL for the exporter; None: the exporter reads the `OTEL_*` endpoint itself."""
    service_name: str | None
    """None: `OTEL_SERVICE_NAME`/`OTEL_RESOURCE_ATTRIBUTES`, else `junction`."""
    headers: dict[str, str] = field(default_factory=dict)
    """Config headers, to merge over `OTEL_EXPORTER_OTLP_HEADERS`."""


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def export_settings(config: JunctionConfig, environ: Mapping[str, str]) -> ExportSettings | None:
    """The export the config and environment ask for, or None when tracing stays off. Reads
    nothing but its arguments (no OpenTelemetry import), so deciding costs nothing."""
    if _flag(environ.get("OTEL_SDK_DISABLED")):
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    telemetry = config.telemetry
    from_env = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if telemetry.otlp_endpoint is None and not from_env:
        return None
    protocol: Protocol
    if telemetry.protocol is not None:
        protocol = telemetry.protocol
    else:
        asked = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if asked == "grpc":
            protocol = "grpc"
        else:
            if asked != "http/protobuf":
                log.warning(
                    "OTLP protocol %r is not supported (http/protobuf or grpc); using http/protobuf",
                    asked,
                )
            protocol = "http/protobuf"
    endpoint = telemetry.otlp_endpoint
    if endpoint is not None and protocol == "http/protobuf":
        base = endpoint.rstrip("/")
        endpoint = base if base.endswith("/v1/traces") else f"{base}/v1/traces"
    return ExportSettings(protocol, endpoint, telemetry.service_name, dict(telemetry.headers))


class Telemetry:
    """The running trace pipeline; `shutdown` exports what is still queued and stops it."""

    def __init__(self, provider: TracerProvider, settings: ExportSettings) -> None:
        self.provider = provider
        self.settings = settings

    def shutdown(self) -> None:
        tracing.install(None)
        try:
            self.provider.shutdown()  # flushes the batch processor, then closes the exporter
        except Exception:
            log.exception("stopping the trace exporter failed")


def start_telemetry(
    config: JunctionConfig, environ: Mapping[str, str] | None = None
) -> Telemetry | None:
    """Set up tracing when asked for (see the module docstring); None when it stays off.
    Call once per process, before the surfaces are built; `shutdown()` the result on exit."""
    env = os.environ if environ is None else environ
    settings = export_settings(config, env)
    if settings is None:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        exporter = _exporter(settings, env)
    except ImportError as exc:
        log.warning(
            "tracing is asked for but the OpenTelemetry SDK is not installed (%s); "
            "install junction-hub[otel] to export traces. Running without tracing.",
            exc,
        )
        return None

    from junction.version import __version__

    attributes: dict[str, str] = {"service.version": __version__}
    if settings.service_name is not None:
        attributes["service.name"] = settings.service_name
    resource = Resource.create(attributes)
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracing.install(_Tracer(provider.get_tracer("junction", __version__)))
    log.info(
        "tracing: OTLP %s to %s",
        settings.protocol,
        settings.endpoint or "the OTEL_EXPORTER_OTLP_* endpoint",
    )
    return Telemetry(provider, settings)


def _exporter(settings: ExportSettings, environ: Mapping[str, str]) -> Any:
    headers: dict[str, str] | None = None
    if settings.headers:
        from opentelemetry.util.re import parse_env_headers

        from_env = environ.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or environ.get(
            "OTEL_EXPORTER_OTLP_HEADERS", ""
        )
        headers = {**parse_env_headers(from_env, liberal=True), **settings.headers}
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=settings.endpoint, headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=settings.endpoint, headers=headers)


# -- router_core.tracing's Tracer over the OpenTelemetry API --------------------------------


class _Span:
    """An OpenTelemetry span as `router_core.tracing.LiveSpan`."""

    __slots__ = ("context", "span")
    recording = True

    def __init__(self, span: OtelSpan, context: TraceContext) -> None:
        self.span = span
        self.context = context

    def rename(self, name: str) -> None:
        self.span.update_name(name)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self.span.set_attribute(key, value)

    def set_attributes(self, attributes: Attributes) -> None:
        self.span.set_attributes(attributes)

    def add_event(self, name: str, attributes: Attributes | None = None) -> None:
        self.span.add_event(name, attributes)

    def fail(self, error: BaseException | str) -> None:
        from opentelemetry.trace import StatusCode

        if isinstance(error, BaseException):
            self.span.set_attribute("error.type", type(error).__qualname__)
            self.span.record_exception(error)
            self.span.set_status(StatusCode.ERROR, str(error) or type(error).__qualname__)
        else:
            self.span.set_attribute("error.type", error)
            self.span.set_status(StatusCode.ERROR, error)

    def end(self) -> None:
        self.span.end()


class _Tracer:
    """`router_core.tracing.Tracer` over an OpenTelemetry tracer."""

    def __init__(self, tracer: OtelTracer) -> None:
        from opentelemetry import context, trace

        self._tracer = tracer
        self._trace = trace
        self._context = context
        self._kinds = {
            "internal": trace.SpanKind.INTERNAL,
            "server": trace.SpanKind.SERVER,
            "client": trace.SpanKind.CLIENT,
            "producer": trace.SpanKind.PRODUCER,
            "consumer": trace.SpanKind.CONSUMER,
        }

    def start(
        self, name: str, kind: SpanKind, attributes: Attributes | None, parent: TraceContext | None
    ) -> LiveSpan:
        trace = self._trace
        parent_context = None  # OpenTelemetry's current span (Junction's, or a library's)
        if parent is not None and parent.parent_id is not None:  # accepted from a caller
            state = trace.TraceState.from_header([parent.state]) if parent.state else None
            remote = trace.SpanContext(
                int(parent.trace_id, 16),
                int(parent.parent_id, 16),
                is_remote=True,
                trace_flags=trace.TraceFlags(int(parent.flags, 16)),
                trace_state=state,
            )
            parent_context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        span = self._tracer.start_span(
            name, context=parent_context, kind=self._kinds[kind], attributes=attributes
        )
        own = span.get_span_context()
        header = own.trace_state.to_header() if own.trace_state else ""
        context = TraceContext(
            format(own.trace_id, "032x"),
            format(own.span_id, "016x"),
            "01" if own.trace_flags.sampled else "00",
            header or None,
        )
        return _Span(span, context)

    def enter(self, span: LiveSpan) -> object:
        assert isinstance(span, _Span)
        return self._context.attach(self._trace.set_span_in_context(span.span))

    def leave(self, token: object) -> None:
        self._context.detach(token)  # type: ignore[arg-type]


__all__ = [
    "DEFAULT_SERVICE_NAME",
    "ExportSettings",
    "Telemetry",
    "export_settings",
    "start_telemetry",
]
