"""The 0.3 JSON-RPC wire <-> 1.0: method names, `kind`-tagged objects, lower-case states, and
`file`/`data` part wrappers.

A 0.3 caller's params are lifted to 1.0 on the way in and its results lowered on the way out
(`params_from_rpc03`, `result_to_rpc03`, `event_to_rpc03`); a 0.3 agent gets lowered params and
its answers are lifted (`params_to_rpc03`, `result_from_rpc03`, `event_from_rpc03`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from a2a.versions.common import (
    Convert,
    Json,
    ends_stream,
    push_config_from_v03,
    push_config_to_v03,
    state_from_v03,
    state_to_v03,
    task_with,
)

METHODS_V03: dict[str, str] = {
    "message/send": "SendMessage",
    "message/stream": "SendStreamingMessage",
    "tasks/get": "GetTask",
    "tasks/list": "ListTasks",
    "tasks/cancel": "CancelTask",
    "tasks/resubscribe": "SubscribeToTask",
    "tasks/pushNotificationConfig/set": "CreateTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/get": "GetTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/list": "ListTaskPushNotificationConfigs",
    "tasks/pushNotificationConfig/delete": "DeleteTaskPushNotificationConfig",
    "agent/getAuthenticatedExtendedCard": "GetExtendedAgentCard",
}
"""0.3 method name -> the 1.0 method it is."""

METHODS_V10_TO_V03 = {v10: v03 for v03, v10 in METHODS_V03.items()}


# --------------------------------------------------------------------------- parts and messages


def part_from_rpc03(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    kind = part.get("kind")
    out: Json = {}
    metadata = part.get("metadata")
    if kind == "text" or (kind is None and "text" in part):
        out["text"] = part.get("text")
    elif kind == "file":
        file = part.get("file") or {}
        if "bytes" in file:
            out["raw"] = file.get("bytes")
        else:
            out["url"] = file.get("uri")
        if file.get("mimeType"):
            out["mediaType"] = file["mimeType"]
        if file.get("name"):
            out["filename"] = file["name"]
    elif kind == "data":
        data = part.get("data")
        if isinstance(metadata, dict) and metadata.get("data_part_compat"):
            metadata = {k: v for k, v in metadata.items() if k != "data_part_compat"} or None
            data = data.get("value") if isinstance(data, dict) else data
        out["data"] = data
    else:
        return {k: v for k, v in part.items() if k != "kind"}
    if metadata:
        out["metadata"] = metadata
    return out


def part_to_rpc03(part: Any) -> Any:
    if not isinstance(part, dict):
        return part
    metadata = part.get("metadata")
    out: Json
    if "text" in part:
        out = {"kind": "text", "text": part["text"]}
    elif "raw" in part or "url" in part:
        file: Json = {"bytes": part["raw"]} if "raw" in part else {"uri": part["url"]}
        if part.get("mediaType"):
            file["mimeType"] = part["mediaType"]
        if part.get("filename"):
            file["name"] = part["filename"]
        out = {"kind": "file", "file": file}
    elif "data" in part:
        data = part["data"]
        if not isinstance(data, dict):
            data = {"value": data}
            metadata = {**(metadata or {}), "data_part_compat": True}
        out = {"kind": "data", "data": data}
    else:
        return part
    if metadata:
        out["metadata"] = metadata
    return out


def message_from_rpc03(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k != "kind"}
    role = message.get("role")
    if role == "user":
        out["role"] = "ROLE_USER"
    elif role == "agent":
        out["role"] = "ROLE_AGENT"
    if isinstance(message.get("parts"), list):
        out["parts"] = [part_from_rpc03(p) for p in message["parts"]]
    return out


def message_to_rpc03(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = dict(message)
    out["kind"] = "message"
    out["role"] = "user" if message.get("role") == "ROLE_USER" else "agent"
    if isinstance(message.get("parts"), list):
        out["parts"] = [part_to_rpc03(p) for p in message["parts"]]
    return out


def _status(status: Any, state: Convert, missing: str, message: Convert) -> Any:
    if not isinstance(status, dict):
        return status
    out = dict(status)
    out["state"] = state(status.get("state")) if "state" in status else missing
    if isinstance(status.get("message"), dict):
        out["message"] = message(status["message"])
    return out


_status_from_rpc03 = partial(
    _status, state=state_from_v03, missing="TASK_STATE_UNSPECIFIED", message=message_from_rpc03
)
_status_to_rpc03 = partial(_status, state=state_to_v03, missing="unknown", message=message_to_rpc03)


def _artifact(artifact: Any, part: Convert) -> Any:
    if not isinstance(artifact, dict):
        return artifact
    out = dict(artifact)
    if isinstance(artifact.get("parts"), list):
        out["parts"] = [part(p) for p in artifact["parts"]]
    return out


_artifact_from_rpc03 = partial(_artifact, part=part_from_rpc03)
_artifact_to_rpc03 = partial(_artifact, part=part_to_rpc03)


def task_from_rpc03(task: Any) -> Any:
    if not isinstance(task, dict):
        return task
    out = task_with(task, _status_from_rpc03, _artifact_from_rpc03, message_from_rpc03)
    out.pop("kind", None)
    return out


def task_to_rpc03(task: Any) -> Any:
    if not isinstance(task, dict):
        return task
    out = task_with(task, _status_to_rpc03, _artifact_to_rpc03, message_to_rpc03)
    out["kind"] = "task"
    return out


# --------------------------------------------------------------------------- stream events


def event_from_rpc03(event: Any) -> Json | None:
    """A 0.3 result/event (a `kind`-tagged object) as a 1.0 StreamResponse; None if unknown."""
    if not isinstance(event, dict):
        return None
    kind = event.get("kind")
    if kind == "task":
        return {"task": task_from_rpc03(event)}
    if kind == "message":
        return {"message": message_from_rpc03(event)}
    if kind == "status-update":
        body = {k: v for k, v in event.items() if k not in ("kind", "final")}
        body["status"] = _status_from_rpc03(event.get("status"))
        return {"statusUpdate": body}
    if kind == "artifact-update":
        body = {k: v for k, v in event.items() if k != "kind"}
        body["artifact"] = _artifact_from_rpc03(event.get("artifact"))
        return {"artifactUpdate": body}
    return None


def event_to_rpc03(stream_response: Json) -> Json:
    """A 1.0 StreamResponse as the 0.3 `kind`-tagged object (status updates get `final`)."""
    if "task" in stream_response:
        return task_to_rpc03(stream_response["task"])  # type: ignore[no-any-return]
    if "message" in stream_response:
        return message_to_rpc03(stream_response["message"])  # type: ignore[no-any-return]
    if "statusUpdate" in stream_response:
        update = stream_response["statusUpdate"]
        out = dict(update)
        out["kind"] = "status-update"
        out["final"] = ends_stream((update.get("status") or {}).get("state"))
        out["status"] = _status_to_rpc03(update.get("status"))
        return out
    update = stream_response.get("artifactUpdate") or {}
    out = dict(update)
    out["kind"] = "artifact-update"
    out["artifact"] = _artifact_to_rpc03(update.get("artifact"))
    return out


def push_config_to_rpc03(config: Json) -> Json:
    """1.0 TaskPushNotificationConfig as the 0.3 TaskPushNotificationConfig wrapper."""
    return {
        "taskId": config.get("taskId", ""),
        "pushNotificationConfig": push_config_to_v03(config),
    }


# --------------------------------------------------------------------------- request params


def params_from_rpc03(method_v03: str, params: Any) -> Any:
    """A 0.3 request's params in the shape of the 1.0 method it maps to."""
    if not isinstance(params, dict):
        return params
    if method_v03 in ("message/send", "message/stream"):
        out: Json = {k: v for k, v in params.items() if k not in ("message", "configuration")}
        if "message" in params:
            out["message"] = message_from_rpc03(params["message"])
        config = params.get("configuration")
        if isinstance(config, dict):
            new: Json = {}
            if config.get("acceptedOutputModes"):
                new["acceptedOutputModes"] = config["acceptedOutputModes"]
            if config.get("historyLength"):
                new["historyLength"] = config["historyLength"]
            if config.get("blocking") is not None:
                new["returnImmediately"] = not config["blocking"]
            if isinstance(config.get("pushNotificationConfig"), dict):
                new["taskPushNotificationConfig"] = push_config_from_v03(
                    config["pushNotificationConfig"]
                )
            out["configuration"] = new
        return out
    if method_v03 == "tasks/get":
        out = {"id": params.get("id")}
        if params.get("historyLength"):
            out["historyLength"] = params["historyLength"]
        return out
    if method_v03 == "tasks/pushNotificationConfig/set":
        return push_config_from_v03(params.get("pushNotificationConfig"), params.get("taskId"))
    if method_v03 in ("tasks/pushNotificationConfig/get", "tasks/pushNotificationConfig/delete"):
        out = {"taskId": params.get("id")}
        if params.get("pushNotificationConfigId") is not None:
            out["id"] = params["pushNotificationConfigId"]
        return out
    if method_v03 == "tasks/pushNotificationConfig/list":
        return {"taskId": params.get("id")}
    if method_v03 == "tasks/list":
        out = dict(params)
        if "status" in out:
            out["status"] = state_from_v03(out["status"])
        return out
    return params


