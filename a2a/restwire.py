"""Wire shapes of the HTTP+JSON (REST) binding, shared by the hub's REST server (`a2a.rest`)
and the REST connection to agents (`a2a.upstream`): the 0.3 proto's JSON both ways, and the
`google.rpc.Status` error body both ways. No starlette here, so the client side stays light.
"""

from __future__ import annotations

import re
from typing import Any

from a2a import compat
from a2a.errors import (
    CONTENT_TYPE_NOT_SUPPORTED,
    ERROR_INFO_TYPE,
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
    REASONS,
    TASK_NOT_CANCELABLE,
    TASK_NOT_FOUND,
    UNSUPPORTED_OPERATION,
    VERSION_NOT_SUPPORTED,
    A2aError,
    error_object,
)

Json = dict[str, Any]

_PUSH_FIELDS = frozenset({"id", "taskId", "url", "token", "authentication"})

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


# --------------------------------------------------------------------------- 0.3 proto JSON

_SNAKE = re.compile(r"_([a-z0-9])")
_OPAQUE = frozenset({"metadata", "data", "params"})
"""Struct-valued fields: their contents are the caller's, never renamed."""


def camel(name: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def _camelize(value: Any) -> Any:
    """0.3 REST clients may send proto field names (`message_id`) or JSON names (`messageId`)."""
    if isinstance(value, list):
        return [_camelize(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {camel(k): (v if k in _OPAQUE else _camelize(v)) for k, v in value.items()}


def state_to_v10(state: Any) -> Any:
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


# --------------------------------------------------------------------------- the client side


def send_params_to_v03(params: Json) -> Json:
    """1.0 SendMessage params as the 0.3 proto's SendMessageRequest JSON (`blocking` explicit,
    since a 0.3 configuration without it means not blocking)."""
    out: Json = {"message": message_to_v03(params.get("message"))}
    config = params.get("configuration")
    if isinstance(config, dict):
        new: Json = {"blocking": not config.get("returnImmediately", False)}
        if config.get("acceptedOutputModes"):
            new["acceptedOutputModes"] = config["acceptedOutputModes"]
        if config.get("historyLength"):
            new["historyLength"] = config["historyLength"]
        out["configuration"] = new
    if params.get("metadata"):
        out["metadata"] = params["metadata"]
    return out


def _artifact_to_v10(artifact: Any) -> Any:
    if not isinstance(artifact, dict):
        return artifact
    out = dict(artifact)
    out["parts"] = [part_to_v10(p) for p in artifact.get("parts") or []]
    return out


def _status_to_v10(status: Any) -> Any:
    if not isinstance(status, dict):
        return status
    out = dict(status)
    out["state"] = state_to_v10(status.get("state"))
    if isinstance(status.get("message"), dict):
        out["message"] = message_to_v10(status["message"])
    return out


def task_to_v10(task: Any) -> Any:
    """A 0.3 proto Task JSON as a 1.0 Task."""
    if not isinstance(task, dict):
        return task
    out = dict(task)
    out["status"] = _status_to_v10(task.get("status"))
    if isinstance(task.get("artifacts"), list):
        out["artifacts"] = [_artifact_to_v10(a) for a in task["artifacts"]]
    if isinstance(task.get("history"), list):
        out["history"] = [message_to_v10(m) for m in task["history"]]
    return out


def stream_response_to_v10(event: Any) -> Json | None:
    """A 0.3 proto StreamResponse (or SendMessageResponse) as 1.0; None if it is neither."""
    if not isinstance(event, dict) or len(event.keys() & _PAYLOADS) != 1:
        return None
    if "task" in event:
        return {"task": task_to_v10(event["task"])}
    if "message" in event:
        return {"message": message_to_v10(event["message"])}
    if "statusUpdate" in event:
        update = {k: v for k, v in event["statusUpdate"].items() if k != "final"}
        update["status"] = _status_to_v10(update.get("status"))
        return {"statusUpdate": update}
    update = dict(event["artifactUpdate"])
    update["artifact"] = _artifact_to_v10(update.get("artifact"))
    return {"artifactUpdate": update}


_PAYLOADS = frozenset({"task", "message", "statusUpdate", "artifactUpdate"})
_REASON_CODES = {reason: code for code, reason in REASONS.items()}
_TYPE_CODES = {name: code for code, name in ERROR_TYPES.items()}
_GRPC_CODES = {
    "NOT_FOUND": TASK_NOT_FOUND,
    "FAILED_PRECONDITION": UNSUPPORTED_OPERATION,
    "INVALID_ARGUMENT": INVALID_PARAMS,
    "UNIMPLEMENTED": UNSUPPORTED_OPERATION,
}


def error_from_body(body: Any) -> A2aError | None:
    """An agent's REST error answer as an `A2aError`: a `google.rpc.Status` (the code from its
    ErrorInfo reason, else its status) or a 0.3 `{type, message}`; None if it is neither."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code: int | None = None
        metadata: Json = {}
        details = error.get("details")
        for detail in details if isinstance(details, list) else []:
            if isinstance(detail, dict) and detail.get("@type") == ERROR_INFO_TYPE:
                code = _REASON_CODES.get(str(detail.get("reason")))
                if isinstance(detail.get("metadata"), dict):
                    metadata = dict(detail["metadata"])
                break
        if code is None:
            code = _GRPC_CODES.get(str(error.get("status")), INTERNAL_ERROR)
        return A2aError(code, error["message"], metadata)
    kind = body.get("type")
    if isinstance(kind, str) and kind in _TYPE_CODES:
        return A2aError(_TYPE_CODES[kind], str(body.get("message") or kind))
    return None
