"""The hub's JSON-RPC binding (1.0 and 0.3), at the hub's URL and each per-agent proxy's.

Only framing: the envelope is checked here (`transports.dispatch.check_request`), a 0.3 call
is lifted to its 1.0 method (`a2a.versions.jsonrpc03`), and the call goes to the core's
`invoke` / `open_stream`; results and errors go back in the caller's version, streams as SSE.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from a2a.asgi import Principal, allowed_agents, call_context, is_json, read_body, sse_response
from a2a.core import HubCore
from a2a.errors import (
    CONTENT_TYPE_NOT_SUPPORTED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    VERSION_NOT_SUPPORTED,
    A2aError,
    error_object,
)
from a2a.routing import may_use, refused
from a2a.versions.common import METHODS_V10, STREAMING_METHODS, V03, V10, protocol_version
from a2a.versions.jsonrpc03 import METHODS_V03, event_to_rpc03, params_from_rpc03, result_to_rpc03
from transports.dispatch import check_request

Json = dict[str, Any]


class JsonRpcBinding:
    """Turns JSON-RPC POSTs into the core's method calls and their results back."""

    def __init__(self, core: HubCore, principal: Principal) -> None:
        self.core = core
        self.principal = principal

    async def serve_hub(self, request: Request) -> Response:
        """`POST /a2a`: the hub routes."""
        return await self.handle(request, None)

    async def serve_agent(self, request: Request) -> Response:
        """`POST /a2a/agents/{name}`: one agent, as if the caller spoke to it."""
        name = request.path_params["name"]
        allowed = allowed_agents(request)
        if self.core.visible(name, allowed) is None:
            if not may_use(allowed, name):
                refused(name)
            missing = A2aError(METHOD_NOT_FOUND, f"no agent {name!r}", {"agent": name})
            reply = _reply(_error(None, missing, V10))
            reply.status_code = 404  # no such endpoint, said in JSON-RPC
            return reply
        return await self.handle(request, name)

    async def handle(self, request: Request, agent: str | None) -> Response:
        """Answer one JSON-RPC POST: a JSON reply, or an SSE stream for the streaming methods."""
        try:
            version = protocol_version(request.headers.get("a2a-version"))
        except A2aError as exc:
            return _reply(_error(None, exc, V10))
        content_type = request.headers.get("content-type")
        if not is_json(content_type):
            reason = "not JSON" if content_type is not None else "missing (application/json)"
            refusal = A2aError(
                CONTENT_TYPE_NOT_SUPPORTED, f"the request's Content-Type is {reason}"
            )
            return _reply(_error(None, refusal, version))
        body = await read_body(request, self.core.settings.max_body_bytes)
        if body is None:
            return _reply(
                _error(None, A2aError(INVALID_REQUEST, "request body too large"), version)
            )
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _reply(_error(None, A2aError(PARSE_ERROR, f"Parse error: {exc}"), version))
        if isinstance(message, list):
            refusal = A2aError(INVALID_REQUEST, "batch requests are not supported")
            return _reply(_error(None, refusal, version))
        problem = check_request(message)
        if problem is not None:
            error = problem["error"]
            return _reply(_error(problem["id"], A2aError(error["code"], error["message"]), version))
        request_id = message.get("id")
        try:
            method, params = _method_v10(version, message["method"], message.get("params"))
        except A2aError as exc:
            return _reply(_error(request_id, exc, version))
        ctx = call_context(
            request,
            self.principal,
            self.core.settings.public_url,
            version=version,
            agent=agent,
            params=params,
        )
        if method in STREAMING_METHODS:
            try:
                relay, queue, first = await self.core.open_stream(method, ctx)
            except A2aError as exc:
                return _reply(_error(request_id, exc, version))
            return sse_response(
                _frames(
                    request_id,
                    version,
                    self.core.stream_events(relay, queue, first, legacy=version == V03),
                )
            )
        try:
            result = await self.core.invoke(method, ctx)
        except A2aError as exc:
            if "id" not in message:
                return Response(status_code=204)
            return _reply(_error(request_id, exc, version))
        if "id" not in message:
            return Response(status_code=204)
        if version == V03:
            result = result_to_rpc03(method, result)
        return _reply({"jsonrpc": "2.0", "id": request_id, "result": result})


def _method_v10(version: str, method: str, params: Any) -> tuple[str, Json]:
    """The 1.0 method a call is and its 1.0 params; -32602, -32601 or -32009 if it is none."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise A2aError(INVALID_PARAMS, "params must be an object")
    if version == V03:
        if method in METHODS_V03:
            return METHODS_V03[method], params_from_rpc03(method, params)
        other_version = method in METHODS_V10
    elif method in METHODS_V10:
        return method, params
    else:
        other_version = method in METHODS_V03
    if other_version:
        raise A2aError(
            VERSION_NOT_SUPPORTED,
            f"method {method!r} does not belong to A2A version {version} (the A2A-Version header)",
            {"requestedVersion": version, "method": method},
        )
    raise A2aError(METHOD_NOT_FOUND, "Method not found")


def _error(request_id: Any, exc: A2aError, version: str) -> Json:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": error_object(
            exc.code, exc.message, version, exc.metadata, violations=exc.violations
        ),
    }


class _JsonReply(Response):
    """A JSON-RPC reply with its two headers built directly (Response's general header
    handling shows up in the hub's per-request profile)."""

    def __init__(self, body: bytes) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
        ]


def _reply(reply: Json) -> Response:
    return _JsonReply(orjson.dumps(reply))


async def _frames(
    request_id: Any, version: str, events: AsyncGenerator[Json | A2aError, None]
) -> AsyncIterator[dict[str, str]]:
    """SSE frames, each a JSON-RPC response; a failure mid-stream is an error response (an
    `error` event in 1.0)."""
    async with contextlib.aclosing(events):
        async for item in events:
            if isinstance(item, A2aError):
                data = orjson.dumps(_error(request_id, item, version)).decode()
                yield {"event": "error", "data": data} if version == V10 else {"data": data}
                return
            result = item if version == V10 else event_to_rpc03(item)
            yield {
                "data": orjson.dumps(
                    {"jsonrpc": "2.0", "id": request_id, "result": result}
                ).decode()
            }
