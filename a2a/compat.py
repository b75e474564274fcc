"""A2A 0.3 <-> 1.0 translation on plain JSON, and the `A2A-Version` rule.

The hub thinks in 1.0 JSON. A 0.3 caller's params are lifted to 1.0 on the way in and its
results lowered on the way out; a 0.3 agent gets lowered params and its answers are lifted.
Working on dicts (not models) keeps fields this code does not know about.
"""

from __future__ import annotations

from typing import Any

from a2a.errors import VERSION_NOT_SUPPORTED, A2aError

V10 = "1.0"
V03 = "0.3"
SUPPORTED_VERSIONS = (V10, V03)

Json = dict[str, Any]

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
METHODS_V10 = frozenset(METHODS_V03.values())
STREAMING_METHODS = frozenset({"SendStreamingMessage", "SubscribeToTask"})

_STATES_V03 = {
    "submitted": "TASK_STATE_SUBMITTED",
    "working": "TASK_STATE_WORKING",
    "completed": "TASK_STATE_COMPLETED",
    "failed": "TASK_STATE_FAILED",
    "canceled": "TASK_STATE_CANCELED",
    "input-required": "TASK_STATE_INPUT_REQUIRED",
    "rejected": "TASK_STATE_REJECTED",
    "auth-required": "TASK_STATE_AUTH_REQUIRED",
    "unknown": "TASK_STATE_UNSPECIFIED",
}
_STATES_V10 = {v10: v03 for v03, v10 in _STATES_V03.items()}
_TERMINAL_V10 = frozenset(
    {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}
)


def protocol_version(header: str | None) -> str:
    """The version a request asks for: missing or empty is 0.3; Major.Minor only; else -32009."""
    if header is None or not header.strip():
        return V03
    normalized = normalize_version(header)
    if normalized not in SUPPORTED_VERSIONS:
        raise A2aError(
            VERSION_NOT_SUPPORTED,
            f"A2A version {header.strip()!r} is not supported; supported: {', '.join(SUPPORTED_VERSIONS)}",
            {"requestedVersion": header.strip(), "supportedVersions": ",".join(SUPPORTED_VERSIONS)},
        )
    return normalized


def normalize_version(text: str) -> str:
    """`1`, `1.0`, `1.0.2` -> `1.0`; `0.3.0` -> `0.3`; anything else unchanged."""
    pieces = text.strip().split(".")
    if len(pieces) == 1:
        pieces.append("0")
    return ".".join(pieces[:2])


def state_to_v10(state: Any) -> Any:
    return _STATES_V03.get(state, state) if isinstance(state, str) else state


def state_to_v03(state: Any) -> Any:
    return _STATES_V10.get(state, state) if isinstance(state, str) else state


def is_terminal(state: str | None) -> bool:
    return state in _TERMINAL_V10


# --------------------------------------------------------------------------- parts and messages


def part_to_v10(part: Any) -> Any:
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


def part_to_v03(part: Any) -> Any:
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


def message_to_v10(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k != "kind"}
    role = message.get("role")
    if role == "user":
        out["role"] = "ROLE_USER"
    elif role == "agent":
        out["role"] = "ROLE_AGENT"
    if isinstance(message.get("parts"), list):
        out["parts"] = [part_to_v10(p) for p in message["parts"]]
    return out


