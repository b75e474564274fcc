"""The hub's HTTP+JSON (REST) binding, for the hub endpoint and for every per-agent proxy.

It is only a binding: a request becomes the same 1.0 method call the JSON-RPC binding makes
(`Hub.invoke`, `Hub.open_stream`/`Hub.stream_events`), so routing, the task store, push
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
import functools
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from a2a import compat
from a2a.errors import (
    CONTENT_TYPE_NOT_SUPPORTED,
    EXTENDED_CARD_NOT_CONFIGURED,
    EXTENSION_SUPPORT_REQUIRED,
    HTTP_STATUS,
    INTERNAL_ERROR,
    INVALID_AGENT_RESPONSE,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    PUSH_NOT_SUPPORTED,
    TASK_NOT_CANCELABLE,
    TASK_NOT_FOUND,
    UNSUPPORTED_OPERATION,
    VERSION_NOT_SUPPORTED,
    A2aError,
    error_object,
)
from a2a.hub import CallContext, Hub

Json = dict[str, Any]

MEDIA_TYPE = "application/a2a+json"
"""What the 1.0 binding answers with (spec 11.1); 0.3 required plain `application/json`."""

PREFIXES = ("/a2a", "/a2a/agents/{name}")
"""Where the binding is mounted: the hub's interface URL and each per-agent proxy's."""

GRPC_STATUS: dict[int, str] = {
    TASK_NOT_FOUND: "NOT_FOUND",
    METHOD_NOT_FOUND: "NOT_FOUND",
    TASK_NOT_CANCELABLE: "FAILED_PRECONDITION",
    PUSH_NOT_SUPPORTED: "FAILED_PRECONDITION",
    UNSUPPORTED_OPERATION: "FAILED_PRECONDITION",
    EXTENDED_CARD_NOT_CONFIGURED: "FAILED_PRECONDITION",
    EXTENSION_SUPPORT_REQUIRED: "FAILED_PRECONDITION",
    VERSION_NOT_SUPPORTED: "FAILED_PRECONDITION",
    CONTENT_TYPE_NOT_SUPPORTED: "INVALID_ARGUMENT",
    INVALID_PARAMS: "INVALID_ARGUMENT",
    INVALID_REQUEST: "INVALID_ARGUMENT",
    PARSE_ERROR: "INVALID_ARGUMENT",
    INVALID_AGENT_RESPONSE: "INTERNAL",
    INTERNAL_ERROR: "INTERNAL",
}
"""The `status` of a `google.rpc.Status` error body (spec section 5.4)."""

ERROR_TYPES: dict[int, str] = {
    TASK_NOT_FOUND: "TaskNotFoundError",
    TASK_NOT_CANCELABLE: "TaskNotCancelableError",
    PUSH_NOT_SUPPORTED: "PushNotificationNotSupportedError",
    UNSUPPORTED_OPERATION: "UnsupportedOperationError",
    CONTENT_TYPE_NOT_SUPPORTED: "ContentTypeNotSupportedError",
    INVALID_AGENT_RESPONSE: "InvalidAgentResponseError",
    EXTENDED_CARD_NOT_CONFIGURED: "ExtendedAgentCardNotConfiguredError",
    EXTENSION_SUPPORT_REQUIRED: "ExtensionSupportRequiredError",
    VERSION_NOT_SUPPORTED: "VersionNotSupportedError",
    INVALID_PARAMS: "InvalidParamsError",
    INVALID_REQUEST: "InvalidRequestError",
    METHOD_NOT_FOUND: "MethodNotFoundError",
    PARSE_ERROR: "JSONParseError",
    INTERNAL_ERROR: "InternalError",
}
"""The error class name a 0.3 REST error body carries in `type`."""


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
_PUSH_FIELDS = frozenset({"id", "taskId", "url", "token", "authentication"})


def rest_routes(hub: Hub) -> list[BaseRoute]:
    """Starlette routes for both versions, under the hub's URL and each per-agent proxy's."""
    binding = RestBinding(hub)
    routes: list[BaseRoute] = []
    for prefix in PREFIXES:
        for legacy, operations in ((False, V10_OPERATIONS), (True, V03_OPERATIONS)):
            for op in operations:
                routes.append(
                    Route(prefix + op.path, binding.endpoint(op, legacy), methods=[op.verb])
                )
    return routes


class RestBinding:
    """Turns REST requests into the hub's method calls and their results back into REST."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def endpoint(self, op: Operation, legacy: bool) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await self.serve(request, op, legacy)

        return serve

    async def serve(self, request: Request, op: Operation, legacy: bool) -> Response:
        """Answer one REST request: JSON, an SSE stream, or an error body with its HTTP status."""
        hub = self.hub
        try:
            version = compat.protocol_version(request.headers.get("a2a-version"))
            expected = compat.V03 if legacy else compat.V10
            if version != expected:
                raise A2aError(
                    VERSION_NOT_SUPPORTED,
                    f"A2A version {version} is not served at this path (it serves {expected}:"
                    f" {'/v1/...' if expected == compat.V03 else 'paths without /v1'})",
                    {"requestedVersion": version, "path": request.url.path},
                )
            agent = request.path_params.get("name")
            if agent is not None and hub.registry.get(agent) is None:
                raise A2aError(METHOD_NOT_FOUND, f"no agent {agent!r}", {"agent": agent})
            params = await self._params(request, op, legacy)
            base = functools.partial(hub.base_url, request)
            ctx = CallContext(version, hub.principal(request), base, agent, params)
            if op.method in compat.STREAMING_METHODS:
                relay, queue, first = await hub.open_stream(op.method, ctx)
                return EventSourceResponse(
                    _frames(hub.stream_events(relay, queue, first), legacy),
                    ping=15,
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                )
            result = await hub.invoke(op.method, ctx)
        except A2aError as exc:
            return error_response(exc, legacy)
        body = result_to_v03(op.method, result) if legacy else _v10_result(result)
        return _json(body, legacy)

    async def _params(self, request: Request, op: Operation, legacy: bool) -> Json:
        """The 1.0 params of `op`, from the path, the query string and (for POST) the body."""
        path = request.path_params
        method = op.method
        if method in ("SendMessage", "SendStreamingMessage"):
            body = await self._body(request, required=True)
            return send_params_to_v10(body) if legacy else body
        if method in ("GetTask", "ListTasks", "ListTaskPushNotificationConfigs"):
            params = _query(request)
            if "id" in path:
                params["taskId" if method == "ListTaskPushNotificationConfigs" else "id"] = path[
                    "id"
                ]
            if legacy and isinstance(params.get("status"), str):
                params["status"] = _state_to_v10(params["status"])
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
                return push_create_to_v10(body, path["id"])
            return {**body, "taskId": path["id"]}
        if method in ("GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig"):
            return {"taskId": path["id"], "id": path["configId"]}
        return {}  # GetExtendedAgentCard

    async def _body(self, request: Request, *, required: bool) -> Json:
        body = await request.body()
        if len(body) > self.hub.settings.max_body_bytes:
            raise A2aError(INVALID_REQUEST, "request body too large")
        if not body.strip():
            if required:
                raise A2aError(INVALID_REQUEST, "a JSON object body is required")
            return {}
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise A2aError(INVALID_REQUEST, f"the body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise A2aError(INVALID_REQUEST, "the body must be a JSON object")
        return value


# --------------------------------------------------------------------------- framing


def error_body(exc: A2aError, legacy: bool = False) -> Json:
    """A `google.rpc.Status` error body (spec 11.6); 0.3 also gets `type` and `message`."""
    status = HTTP_STATUS.get(exc.code, 400)
    details = error_object(
        exc.code, exc.message, compat.V10, exc.metadata, violations=exc.violations
    )["data"]
    body: Json = {
        "error": {
            "code": status,
            "status": GRPC_STATUS.get(exc.code, "UNKNOWN"),
            "message": exc.message,
            "details": details,
        }
    }
    if legacy:
        body["type"] = ERROR_TYPES.get(exc.code, "InternalError")
        body["message"] = exc.message
    return body


def error_response(exc: A2aError, legacy: bool = False) -> Response:
    return _json(error_body(exc, legacy), legacy, status=HTTP_STATUS.get(exc.code, 400))


def _json(body: Any, legacy: bool, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json" if legacy else MEDIA_TYPE,
    )


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
            event = stream_response_to_v03(item) if legacy else item
            yield {"data": orjson.dumps(event).decode()}


def _query(request: Request) -> Json:
    """Query parameters as 1.0 params (camelCase names per spec 11.5; pydantic coerces types).

    Numbers are converted here so a bad one is refused as the field it is, like a body's.
    """
    params: Json = {}
    for key, value in request.query_params.items():
        if key == "tenant":
            continue
        name = _camel(key)
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


# --------------------------------------------------------------------------- 0.3 proto JSON

_SNAKE = re.compile(r"_([a-z0-9])")
_OPAQUE = frozenset({"metadata", "data", "params"})
"""Struct-valued fields: their contents are the caller's, never renamed."""


def _camel(name: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def _camelize(value: Any) -> Any:
    """0.3 REST clients may send proto field names (`message_id`) or JSON names (`messageId`)."""
    if isinstance(value, list):
        return [_camelize(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {_camel(k): (v if k in _OPAQUE else _camelize(v)) for k, v in value.items()}


def _state_to_v10(state: Any) -> Any:
    if state == "TASK_STATE_CANCELLED":
        return "TASK_STATE_CANCELED"
    return compat.state_to_v10(state)


def _state_to_v03(state: Any) -> Any:
    return "TASK_STATE_CANCELLED" if state == "TASK_STATE_CANCELED" else state


def part_to_v10(part: Any) -> Any:
    """A 0.3 proto Part (`text` | `file{fileWithUri|fileWithBytes}` | `data{data}`) as 1.0."""
    if not isinstance(part, dict):
        return part
    out: Json = {}
    if "text" in part:
        out["text"] = part["text"]
    elif isinstance(part.get("file"), dict):
        file = part["file"]
        if "fileWithBytes" in file:
            out["raw"] = file["fileWithBytes"]
        elif "fileWithUri" in file:
            out["url"] = file["fileWithUri"]
        if file.get("mimeType"):
            out["mediaType"] = file["mimeType"]
        if file.get("name"):
            out["filename"] = file["name"]
    elif "data" in part:
        data = part["data"]
        out["data"] = data.get("data", {}) if isinstance(data, dict) else data
    else:
        return part  # validation names what is missing
    if part.get("metadata"):
        out["metadata"] = part["metadata"]
    return out


def part_to_v03(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    out: Json
    if "text" in part:
        out = {"text": part["text"]}
    elif "raw" in part or "url" in part:
        file: Json = (
            {"fileWithBytes": part["raw"]} if "raw" in part else {"fileWithUri": part["url"]}
        )
        if part.get("mediaType"):
            file["mimeType"] = part["mediaType"]
        if part.get("filename"):
            file["name"] = part["filename"]
        out = {"file": file}
    elif "data" in part:
        data = part["data"]
        out = {"data": {"data": data if isinstance(data, dict) else {"value": data}}}
    else:
        return part
    if part.get("metadata"):
        out["metadata"] = part["metadata"]
    return out


def message_to_v10(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k != "content"}
    parts = message.get("content", message.get("parts"))
    if isinstance(parts, list):
        out["parts"] = [part_to_v10(p) for p in parts]
    role = message.get("role")
    if role in ("user", "agent"):
        out["role"] = f"ROLE_{str(role).upper()}"
    return out


def message_to_v03(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k not in ("parts", "referenceTaskIds")}
    out["content"] = [part_to_v03(p) for p in message.get("parts") or []]
    return out


def _status_to_v03(status: Any) -> Any:
    if not isinstance(status, dict):
        return status
    out = dict(status)
    out["state"] = _state_to_v03(status.get("state"))
    if isinstance(status.get("message"), dict):
        out["message"] = message_to_v03(status["message"])
    return out


def _artifact_to_v03(artifact: Any) -> Any:
    if not isinstance(artifact, dict):
        return artifact
    out = dict(artifact)
    out["parts"] = [part_to_v03(p) for p in artifact.get("parts") or []]
    return out


def task_to_v03(task: Any) -> Any:
    """A 1.0 Task as the 0.3 proto's Task JSON."""
    if not isinstance(task, dict):
        return task
    out = dict(task)
    out["status"] = _status_to_v03(task.get("status"))
    if isinstance(task.get("artifacts"), list):
        out["artifacts"] = [_artifact_to_v03(a) for a in task["artifacts"]]
    if isinstance(task.get("history"), list):
        out["history"] = [message_to_v03(m) for m in task["history"]]
    return out


def stream_response_to_v03(event: Json) -> Json:
    """A 1.0 StreamResponse as the 0.3 proto's (status updates get their `final` flag)."""
    if "task" in event:
        return {"task": task_to_v03(event["task"])}
    if "message" in event:
        return {"message": message_to_v03(event["message"])}
    if "statusUpdate" in event:
        update = dict(event["statusUpdate"])
        state = (update.get("status") or {}).get("state")
        update["final"] = compat.is_terminal(state) or state in (
            "TASK_STATE_INPUT_REQUIRED",
            "TASK_STATE_AUTH_REQUIRED",
        )
        update["status"] = _status_to_v03(update.get("status"))
        return {"statusUpdate": update}
    update = dict(event.get("artifactUpdate") or {})
    update["artifact"] = _artifact_to_v03(update.get("artifact"))
    return {"artifactUpdate": update}


def push_config_to_v03(config: Json) -> Json:
    """A 1.0 TaskPushNotificationConfig as the 0.3 proto's, named by resource path."""
    wrapped = compat.push_config_to_v03(config)
    return {
        "name": f"tasks/{config.get('taskId', '')}/pushNotificationConfigs/{config.get('id', '')}",
        "pushNotificationConfig": wrapped["pushNotificationConfig"],
    }


def send_params_to_v10(body: Json) -> Json:
    """A 0.3 proto SendMessageRequest (`request`/`message`, proto or JSON names) as 1.0 params.

    As in proto3, a `configuration` without `blocking` is not blocking.
    """
    body = _camelize(body)
    out: Json = {k: v for k, v in body.items() if k not in ("request", "configuration")}
    message = body.get("message", body.get("request"))
    if message is not None:
        out["message"] = message_to_v10(message)
    config = body.get("configuration")
    if isinstance(config, dict):
        new: Json = {"returnImmediately": not config.get("blocking", False)}
        if config.get("acceptedOutputModes"):
            new["acceptedOutputModes"] = config["acceptedOutputModes"]
        if config.get("historyLength"):
            new["historyLength"] = config["historyLength"]
        push = config.get("pushNotification", config.get("pushNotificationConfig"))
        if isinstance(push, dict):
            new["taskPushNotificationConfig"] = compat.push_config_to_v10(push)
        out["configuration"] = new
    return out


def push_create_to_v10(body: Json, task_id: str) -> Json:
    """A 0.3 CreateTaskPushNotificationConfigRequest (or just its config) as 1.0 params."""
    body = _camelize(body)
    config = body.get("config") if isinstance(body.get("config"), dict) else body
    inner = config.get("pushNotificationConfig") if isinstance(config, dict) else None
    converted = compat.push_config_to_v10(inner if isinstance(inner, dict) else config, task_id)
    out = {k: v for k, v in converted.items() if k in _PUSH_FIELDS}
    if not out.get("id") and body.get("configId"):
        out["id"] = body["configId"]
    return out


def result_to_v03(method: str, result: Any) -> Any:
    """The hub's 1.0 result for `method` in the 0.3 proto's JSON."""
    if method == "SendMessage":
        if "task" in result:
            return {"task": task_to_v03(result["task"])}
        return {"message": message_to_v03(result.get("message"))}
    if method in ("GetTask", "CancelTask"):
        return task_to_v03(result)
    if method == "ListTasks":
        return {**result, "tasks": [task_to_v03(t) for t in result.get("tasks", [])]}
    if method in ("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"):
        return push_config_to_v03(result)
    if method == "ListTaskPushNotificationConfigs":
        return {
            "configs": [push_config_to_v03(c) for c in result.get("configs", [])],
            "nextPageToken": result.get("nextPageToken", ""),
        }
    if result is None:
        return {}
    return result  # GetExtendedAgentCard: the card already carries its 0.3 fields


__all__ = [
    "MEDIA_TYPE",
    "V03_OPERATIONS",
    "V10_OPERATIONS",
    "Operation",
    "RestBinding",
    "error_body",
    "error_response",
    "rest_routes",
]
