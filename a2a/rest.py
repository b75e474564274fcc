"""The hub's HTTP+JSON (REST) binding, for the hub endpoint and for every per-agent proxy.

It is only a binding: a request becomes the same 1.0 method call the JSON-RPC binding makes
(`HubCore.invoke`, `HubCore.open_stream`/`HubCore.stream_events`), so routing, the task store, push
configs, validation and error codes are shared, and only the framing differs:

- 1.0 (spec section 11): `POST {url}/message:send`, `GET {url}/tasks/{id}`, ..., bodies in 1.0
  ProtoJSON, errors as a `google.rpc.Status` (`{"error": {code, status, message, details}}`,
  HTTP status per section 5.4), SSE `data:` frames holding StreamResponses and an
  `event: error` frame for a failure after the stream began.
- 0.3: the same methods under `{url}/v1/...` with the 0.3 proto's JSON (`content` instead of
  `parts`, `file`/`data` part wrappers, `TASK_STATE_CANCELLED`, push configs named
  `tasks/{id}/pushNotificationConfigs/{cfg}`). 0.3 left the error body open; it gets the 1.0
  `error` object plus the top-level `type`/`message` that 0.3 clients (the official SDK's)
  map to an error class.

The version still comes from `A2A-Version` (missing = 0.3); asking for the other version's
paths is -32009, as calling the other version's method names is in JSON-RPC.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from a2a.asgi import Principal, allowed_agents, call_context, is_json, read_body, sse_response
from a2a.core import HubCore
from a2a.errors import (
    CONTENT_TYPE_NOT_SUPPORTED,
    HTTP_STATUS,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    VERSION_NOT_SUPPORTED,
    A2aError,
    error_body,
)
from a2a.routing import may_use, refused
from a2a.versions.common import STREAMING_METHODS, V03, V10, camel, protocol_version
from a2a.versions.rest03 import (
    push_create_from_rest03,
    result_to_rest03,
    send_params_from_rest03,
    state_from_rest03,
    stream_response_to_rest03,
)
from router_core.quota import RATE_LIMITED

Json = dict[str, Any]

MEDIA_TYPE = "application/json"
"""What the binding answers with, in both versions (spec 11.1; the TCK's HTTP_JSON-SVC-001)."""

PREFIXES = ("/a2a", "/a2a/agents/{name}")
"""Where the binding is mounted: the hub's interface URL and each per-agent proxy's."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One REST route: its verb and path (below the interface URL) and the 1.0 method it is."""

    method: str
    verb: str
    path: str


V10_OPERATIONS = (
    Operation("SendMessage", "POST", "/message:send"),
    Operation("SendStreamingMessage", "POST", "/message:stream"),
    Operation("CancelTask", "POST", "/tasks/{id}:cancel"),
    Operation("SubscribeToTask", "POST", "/tasks/{id}:subscribe"),
    Operation("SubscribeToTask", "GET", "/tasks/{id}:subscribe"),
    Operation("GetTask", "GET", "/tasks/{id}"),
    Operation("ListTasks", "GET", "/tasks"),
    Operation("CreateTaskPushNotificationConfig", "POST", "/tasks/{id}/pushNotificationConfigs"),
    Operation("ListTaskPushNotificationConfigs", "GET", "/tasks/{id}/pushNotificationConfigs"),
    Operation(
        "GetTaskPushNotificationConfig", "GET", "/tasks/{id}/pushNotificationConfigs/{configId}"
    ),
    Operation(
        "DeleteTaskPushNotificationConfig",
        "DELETE",
        "/tasks/{id}/pushNotificationConfigs/{configId}",
    ),
    Operation("GetExtendedAgentCard", "GET", "/extendedAgentCard"),
)
"""Spec section 11.3. `:cancel`/`:subscribe` come before `/tasks/{id}`, which would match them."""

V03_OPERATIONS = (
    *(
        Operation(op.method, op.verb, "/v1" + op.path)
        for op in V10_OPERATIONS
        if op.method != "GetExtendedAgentCard"
    ),
    Operation("GetExtendedAgentCard", "GET", "/v1/card"),
)
"""The 0.3 spec's table (its 3.5.6): the same resources under `/v1`; the card is `/v1/card`."""

_QUERY_INTS = frozenset({"historyLength", "pageSize"})


class RestBinding:
    """Turns REST requests into the core's method calls and their results back into REST."""

    def __init__(self, core: HubCore, principal: Principal) -> None:
        self.core = core
        self.principal = principal

    def endpoint(self, op: Operation, legacy: bool) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await self.serve(request, op, legacy)

        return serve

    async def serve(self, request: Request, op: Operation, legacy: bool) -> Response:
        """Answer one REST request: JSON, an SSE stream, or an error body with its HTTP status."""
        core = self.core
        try:
            version = protocol_version(request.headers.get("a2a-version"))
            expected = V03 if legacy else V10
            if version != expected:
                raise A2aError(
                    VERSION_NOT_SUPPORTED,
                    f"A2A version {version} is not served at this path (it serves {expected}:"
                    f" {'/v1/...' if expected == V03 else 'paths without /v1'})",
                    {"requestedVersion": version, "path": request.url.path},
                )
            agent = request.path_params.get("name")
            allowed = allowed_agents(request)
            if agent is not None and core.visible(agent, allowed) is None:
                if not may_use(allowed, agent):
                    refused(agent)
                raise A2aError(METHOD_NOT_FOUND, f"no agent {agent!r}", {"agent": agent})
            params = await self._params(request, op, legacy)
            ctx = call_context(
                request,
                self.principal,
                core.settings.public_url,
                version=version,
                agent=agent,
                params=params,
            )
            if op.method in STREAMING_METHODS:
                relay, queue, first = await core.open_stream(op.method, ctx)
                events = core.stream_events(relay, queue, first, legacy=legacy)
                return sse_response(_frames(events, legacy))
            result = await core.invoke(op.method, ctx)
        except A2aError as exc:
            return error_response(exc, legacy)
        body = result_to_rest03(op.method, result) if legacy else _v10_result(result)
        return _json(body)

    async def _params(self, request: Request, op: Operation, legacy: bool) -> Json:
        """The 1.0 params of `op`, from the path, the query string and (for POST) the body."""
        path = request.path_params
        method = op.method
        if method in ("SendMessage", "SendStreamingMessage"):
            body = await self._body(request, required=True)
            return send_params_from_rest03(body) if legacy else body
        if method in ("GetTask", "ListTasks", "ListTaskPushNotificationConfigs"):
            params = _query(request)
            if "id" in path:
                params["taskId" if method == "ListTaskPushNotificationConfigs" else "id"] = path[
                    "id"
                ]
            if legacy and isinstance(params.get("status"), str):
                params["status"] = state_from_rest03(params["status"])
            return params
        if method == "CancelTask":
            body = await self._body(request, required=False)
            params = {"metadata": body["metadata"]} if body.get("metadata") else {}
            return {**params, "id": path["id"]}
        if method == "SubscribeToTask":
            return {"id": path["id"]}
        if method == "CreateTaskPushNotificationConfig":
            body = await self._body(request, required=True)
            if legacy:
                return push_create_from_rest03(body, path["id"])
            return {**body, "taskId": path["id"]}
        if method in ("GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig"):
            return {"taskId": path["id"], "id": path["configId"]}
        return {}  # GetExtendedAgentCard

    async def _body(self, request: Request, *, required: bool) -> Json:
        """The JSON object body; an optional one may be left out (no body, no Content-Type),
        but a body that is there must say it is JSON."""
        content_type = request.headers.get("content-type")
        if content_type is not None and not is_json(content_type):
            raise A2aError(CONTENT_TYPE_NOT_SUPPORTED, "the request's Content-Type is not JSON")
        body = await read_body(request, self.core.settings.max_body_bytes)
        if body is None:
            raise A2aError(INVALID_REQUEST, "request body too large")
        if not body.strip() and not required:
            return {}
        if content_type is None:
            raise A2aError(
                CONTENT_TYPE_NOT_SUPPORTED, "the request has no Content-Type (application/json)"
            )
        if not body.strip():
            raise A2aError(INVALID_REQUEST, "a JSON object body is required")
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise A2aError(INVALID_REQUEST, f"the body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise A2aError(INVALID_REQUEST, "the body must be a JSON object")
        return value


# --------------------------------------------------------------------------- framing


def error_response(exc: A2aError, legacy: bool = False) -> Response:
    response = _json(error_body(exc, legacy), status=HTTP_STATUS.get(exc.code, 400))
    if exc.code == RATE_LIMITED:
        response.headers["Retry-After"] = str(exc.metadata.get("retryAfter", 1))
    return response


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE)


def _v10_result(result: Any) -> Any:
    return {} if result is None else result  # DeleteTaskPushNotificationConfig: Empty


async def _frames(
    events: AsyncGenerator[Json | A2aError, None], legacy: bool
) -> AsyncIterator[dict[str, str]]:
    """SSE frames: each `data` one StreamResponse; a failure mid-stream is an `error` event."""
    async with contextlib.aclosing(events):
        async for item in events:
            if isinstance(item, A2aError):
                yield {"event": "error", "data": orjson.dumps(error_body(item, legacy)).decode()}
                return
            event = stream_response_to_rest03(item) if legacy else item
            yield {"data": orjson.dumps(event).decode()}


def _query(request: Request) -> Json:
    """Query parameters as 1.0 params (camelCase names per spec 11.5; pydantic coerces types).

    Numbers are converted here so a bad one is refused as the field it is, like a body's.
    """
    params: Json = {}
    for key, value in request.query_params.items():
        if key == "tenant":
            continue
        name = camel(key)
        if name in _QUERY_INTS:
            try:
                params[name] = int(value)
            except ValueError:
                raise A2aError(
                    INVALID_PARAMS,
                    "Invalid params",
                    violations=[{"field": name, "description": "must be an integer"}],
                ) from None
        else:
            params[name] = value
    return params


__all__ = [
    "MEDIA_TYPE",
    "V03_OPERATIONS",
    "V10_OPERATIONS",
    "Operation",
    "RestBinding",
    "error_response",
]