def params_to_rpc03(method_v10: str, params: Json) -> Json:
    """1.0 params for a 0.3 agent (the methods the hub sends upstream)."""
    if method_v10 in ("SendMessage", "SendStreamingMessage"):
        out: Json = {k: v for k, v in params.items() if k not in ("message", "configuration")}
        out["message"] = message_to_rpc03(params.get("message"))
        config = params.get("configuration")
        if isinstance(config, dict):
            new: Json = {"blocking": not config.get("returnImmediately", False)}
            if config.get("acceptedOutputModes"):
                new["acceptedOutputModes"] = config["acceptedOutputModes"]
            if config.get("historyLength") is not None:
                new["historyLength"] = config["historyLength"]
            out["configuration"] = new
        return out
    if method_v10 == "GetTask":
        return {k: params[k] for k in ("id", "historyLength") if k in params}
    return params


def result_from_rpc03(method_v10: str, result: Any) -> Any:
    """A 0.3 agent's result for `method_v10`, lifted to 1.0 (a SendMessage result that is
    neither a task nor a message is None)."""
    if method_v10 == "SendMessage":
        converted = event_from_rpc03(result)
        if converted is None or not ({"task", "message"} & converted.keys()):
            return None
        return converted
    if method_v10 in ("GetTask", "CancelTask"):
        return task_from_rpc03(result)
    return result


def result_to_rpc03(method_v10: str, result: Any) -> Any:
    """The hub's 1.0 result for `method_v10`, lowered for a 0.3 caller."""
    if method_v10 == "SendMessage":
        return event_to_rpc03(result)
    if method_v10 in ("GetTask", "CancelTask"):
        return task_to_rpc03(result)
    if method_v10 in ("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"):
        return push_config_to_rpc03(result)
    if method_v10 == "ListTaskPushNotificationConfigs":
        return [push_config_to_rpc03(c) for c in result.get("configs", [])]
    if method_v10 == "ListTasks":
        out = dict(result)
        out["tasks"] = [task_to_rpc03(t) for t in result.get("tasks", [])]
        return out
    return result  # GetExtendedAgentCard: the card already carries its 0.3 fields
