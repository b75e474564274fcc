"""A2A 1.0 wire types: camelCase JSON, ProtoJSON enum spellings, unknown fields kept.

The hub validates what callers send with these models (a bad request gets -32602 naming the
field) but relays the JSON it received, so fields a newer peer adds survive the trip.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class Wire(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are kept, not refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class TaskState(StrEnum):
    UNSPECIFIED = "TASK_STATE_UNSPECIFIED"
    SUBMITTED = "TASK_STATE_SUBMITTED"
    WORKING = "TASK_STATE_WORKING"
    COMPLETED = "TASK_STATE_COMPLETED"
    FAILED = "TASK_STATE_FAILED"
    CANCELED = "TASK_STATE_CANCELED"
    INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
    REJECTED = "TASK_STATE_REJECTED"
    AUTH_REQUIRED = "TASK_STATE_AUTH_REQUIRED"


TERMINAL_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}
)
INTERRUPTED_STATES = frozenset({TaskState.INPUT_REQUIRED, TaskState.AUTH_REQUIRED})


class Role(StrEnum):
    UNSPECIFIED = "ROLE_UNSPECIFIED"
    USER = "ROLE_USER"
    AGENT = "ROLE_AGENT"


class Part(Wire):
    """Exactly one of text, raw (base64), url or data."""

    text: str | None = None
    raw: str | None = None
    url: str | None = None
    data: Any = None
    metadata: dict[str, Any] | None = None
    filename: str | None = None
    media_type: str | None = None

    @model_validator(mode="after")
    def _one_content(self) -> Part:
        present = [
            name
            for name in ("text", "raw", "url", "data")
            if name in self.model_fields_set and getattr(self, name) is not None
        ]
        if len(present) != 1:
            raise ValueError("a part needs exactly one of text, raw, url or data")
        return self


class Message(Wire):
    message_id: str = Field(min_length=1)
    context_id: str | None = None
    task_id: str | None = None
    role: Role
    parts: list[Part] = Field(min_length=1)
    metadata: dict[str, Any] | None = None
    extensions: list[str] | None = None
    reference_task_ids: list[str] | None = None


class TaskStatus(Wire):
    state: TaskState
    message: Message | None = None
    timestamp: str | None = None


class Artifact(Wire):
    artifact_id: str
    name: str | None = None
    description: str | None = None
    parts: list[Part]
    metadata: dict[str, Any] | None = None
    extensions: list[str] | None = None


class Task(Wire):
    id: str
    context_id: str | None = None
    status: TaskStatus
    artifacts: list[Artifact] | None = None
    history: list[Message] | None = None
    metadata: dict[str, Any] | None = None


class TaskStatusUpdateEvent(Wire):
    task_id: str
    context_id: str | None = None
    status: TaskStatus
    metadata: dict[str, Any] | None = None


class TaskArtifactUpdateEvent(Wire):
    task_id: str
    context_id: str | None = None
    artifact: Artifact
    append: bool | None = None
    last_chunk: bool | None = None
    metadata: dict[str, Any] | None = None


class StreamResponse(Wire):
    """Exactly one of task, message, statusUpdate, artifactUpdate."""

    task: Task | None = None
    message: Message | None = None
    status_update: TaskStatusUpdateEvent | None = None
    artifact_update: TaskArtifactUpdateEvent | None = None

    @model_validator(mode="after")
    def _one_payload(self) -> StreamResponse:
        present = [
            name
            for name in ("task", "message", "status_update", "artifact_update")
            if getattr(self, name) is not None
        ]
        if len(present) != 1:
            raise ValueError(
                "a stream response holds exactly one of task, message, statusUpdate, artifactUpdate"
            )
        return self


class AuthenticationInfo(Wire):
    scheme: str
    credentials: str | None = None


class TaskPushNotificationConfig(Wire):
    tenant: str | None = None
    id: str | None = None
    task_id: str | None = None
    url: str = Field(min_length=1)
    token: str | None = None
    authentication: AuthenticationInfo | None = None


class SendMessageConfiguration(Wire):
    accepted_output_modes: list[str] | None = None
    task_push_notification_config: TaskPushNotificationConfig | None = None
    history_length: int | None = Field(default=None, ge=0)
    return_immediately: bool = False


class SendMessageRequest(Wire):
    tenant: str | None = None
    message: Message
    configuration: SendMessageConfiguration | None = None
    metadata: dict[str, Any] | None = None


class GetTaskRequest(Wire):
    tenant: str | None = None
    id: str = Field(min_length=1)
    history_length: int | None = Field(default=None, ge=0)


class ListTasksRequest(Wire):
    tenant: str | None = None
    context_id: str | None = None
    status: TaskState | None = None
    page_size: int | None = Field(default=None, ge=1, le=100)
    page_token: str | None = None
    history_length: int | None = Field(default=None, ge=0)
    status_timestamp_after: str | None = None
    include_artifacts: bool | None = None


class CancelTaskRequest(Wire):
    tenant: str | None = None
    id: str = Field(min_length=1)
    metadata: dict[str, Any] | None = None


class SubscribeToTaskRequest(Wire):
    tenant: str | None = None
    id: str = Field(min_length=1)


class GetTaskPushNotificationConfigRequest(Wire):
    tenant: str | None = None
    task_id: str = Field(min_length=1)
    id: str = Field(min_length=1)


DeleteTaskPushNotificationConfigRequest = GetTaskPushNotificationConfigRequest


class ListTaskPushNotificationConfigsRequest(Wire):
    tenant: str | None = None
    task_id: str = Field(min_length=1)
    page_size: int | None = Field(default=None, ge=0)
    page_token: str | None = None


class GetExtendedAgentCardRequest(Wire):
    tenant: str | None = None


class AgentInterface(Wire):
    url: str
    protocol_binding: str
    tenant: str | None = None
    protocol_version: str


class AgentCapabilities(Wire):
    streaming: bool | None = None
    push_notifications: bool | None = None
    extensions: list[dict[str, Any]] | None = None
    extended_agent_card: bool | None = None


class AgentSkill(Wire):
    id: str
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    examples: list[str] | None = None
    input_modes: list[str] | None = None
    output_modes: list[str] | None = None


class AgentCard(Wire):
    """A 1.0 card (0.3 cards are translated to this shape first, see `a2a.versions.cards.card_to_v10`)."""

    name: str
    description: str = ""
    supported_interfaces: list[AgentInterface] = Field(min_length=1)
    provider: dict[str, Any] | None = None
    version: str = ""
    documentation_url: str | None = None
    capabilities: AgentCapabilities = Field(default_factory=AgentCapabilities)
    default_input_modes: list[str] = Field(default_factory=list)
    default_output_modes: list[str] = Field(default_factory=list)
    skills: list[AgentSkill] = Field(default_factory=list)
    signatures: list[dict[str, Any]] | None = None
    icon_url: str | None = None
