"""The 0.3 HTTP+JSON wire <-> 1.0: the 0.3 proto's JSON (`content` instead of `parts`,
`file{fileWithUri|fileWithBytes}` and `data{data}` parts, `TASK_STATE_CANCELLED`, push configs
named `tasks/{id}/pushNotificationConfigs/{cfg}`, proto or JSON field names on the way in).

Both directions, for the hub's REST server (`a2a.rest`) and the REST connection to agents
(`a2a.upstream`). No starlette here, so the client side stays light.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from a2a.versions.common import (
    Convert,
    Json,
    camel,
    ends_stream,
    push_config_from_v03,
    push_config_to_v03,
    state_from_v03,
    task_with,
)

_PUSH_FIELDS = frozenset({"id", "taskId", "url", "token", "authentication"})
_OPAQUE = frozenset({"metadata", "data", "params"})
"""Struct-valued fields: their contents are the caller's, never renamed."""
_PAYLOADS = frozenset({"task", "message", "statusUpdate", "artifactUpdate"})


def _camelize(value: Any) -> Any:
    """0.3 REST clients may send proto field names (`message_id`) or JSON names (`messageId`)."""
    if isinstance(value, list):
        return [_camelize(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {camel(k): (v if k in _OPAQUE else _camelize(v)) for k, v in value.items()}


def state_from_rest03(state: Any) -> Any:
    if state == "TASK_STATE_CANCELLED":
        return "TASK_STATE_CANCELED"
    return state_from_v03(state)


def _state_to_rest03(state: Any) -> Any:
    return "TASK_STATE_CANCELLED" if state == "TASK_STATE_CANCELED" else state


def part_from_rest03(part: Any) -> Any:
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


def part_to_rest03(part: Any) -> Any:
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


def message_from_rest03(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k != "content"}
    parts = message.get("content", message.get("parts"))
    if isinstance(parts, list):
        out["parts"] = [part_from_rest03(p) for p in parts]
    role = message.get("role")
    if role in ("user", "agent"):
        out["role"] = f"ROLE_{str(role).upper()}"
    return out


def message_to_rest03(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k not in ("parts", "referenceTaskIds")}
    out["content"] = [part_to_rest03(p) for p in message.get("parts") or []]
    return out


def _status(status: Any, state: Convert, message: Convert) -> Any:
    if not isinstance(status, dict):
        return status
    out = dict(status)
    out["state"] = state(status.get("state"))
    if isinstance(status.get("message"), dict):
        out["message"] = message(status["message"])
    return out


_status_from_rest03 = partial(_status, state=state_from_rest03, message=message_from_rest03)
_status_to_rest03 = partial(_status, state=_state_to_rest03, message=message_to_rest03)


def _artifact(artifact: Any, part: Convert) -> Any:
    if not isinstance(artifact, dict):
        return artifact
    out = dict(artifact)
    out["parts"] = [part(p) for p in artifact.get("parts") or []]
    return out


_artifact_from_rest03 = partial(_artifact, part=part_from_rest03)
_artifact_to_rest03 = partial(_artifact, part=part_to_rest03)


def task_from_rest03(task: Any) -> Any:
    """A 0.3 proto Task JSON as a 1.0 Task."""
    if not isinstance(task, dict):
        return task
    return task_with(task, _status_from_rest03, _artifact_from_rest03, message_from_rest03)


def task_to_rest03(task: Any) -> Any:
    """A 1.0 Task as the 0.3 proto's Task JSON."""
    if not isinstance(task, dict):
        return task
    return task_with(task, _status_to_rest03, _artifact_to_rest03, message_to_rest03)


def stream_response_from_rest03(event: Any) -> Json | None:
    """A 0.3 proto StreamResponse (or SendMessageResponse) as 1.0; None if it is neither."""
    if not isinstance(event, dict) or len(event.keys() & _PAYLOADS) != 1:
        return None
    if "task" in event:
        return {"task": task_from_rest03(event["task"])}
    if "message" in event:
        return {"message": message_from_rest03(event["message"])}
    if "statusUpdate" in event:
        update = {k: v for k, v in event["statusUpdate"].items() if k != "final"}
        update["status"] = _status_from_rest03(update.get("status"))
        return {"statusUpdate": update}
    update = dict(event["artifactUpdate"])
    update["artifact"] = _artifact_from_rest03(update.get("artifact"))
    return {"artifactUpdate": update}


def stream_response_to_rest03(event: Json) -> Json:
    """A 1.0 StreamResponse as the 0.3 proto's (status updates get their `final` flag)."""
    if "task" in event:
        return {"task": task_to_rest03(event["task"])}
    if "message" in event:
        return {"message": message_to_rest03(event["message"])}
    if "statusUpdate" in event:
        update = dict(event["statusUpdate"])
        update["final"] = ends_stream((update.get("status") or {}).get("state"))
        update["status"] = _status_to_rest03(update.get("status"))
        return {"statusUpdate": update}
    update = dict(event.get("artifactUpdate") or {})
    update["artifact"] = _artifact_to_rest03(update.get("artifact"))
    return {"artifactUpdate": update}


def push_config_to_rest03(config: Json) -> Json:
    """A 1.0 TaskPushNotificationConfig as the 0.3 proto's, named by resource path."""
    return {
        "name": f"tasks/{config.get('taskId', '')}/pushNotificationConfigs/{config.get('id', '')}",
        "pushNotificationConfig": push_config_to_v03(config),
    }


def _send_configuration(config: Json, push: Any) -> Json:
    """A SendMessage configuration across the wire: proto3's `blocking` (absent: not blocking)
    is 1.0's `returnImmediately` negated."""
    new: Json = {}
    if config.get("acceptedOutputModes"):
        new["acceptedOutputModes"] = config["acceptedOutputModes"]
    if config.get("historyLength"):
        new["historyLength"] = config["historyLength"]
    if isinstance(push, dict):
        new["taskPushNotificationConfig"] = push_config_from_v03(push)
    return new


def send_params_from_rest03(body: Json) -> Json:
    """A 0.3 proto SendMessageRequest (`request`/`message`, proto or JSON names) as 1.0 params.

    As in proto3, a `configuration` without `blocking` is not blocking.
    """
    body = _camelize(body)
    out: Json = {k: v for k, v in body.items() if k not in ("request", "configuration")}
    message = body.get("message", body.get("request"))
    if message is not None:
        out["message"] = message_from_rest03(message)
    config = body.get("configuration")
    if isinstance(config, dict):
        push = config.get("pushNotification", config.get("pushNotificationConfig"))
        out["configuration"] = {
            "returnImmediately": not config.get("blocking", False),
            **_send_configuration(config, push),
        }
    return out


def send_params_to_rest03(params: Json) -> Json:
    """1.0 SendMessage params as the 0.3 proto's SendMessageRequest JSON (`blocking` explicit,
    since a 0.3 configuration without it means not blocking)."""
    out: Json = {"message": message_to_rest03(params.get("message"))}
    config = params.get("configuration")
    if isinstance(config, dict):
        out["configuration"] = {
            "blocking": not config.get("returnImmediately", False),
            **_send_configuration(config, None),
        }
    if params.get("metadata"):
        out["metadata"] = params["metadata"]
    return out


def push_create_from_rest03(body: Json, task_id: str) -> Json:
    """A 0.3 CreateTaskPushNotificationConfigRequest (or just its config) as 1.0 params."""
    body = _camelize(body)
    config = body.get("config") if isinstance(body.get("config"), dict) else body
    inner = config.get("pushNotificationConfig") if isinstance(config, dict) else None
    converted = push_config_from_v03(inner if isinstance(inner, dict) else config, task_id)
    out = {k: v for k, v in converted.items() if k in _PUSH_FIELDS}
    if not out.get("id") and body.get("configId"):
        out["id"] = body["configId"]
    return out


def result_to_rest03(method: str, result: Any) -> Any:
    """The hub's 1.0 result for `method` in the 0.3 proto's JSON."""
    if method == "SendMessage":
        if "task" in result:
            return {"task": task_to_rest03(result["task"])}
        return {"message": message_to_rest03(result.get("message"))}
    if method in ("GetTask", "CancelTask"):
        return task_to_rest03(result)
    if method == "ListTasks":
        return {**result, "tasks": [task_to_rest03(t) for t in result.get("tasks", [])]}
    if method in ("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"):
        return push_config_to_rest03(result)
    if method == "ListTaskPushNotificationConfigs":
        return {
            "configs": [push_config_to_rest03(c) for c in result.get("configs", [])],
            "nextPageToken": result.get("nextPageToken", ""),
        }
    if result is None:
        return {}
    return result  # GetExtendedAgentCard: the card already carries its 0.3 fields
