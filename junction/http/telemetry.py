"""The server span of every HTTP request and WebSocket (OpenTelemetry HTTP semantic conventions),
as a pure ASGI middleware that is only in the stack when tracing is on.

It sits inside `RequestMetrics`, which has already made the caller's `traceparent` current
(`router_core.tracing`): the span is that caller's child (or a new trace's root), and while the
request runs it is the current span, so everything the request does (model calls, MCP tool
calls, A2A relays) hangs under it and upstreams are told it is their parent.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from junction.http.security import surface_of
from router_core import tracing


class ServerSpans:
    """Pure ASGI middleware: one `server` span per HTTP request or WebSocket connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path: str = scope["path"]
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.path": path,
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
            "junction.surface": surface_of(path),
        }
        if scope.get("query_string"):
            attributes["url.query"] = "REDACTED"  # may carry a key; its presence is what counts
        server = scope.get("server")
        if server is not None and server[1] is not None:
            attributes["server.address"] = str(server[0])
            attributes["server.port"] = int(server[1])
        client = scope.get("client")
        if client is not None:
            attributes["client.address"] = str(client[0])
        for name, value in scope["headers"]:
            if name == b"user-agent":
                attributes["user_agent.original"] = value.decode("latin-1")
                break
        status = 0

        async def send_and_see(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            elif kind == "websocket.accept":
                status = 101
            await send(message)

        with tracing.span(method, "server", attributes) as span:
            try:
                await self.app(scope, receive, send_and_see)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:  # the template, never the raw path: span names stay few
                    span.set_attribute("http.route", route)
                    span.rename(f"{method} {route}")
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.fail(str(status))


def server_spans() -> list[Middleware]:
    """The middleware when tracing is on (`junction.telemetry` installed a tracer), else none:
    an untraced server pays nothing for it."""
    return [Middleware(ServerSpans)] if tracing.enabled() else []


__all__ = ["ServerSpans", "server_spans"]
