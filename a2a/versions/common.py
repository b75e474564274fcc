"""What every version translation shares: the `A2A-Version` rule, the 1.0 method names, task
states, 0.3 push configs (the same object on both 0.3 wires) and the walk over a task."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from a2a.errors import VERSION_NOT_SUPPORTED, A2aError

V10 = "1.0"
V03 = "0.3"
SUPPORTED_VERSIONS = (V10, V03)

Json = dict[str, Any]
Convert = Callable[[Any], Any]

METHODS_V10 = frozenset(
    {
        "SendMessage",
        "SendStreamingMessage",
        "GetTask",
        "ListTasks",
        "CancelTask",
        "SubscribeToTask",
        "CreateTaskPushNotificationConfig",
        "GetTaskPushNotificationConfig",
        "ListTaskPushNotificationConfigs",
        "DeleteTaskPushNotificationConfig",
        "GetExtendedAgentCard",
    }
)
STREAMING_METHODS = frozenset({"SendStreamingMessage", "SubscribeToTask"})

STATES_V03 = {
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
"""0.3's JSON state names -> 1.0's."""
_STATES_V10 = {v10: v03 for v03, v10 in STATES_V03.items()}
_TERMINAL = frozenset(
    {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}
)
_INTERRUPTED = frozenset({"TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"})


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


def state_from_v03(state: Any) -> Any:
    """A 0.3 JSON state name (`working`) as 1.0's; anything else unchanged."""
    return STATES_V03.get(state, state) if isinstance(state, str) else state


def state_to_v03(state: Any) -> Any:
    return _STATES_V10.get(state, state) if isinstance(state, str) else state


def is_terminal(state: str | None) -> bool:
    return state in _TERMINAL


def is_interrupted(state: str | None) -> bool:
    """Input or auth required: the task waits on its caller, not on its agent."""
    return state in _INTERRUPTED


def ends_stream(state: str | None) -> bool:
    """A terminal or interrupted (input/auth required) state: a stream ends there (0.3 marks
    the status update carrying it `final`)."""
    return state in _TERMINAL or state in _INTERRUPTED


def task_with(task: Json, status: Convert, artifact: Convert, message: Convert) -> Json:
    """A copy of `task` with its status, artifacts and history converted (lists only)."""
    out = dict(task)
    out["status"] = status(task.get("status"))
    if isinstance(task.get("artifacts"), list):
        out["artifacts"] = [artifact(a) for a in task["artifacts"]]
    if isinstance(task.get("history"), list):
        out["history"] = [message(m) for m in task["history"]]
    return out


def push_config_from_v03(config: Any, task_id: str | None = None) -> Json:
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
    """1.0 TaskPushNotificationConfig as the 0.3 PushNotificationConfig (the inner object)."""
    inner: Json = {k: config[k] for k in ("id", "url", "token") if config.get(k)}
    auth = config.get("authentication")
    if isinstance(auth, dict):
        inner["authentication"] = {"schemes": [auth["scheme"]] if auth.get("scheme") else []}
        if auth.get("credentials"):
            inner["authentication"]["credentials"] = auth["credentials"]
    return inner


_SNAKE = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """A proto field name (`history_length`) as its JSON name (`historyLength`)."""
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)
