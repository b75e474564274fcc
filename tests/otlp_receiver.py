"""A real OTLP trace receiver on loopback, for the telemetry tests: OTLP/HTTP (POST /v1/traces,
`application/x-protobuf`) on aiohttp's server, and OTLP/gRPC (`TraceService/Export`) on grpcio,
both decoding with the official `opentelemetry-proto` messages.

No OpenTelemetry Collector binary is installable from PyPI, npm or Debian (checked: Debian has
only the Go SDK sources, `golang-opentelemetry-otel-dev`), so the receiver is built from the
protocol's own generated messages and server libraries rather than from Junction's code.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

KINDS = {
    SpanProto.SPAN_KIND_INTERNAL: "internal",
    SpanProto.SPAN_KIND_SERVER: "server",
    SpanProto.SPAN_KIND_CLIENT: "client",
    SpanProto.SPAN_KIND_PRODUCER: "producer",
    SpanProto.SPAN_KIND_CONSUMER: "consumer",
}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which is None:
        return None
    return getattr(value, which)


@dataclass(frozen=True)
class Span:
    """One received span, decoded."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    events: list[str]
    status: int
    """0 unset, 1 ok, 2 error."""
    resource: dict[str, Any]
    scope: str


@dataclass
class Receiver:
    """What arrived, with the request facts a test may check."""

    url: str = ""
    spans: list[Span] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        Span(
                            name=span.name,
                            kind=KINDS.get(span.kind, "unspecified"),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            events=[e.name for e in span.events],
                            status=span.status.code,
                            resource=resource,
                            scope=scope_spans.scope.name,
                        )
                    )
        self._arrived.set()

    async def wait_for(self, found: Callable[[list[Span]], bool], timeout: float = 30) -> None:
        """Until `found(spans)` holds (exports arrive in batches, on the exporter's schedule)."""
        async with asyncio.timeout(timeout):
            while not found(self.spans):
                self._arrived.clear()
                await self._arrived.wait()

    def named(self, name: str) -> list[Span]:
        return [s for s in self.spans if s.name == name]

    def children(self, parent: Span) -> list[Span]:
        return [s for s in self.spans if s.parent_id == parent.span_id]


@asynccontextmanager
async def http_receiver() -> AsyncIterator[Receiver]:
    """OTLP/HTTP with protobuf bodies on 127.0.0.1 (the base URL is `receiver.url`)."""
    receiver = Receiver()

    async def traces(request: web.Request) -> web.Response:
        receiver.content_types.append(request.content_type)
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415, text="application/x-protobuf only")
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        message = trace_service_pb2.ExportTraceServiceRequest()
        message.ParseFromString(body)
        receiver.take(message)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.receiver.take(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@asynccontextmanager
async def grpc_receiver() -> AsyncIterator[Receiver]:
    """OTLP/gRPC on 127.0.0.1, plaintext (the endpoint is `receiver.url`)."""
    receiver = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(receiver), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await server.stop(None)
