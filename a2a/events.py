"""Task events as plain data: the hub's ids, rewriting, and what an event does to a task.

Protocol logic with no I/O (h11's rule): the hub core, the relays and the bindings call these
on 1.0 StreamResponse dicts. `Binding` is how one task's ids map between the hub and its agent.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

from a2a.routing import VIA
from a2a.store import TaskRecord
from a2a.versions.common import ends_stream, is_terminal

Json = dict[str, Any]


def new_id() -> str:
    """128 random bits, URL-safe: task and context ids nobody can guess.

    What `secrets.token_urlsafe(16)` makes (the same CSPRNG, `os.urandom`), without its
    `SystemRandom` detour: ids are made twice per routed task.
    """
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


@dataclass(slots=True)
class Binding:
    """How one task's ids map between the hub and the agent that owns it."""

    agent: str
    caller: str
    hub_id: str | None = None
    remote_id: str | None = None
    hub_context: str | None = None
    remote_context: str | None = None
    new_context: bool = False

    @classmethod
    def of(cls, record: TaskRecord) -> Binding:
        """The mapping of a task the store already knows."""
        return cls(
            record.agent,
            record.caller,
            record.id,
            record.remote_id,
            record.context_id,
            record.remote_context_id,
        )

    def learn_context(self, remote_ctx: str | None) -> None:
        """Learn the agent's context id; a new one gets a hub context id of its own."""
        if self.hub_context is not None or not remote_ctx:
            if self.remote_context is None:
                self.remote_context = remote_ctx
            return
        self.remote_context = remote_ctx
        self.hub_context = new_id()
        self.new_context = True

    def mapping(self) -> dict[str, str]:
        """The agent's ids -> the hub's, for the ids known so far."""
        mapping: dict[str, str] = {}
        if self.remote_id and self.hub_id:
            mapping[self.remote_id] = self.hub_id
        if self.remote_context and self.hub_context:
            mapping[self.remote_context] = self.hub_context
        return mapping


def _swap(obj: Json, key: str, mapping: dict[str, str]) -> None:
    value = obj.get(key)
    if isinstance(value, str) and value in mapping:
        obj[key] = mapping[value]


def _rewrite_message(message: Any, mapping: dict[str, str]) -> Any:
    if not isinstance(message, dict):
        return message
    out = dict(message)
    _swap(out, "taskId", mapping)
    _swap(out, "contextId", mapping)
    metadata = out.get("metadata")
    if isinstance(metadata, dict) and VIA in metadata:
        # The hop path the hub stamped on what it sent is the hubs' business; an agent that
        # echoes the message back must not show it to the caller.
        rest = {key: value for key, value in metadata.items() if key != VIA}
        if rest:
            out["metadata"] = rest
        else:
            del out["metadata"]
    return out


def _rewrite_status(status: Any, mapping: dict[str, str]) -> Any:
    if isinstance(status, dict) and isinstance(status.get("message"), dict):
        status = dict(status)
        status["message"] = _rewrite_message(status["message"], mapping)
    return status


def rewrite_event(event: Json, mapping: dict[str, str]) -> Json:
    """A StreamResponse (or SendMessageResponse) with ids swapped per `mapping`."""
    if "task" in event:
        task = dict(event["task"])
        _swap(task, "id", mapping)
        _swap(task, "contextId", mapping)
        task["status"] = _rewrite_status(task.get("status"), mapping)
        if isinstance(task.get("history"), list):
            task["history"] = [_rewrite_message(m, mapping) for m in task["history"]]
        return {"task": task}
    if "message" in event:
        return {"message": _rewrite_message(event["message"], mapping)}
    key = "statusUpdate" if "statusUpdate" in event else "artifactUpdate"
    body = dict(event[key])
    _swap(body, "taskId", mapping)
    _swap(body, "contextId", mapping)
    if key == "statusUpdate":
        body["status"] = _rewrite_status(body.get("status"), mapping)
    return {key: body}


