"""The HTTP+SSE transport of 2024-11-05 beside Streamable HTTP, for clients that speak only it.

`GET {path}/sse` opens the event stream (its first event names where to POST), and
`POST {path}/messages/?session_id=...` carries the client's messages: the SDK's own
`SseServerTransport`, serving the same server (and so every relay) as Streamable HTTP. As
there, a session answers only the principal that opened it (Junction's access guard sets
`scope["state"]["principal"]`); another caller's POST gets 404, as an unknown session does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from mcp.server import Server
from mcp.server.models import InitializationOptions
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

_SESSION = re.compile(rb"session_id=([0-9a-f]{32})")


class _Asgi:
    """An ASGI callable a `Route` passes the raw scope to (a plain function it would wrap as
    a request handler): the exact path, no redirect to a trailing slash as a `Mount` does."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def _principal(scope: Scope) -> Any:
    state = scope.get("state")
    return state.get("principal") if isinstance(state, dict) else None


def add_sse_endpoint(
    app: Starlette,
    server: Server[Any],
    path: str,
    options: InitializationOptions,
    *,
    security: TransportSecuritySettings | None,
    max_body: int,
) -> None:
    """Serve `server` over HTTP+SSE at `{path}/sse` and `{path}/messages/` of `app`."""
    sse = SseServerTransport(
        f"{path}/messages/", security_settings=security, max_request_body_size=max_body
    )
    owners: dict[str, Any] = {}
    """Session id (hex) -> the principal that opened it, while its stream is open."""

    async def stream(scope: Scope, receive: Receive, send: Send) -> None:
        principal, opened = _principal(scope), list[str]()

        async def remember(message: Message) -> None:
            if principal and not opened and message["type"] == "http.response.body":
                found = _SESSION.search(message.get("body", b""))
                if found:
                    opened.append(found.group(1).decode())
                    owners[opened[0]] = principal
            await send(message)

        try:
            async with sse.connect_sse(scope, receive, remember) as (read, write):
                await server.run(read, write, options)
        except ValueError:
            return  # refused before the stream opened; the refusal was sent
        finally:
            for session in opened:
                owners.pop(session, None)

    async def messages(scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        owner = owners.get((query.get("session_id") or [""])[0])
        if owner is not None and owner != _principal(scope):
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"Could not find session"})
            return
        await sse.handle_post_message(scope, receive, send)

    app.router.routes.append(Route(f"{path}/sse", _Asgi(stream), methods=["GET"]))
    app.router.routes.append(Mount(f"{path}/messages", app=messages))
