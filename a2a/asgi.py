"""What the hub's HTTP bindings share: reading the caller off the request (set by the access
middleware), the body under a size limit, bare ASGI endpoints and SSE responses."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from a2a.core import CallContext
from a2a.credentials import CALLER_TOKEN

ANONYMOUS = "anonymous"

Principal = Callable[[Request], str]
"""Who is calling, from the request: the task store owns tasks by it."""


def allowed_agents(request: Request) -> tuple[str, ...] | None:
    """The agent globs the auth middleware put in `scope["state"]["allowed_a2a_agents"]`, or
    None when the caller may use every agent."""
    state = request.scope.get("state") or {}
    globs = state.get("allowed_a2a_agents") if isinstance(state, dict) else None
    return None if globs is None else tuple(globs)


def default_principal(request: Request) -> str:
    """The caller set by the auth middleware (`scope["state"]["principal"]`), else anonymous."""
    state = request.scope.get("state") or {}
    principal = state.get("principal") if isinstance(state, dict) else None
    return str(principal) if principal else ANONYMOUS


def base_url(request: Request, public_url: str | None) -> str:
    """The hub's URL as callers reach it: `public_url` when set, else the request's."""
    if public_url:
        return public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def call_context(
    request: Request,
    principal: Principal,
    public_url: str | None,
    *,
    version: str,
    agent: str | None,
    params: dict[str, Any],
) -> CallContext:
    """The core's view of one call (the base URL is worked out only if a card needs it)."""
    base = functools.partial(base_url, request, public_url)
    return CallContext(version, principal(request), base, agent, params, allowed_agents(request))


def is_json(content_type: str | None) -> bool:
    """Whether a request's `Content-Type` is JSON (`application/json`, or any `+json` type
    such as `application/a2a+json`). A request without one is not: both bindings require the
    header on a body (RFC 9110 lets a server take such a body as `application/octet-stream`)."""
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is over `limit` bytes (the rest is not read).

    Read straight off `receive`: Starlette's `Request.body()` runs an async generator per
    request, which shows in the hub's per-request profile."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def sse_response(frames: AsyncIterator[dict[str, str]]) -> Response:
    """A stream of SSE frames, kept alive every 15 s and never cached or buffered by proxies."""
    return EventSourceResponse(
        frames, ping=15, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


class AsgiEndpoint:
    """A route as a bare ASGI app: Starlette wraps function endpoints in a per-call
    request/response adapter (its own exception-handler layer), which the hot path skips;
    exceptions still reach the application's handlers."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state")
        # The caller's verified bearer token, for agents that take it (`forward_caller`).
        token = state.get("subject_token") if isinstance(state, dict) else None
        reset = CALLER_TOKEN.set(token) if token else None
        try:
            response = await self.endpoint(Request(scope, receive))
            await response(scope, receive, send)
        finally:
            if reset is not None:
                CALLER_TOKEN.reset(reset)