def message_to_v03(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = dict(message)
    out["kind"] = "message"
    out["role"] = "user" if message.get("role") == "ROLE_USER" else "agent"
    if isinstance(message.get("parts"), list):
        out["parts"] = [part_to_v03(p) for p in message["parts"]]
    return out


def _status(status: Any, up: bool) -> Any:
    if not isinstance(status, dict):
        return status
    out = dict(status)
    out["state"] = state_to_v10(status.get("state")) if up else state_to_v03(status.get("state"))
    if "state" not in status:
        out["state"] = "TASK_STATE_UNSPECIFIED" if up else "unknown"
    if isinstance(status.get("message"), dict):
        out["message"] = (message_to_v10 if up else message_to_v03)(status["message"])
    return out


def _artifact(artifact: Any, up: bool) -> Any:
    if not isinstance(artifact, dict):
        return artifact
    out = dict(artifact)
    if isinstance(artifact.get("parts"), list):
        out["parts"] = [(part_to_v10 if up else part_to_v03)(p) for p in artifact["parts"]]
    return out


def task_to_v10(task: Any) -> Any:
    if not isinstance(task, dict):
        return task
    out = {k: v for k, v in task.items() if k != "kind"}
    out["status"] = _status(task.get("status"), up=True)
    if isinstance(task.get("artifacts"), list):
        out["artifacts"] = [_artifact(a, up=True) for a in task["artifacts"]]
    if isinstance(task.get("history"), list):
        out["history"] = [message_to_v10(m) for m in task["history"]]
    return out


def task_to_v03(task: Any) -> Any:
    if not isinstance(task, dict):
        return task
    out = dict(task)
    out["kind"] = "task"
    out["status"] = _status(task.get("status"), up=False)
    if isinstance(task.get("artifacts"), list):
        out["artifacts"] = [_artifact(a, up=False) for a in task["artifacts"]]
    if isinstance(task.get("history"), list):
        out["history"] = [message_to_v03(m) for m in task["history"]]
    return out


# --------------------------------------------------------------------------- stream events


def event_to_v10(event: Any) -> Json | None:
    """A 0.3 result/event (a `kind`-tagged object) as a 1.0 StreamResponse; None if unknown."""
    if not isinstance(event, dict):
        return None
    kind = event.get("kind")
    if kind == "task":
        return {"task": task_to_v10(event)}
    if kind == "message":
        return {"message": message_to_v10(event)}
    if kind == "status-update":
        body = {k: v for k, v in event.items() if k not in ("kind", "final")}
        body["status"] = _status(event.get("status"), up=True)
        return {"statusUpdate": body}
    if kind == "artifact-update":
        body = {k: v for k, v in event.items() if k != "kind"}
        body["artifact"] = _artifact(event.get("artifact"), up=True)
        return {"artifactUpdate": body}
    return None


def event_to_v03(stream_response: Json) -> Json:
    """A 1.0 StreamResponse as the 0.3 `kind`-tagged object (status updates get `final`)."""
    if "task" in stream_response:
        return task_to_v03(stream_response["task"])  # type: ignore[no-any-return]
    if "message" in stream_response:
        return message_to_v03(stream_response["message"])  # type: ignore[no-any-return]
    if "statusUpdate" in stream_response:
        update = stream_response["statusUpdate"]
        out = dict(update)
        out["kind"] = "status-update"
        state = (update.get("status") or {}).get("state")
        out["final"] = is_terminal(state) or state in (
            "TASK_STATE_INPUT_REQUIRED",
            "TASK_STATE_AUTH_REQUIRED",
        )
        out["status"] = _status(update.get("status"), up=False)
        return out
    update = stream_response.get("artifactUpdate") or {}
    out = dict(update)
    out["kind"] = "artifact-update"
    out["artifact"] = _artifact(update.get("artifact"), up=False)
    return out


def send_result_to_v10(result: Any) -> Json | None:
    """A 0.3 `message/send` result (Task or Message) as a 1.0 SendMessageResponse."""
    converted = event_to_v10(result)
    if converted is None or not ({"task", "message"} & converted.keys()):
        return None
    return converted


def send_result_to_v03(result: Json) -> Json:
    return event_to_v03(result)


# --------------------------------------------------------------------------- push configs


def push_config_to_v10(config: Any, task_id: str | None = None) -> Json:
    """0.3 PushNotificationConfig (+ task id) as a 1.0 TaskPushNotificationConfig."""
    config = config if isinstance(config, dict) else {}
    out: Json = {k: v for k, v in config.items() if k != "authentication"}
    if task_id is not None:
        out["taskId"] = task_id
    auth = config.get("authentication")
    if isinstance(auth, dict):
        schemes = auth.get("schemes") or []
        converted: Json = {"scheme": schemes[0] if schemes else ""}
        if auth.get("credentials"):
            converted["credentials"] = auth["credentials"]
        out["authentication"] = converted
    return out


def push_config_to_v03(config: Json) -> Json:
    """1.0 TaskPushNotificationConfig as the 0.3 TaskPushNotificationConfig wrapper."""
    inner: Json = {k: config[k] for k in ("id", "url", "token") if config.get(k)}
    auth = config.get("authentication")
    if isinstance(auth, dict):
        inner["authentication"] = {"schemes": [auth["scheme"]] if auth.get("scheme") else []}
        if auth.get("credentials"):
            inner["authentication"]["credentials"] = auth["credentials"]
    return {"taskId": config.get("taskId", ""), "pushNotificationConfig": inner}


# --------------------------------------------------------------------------- request params


def params_to_v10(method_v03: str, params: Any) -> Any:
    """A 0.3 request's params in the shape of the 1.0 method it maps to."""
    if not isinstance(params, dict):
        return params
    if method_v03 in ("message/send", "message/stream"):
        out: Json = {k: v for k, v in params.items() if k not in ("message", "configuration")}
        if "message" in params:
            out["message"] = message_to_v10(params["message"])
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
                new["taskPushNotificationConfig"] = push_config_to_v10(
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
        return push_config_to_v10(params.get("pushNotificationConfig"), params.get("taskId"))
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
            out["status"] = state_to_v10(out["status"])
        return out
    return params


def params_to_v03(method_v10: str, params: Json) -> Json:
    """1.0 params for a 0.3 agent (the methods the hub sends upstream)."""
    if method_v10 in ("SendMessage", "SendStreamingMessage"):
        out: Json = {k: v for k, v in params.items() if k not in ("message", "configuration")}
        out["message"] = message_to_v03(params.get("message"))
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


def result_to_v10(method_v10: str, result: Any) -> Any:
    """A 0.3 agent's result for `method_v10`, lifted to 1.0."""
    if method_v10 == "SendMessage":
        return send_result_to_v10(result)
    if method_v10 in ("GetTask", "CancelTask"):
        return task_to_v10(result)
    return result


def result_to_v03(method_v10: str, result: Any) -> Any:
    """The hub's 1.0 result for `method_v10`, lowered for a 0.3 caller."""
    if method_v10 == "SendMessage":
        return send_result_to_v03(result)
    if method_v10 in ("GetTask", "CancelTask"):
        return task_to_v03(result)
    if method_v10 in ("CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig"):
        return push_config_to_v03(result)
    if method_v10 == "ListTaskPushNotificationConfigs":
        return [push_config_to_v03(c) for c in result.get("configs", [])]
    if method_v10 == "ListTasks":
        out = dict(result)
        out["tasks"] = [task_to_v03(t) for t in result.get("tasks", [])]
        return out
    if method_v10 == "GetExtendedAgentCard":
        return result
    return result


# --------------------------------------------------------------------------- agent cards

_SCHEME_TYPES = {
    "apiKey": "apiKeySecurityScheme",
    "http": "httpAuthSecurityScheme",
    "oauth2": "oauth2SecurityScheme",
    "openIdConnect": "openIdConnectSecurityScheme",
    "mutualTLS": "mtlsSecurityScheme",
}


def card_to_v10(card: Json) -> Json:
    """Any card (1.0, 0.3, or the merged shape the SDK serves) in the 1.0 shape."""
    out = dict(card)
    if "supportedInterfaces" not in out and out.get("url"):
        version = normalize_version(str(out.get("protocolVersion") or "0.3"))
        interfaces = [
            {
                "url": out["url"],
                "protocolBinding": out.get("preferredTransport") or "JSONRPC",
                "protocolVersion": version,
            }
        ]
        extras = out.get("additionalInterfaces")
        for extra in extras if isinstance(extras, list) else []:
            if isinstance(extra, dict) and extra.get("url"):
                interfaces.append(
                    {
                        "url": extra["url"],
                        "protocolBinding": extra.get("transport") or "JSONRPC",
                        "protocolVersion": version,
                    }
                )
        out["supportedInterfaces"] = interfaces
    capabilities = out.get("capabilities") or {}
    if out.get("supportsAuthenticatedExtendedCard") and isinstance(capabilities, dict):
        capabilities = dict(capabilities)
        capabilities.setdefault("extendedAgentCard", True)
        out["capabilities"] = capabilities
    for legacy in (
        "url",
        "preferredTransport",
        "protocolVersion",
        "additionalInterfaces",
        "supportsAuthenticatedExtendedCard",
    ):
        out.pop(legacy, None)
    if "security" in out and "securityRequirements" not in out:
        out["securityRequirements"] = _security_to_v10(out.pop("security"))
    schemes = out.get("securitySchemes")
    if isinstance(schemes, dict):
        converted: Json = {}
        for name, scheme in schemes.items():
            if isinstance(scheme, dict) and scheme.get("type") in _SCHEME_TYPES:
                body = {k: v for k, v in scheme.items() if k != "type"}
                if "in" in body:
                    body["location"] = body.pop("in")
                converted[name] = {_SCHEME_TYPES[scheme["type"]]: body}
            else:
                converted[name] = scheme
        out["securitySchemes"] = converted
    return out


def _security_to_v10(requirements: Any) -> list[Json]:
    if not isinstance(requirements, list):
        return []
    return [
        {"schemes": {name: {"list": scopes} for name, scopes in item.items()}}
        for item in requirements
        if isinstance(item, dict)
    ]


def with_v03_fields(card: Json) -> Json:
    """A 1.0 card plus the 0.3 fields (url, preferredTransport, ...) so both kinds of client read it.

    The 0.3 `url` is the first interface that speaks 0.3; without one the card is left 1.0-only.
    """
    interfaces = card.get("supportedInterfaces") or []
    legacy = [
        i
        for i in interfaces
        if isinstance(i, dict) and normalize_version(str(i.get("protocolVersion", ""))) == V03
    ]
    if not legacy:
        return card
    out = dict(card)
    primary = legacy[0]
    out["url"] = primary["url"]
    out["preferredTransport"] = primary.get("protocolBinding", "JSONRPC")
    out["protocolVersion"] = "0.3.0"
    if len(legacy) > 1:
        out["additionalInterfaces"] = [
            {"url": i["url"], "transport": i.get("protocolBinding", "JSONRPC")} for i in legacy[1:]
        ]
    if (card.get("capabilities") or {}).get("extendedAgentCard"):
        out["supportsAuthenticatedExtendedCard"] = True
    return out