def apply_event(task: Json, event: Json) -> Json:
    """The task after `event` (hub ids on both): what GetTask shows and the store keeps."""
    if "task" in event:
        return dict(event["task"])
    if "statusUpdate" in event:
        status = event["statusUpdate"].get("status")
        out = dict(task)
        if isinstance(status, dict):
            out["status"] = status
            message = status.get("message")
            if isinstance(message, dict):
                history = list(out.get("history") or [])
                if not any(m.get("messageId") == message.get("messageId") for m in history):
                    history.append(message)
                out["history"] = history
        return out
    if "artifactUpdate" in event:
        update = event["artifactUpdate"]
        artifact = update.get("artifact")
        if not isinstance(artifact, dict):
            return task
        out = dict(task)
        artifacts = list(out.get("artifacts") or [])
        for i, existing in enumerate(artifacts):
            if existing.get("artifactId") == artifact.get("artifactId"):
                if update.get("append"):
                    merged = dict(existing)
                    merged["parts"] = list(existing.get("parts") or []) + list(
                        artifact.get("parts") or []
                    )
                    artifacts[i] = merged
                else:
                    artifacts[i] = artifact
                break
        else:
            artifacts.append(artifact)
        out["artifacts"] = artifacts
        return out
    return task


def catch_up(seen: Json, now: Json) -> list[Json]:
    """The events that take a subscriber shown task `seen` to task `now`: each artifact that
    is new or grew, then the status if its state or message changed. For a follow whose
    opening snapshot from the agent is ahead of the hub's (the agent went on while nobody
    followed it): the hub's subscribers were shown the hub's task, not the agent's."""
    ids = {"taskId": now.get("id"), "contextId": now.get("contextId")}
    before = {_artifact_key(a) for a in seen.get("artifacts") or []}
    events: list[Json] = [
        {"artifactUpdate": {**ids, "artifact": artifact, "append": False}}
        for artifact in now.get("artifacts") or []
        if _artifact_key(artifact) not in before
    ]
    status = now.get("status") or {}
    if _status_key(status) != _status_key(seen.get("status") or {}):
        events.append({"statusUpdate": {**ids, "status": status}})
    return events


def progress(task: Json | None) -> tuple[Any, ...]:
    """What a subscriber has seen of a task: its state, its status message, its artifacts (each
    by id and number of parts); what `catch_up` brings a subscriber up to."""
    if task is None:
        return ()
    artifacts = tuple(_artifact_key(a) for a in task.get("artifacts") or [])
    return (*_status_key(task.get("status") or {}), artifacts)


def _status_key(status: Json) -> tuple[Any, Any]:
    return status.get("state"), (status.get("message") or {}).get("messageId")


def _artifact_key(artifact: Json) -> tuple[Any, int]:
    return artifact.get("artifactId"), len(artifact.get("parts") or [])


def repeats_status(event: Json, task: Json | None) -> bool:
    """Whether `event` is a status update the followers have already seen in `task`: the same
    state and the same status message. An a2a-sdk agent taps its event queue before it reads
    the task for a SubscribeToTask snapshot, so an update landing in between comes twice, once
    in the snapshot and once as itself."""
    update = event.get("statusUpdate")
    if not isinstance(update, dict) or task is None:
        return False
    status = update.get("status") or {}
    has_message = (status.get("message") or {}).get("messageId") is not None
    return has_message and _status_key(status) == _status_key(task.get("status") or {})


def event_state(event: Json) -> str | None:
    """The task state an event carries (a Task or a status update), else None."""
    if "task" in event:
        status = event["task"].get("status")
    elif "statusUpdate" in event:
        status = event["statusUpdate"].get("status")
    else:
        return None
    state = status.get("state") if isinstance(status, dict) else None
    return state if isinstance(state, str) else None


def ends_caller_stream(event: Json, legacy: bool = False) -> bool:
    """Whether a caller's stream ends after `event`: a message or a terminal state (1.0: an
    interrupted task's stream stays open and carries the rest); for a 0.3 caller also an
    interrupted state, which 0.3 marks `final`."""
    if "message" in event:
        return True
    state = event_state(event)
    return ends_stream(state) if legacy else is_terminal(state)


def trim_history(task: Json, length: int | None) -> Json:
    if length is None or "history" not in task:
        return task
    out = dict(task)
    if length == 0:
        out.pop("history", None)
    else:
        out["history"] = task["history"][-length:]
    return out


def now_iso() -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        + f".{int(time.time() * 1000) % 1000:03d}Z"
    )


def hub_status(
    task_id: str | None, context_id: str | None, state: str, text: str, junction: Json
) -> Json:
    """A status update the hub itself sends (an agent that failed, a shutdown): `text` as an
    agent message, `junction` under `metadata.junction`."""
    return {
        "statusUpdate": {
            "taskId": task_id,
            "contextId": context_id,
            "status": {
                "state": state,
                "message": {
                    "messageId": str(uuid.uuid4()),
                    "role": "ROLE_AGENT",
                    "taskId": task_id,
                    "contextId": context_id,
                    "parts": [{"text": text}],
                },
                "timestamp": now_iso(),
            },
            "metadata": {"junction": junction},
        }
    }
