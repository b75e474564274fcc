"""ACP v1 wire types (pydantic), named and shaped as in the protocol's `schema/v1/schema.json`.

Python names are snake_case; on the wire every field is camelCase (aliases), and `_meta` is the
`meta` field. Types that the spec lets carry `_meta` keep unknown keys (`extra="allow"`), so a
newer client's additions are not rejected and survive a round trip. Only what the agent side
needs is modelled: requests the client sends us, our responses and notifications, and the
responses to the requests we send the client.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic.alias_generators import to_camel

from acp.handshake import PROTOCOL_VERSION

ToolKind = Literal[
    "read", "edit", "delete", "move", "search", "execute", "think", "fetch", "switch_mode", "other"
]
ToolCallStatus = Literal["pending", "in_progress", "completed", "failed"]
StopReason = Literal["end_turn", "max_tokens", "max_turn_requests", "refusal", "cancelled"]
PermissionOptionKind = Literal["allow_once", "allow_always", "reject_once", "reject_always"]


class WireModel(BaseModel):
    """camelCase on the wire, snake_case in Python; `_meta` kept; unknown keys kept."""

    # Each model's validator is built when first used, not at import: `initialize` pays only
    # for the few it touches (building all of them took ~40 ms of cold start).
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="allow",
        frozen=False,
        defer_build=True,
    )

    meta: dict[str, Any] | None = Field(default=None, alias="_meta")

    def wire(self) -> dict[str, Any]:
        """The JSON object as it goes on the wire (aliases, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# -- content --------------------------------------------------------------------------------------


class Annotations(WireModel):
    audience: list[Literal["assistant", "user"]] | None = None
    last_modified: str | None = None
    priority: float | None = None


class TextContent(WireModel):
    type: Literal["text"] = "text"
    text: str
    annotations: Annotations | None = None


class ImageContent(WireModel):
    type: Literal["image"] = "image"
    data: str
    mime_type: str
    uri: str | None = None
    annotations: Annotations | None = None


class AudioContent(WireModel):
    type: Literal["audio"] = "audio"
    data: str
    mime_type: str
    annotations: Annotations | None = None


class ResourceLink(WireModel):
    type: Literal["resource_link"] = "resource_link"
    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mime_type: str | None = None
    size: int | None = None
    annotations: Annotations | None = None


class TextResourceContents(WireModel):
    uri: str
    text: str
    mime_type: str | None = None


class BlobResourceContents(WireModel):
    uri: str
    blob: str
    mime_type: str | None = None


def _resource_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "blob" if "blob" in value else "text"
    if isinstance(value, BlobResourceContents):
        return "blob"
    return "text" if isinstance(value, TextResourceContents) else None


class EmbeddedResource(WireModel):
    type: Literal["resource"] = "resource"
    resource: Annotated[
        Annotated[TextResourceContents, Tag("text")] | Annotated[BlobResourceContents, Tag("blob")],
        Discriminator(_resource_kind),
    ]
    annotations: Annotations | None = None


ContentBlock = Annotated[
    TextContent | ImageContent | AudioContent | ResourceLink | EmbeddedResource,
    Field(discriminator="type"),
]


# -- initialization -------------------------------------------------------------------------------


class Implementation(WireModel):
    name: str
    version: str
    title: str | None = None


class Empty(WireModel):
    """`{}`: how the spec says "supported" for session capabilities."""


class FileSystemCapabilities(WireModel):
    read_text_file: bool = False
    write_text_file: bool = False


class SessionConfigOptionsCapabilities(WireModel):
    boolean: Empty | None = None


class ClientSessionCapabilities(WireModel):
    config_options: SessionConfigOptionsCapabilities | None = None


class ElicitationCapabilities(WireModel):
    """Each mode is supported only when present and not null (`{}` advertises none)."""

    form: Empty | None = None
    url: Empty | None = None


class ClientCapabilities(WireModel):
    fs: FileSystemCapabilities = Field(default_factory=FileSystemCapabilities)
    terminal: bool = False
    session: ClientSessionCapabilities | None = None
    elicitation: ElicitationCapabilities | None = None

    @property
    def boolean_options(self) -> bool:
        """Whether `type: "boolean"` config options may be offered."""
        options = self.session.config_options if self.session is not None else None
        return options is not None and options.boolean is not None

    def elicits(self, mode: str) -> bool:
        """Whether the client takes `elicitation/create` in `mode` ("form" or "url")."""
        if self.elicitation is None:
            return False
        return getattr(self.elicitation, mode, None) is not None


class InitializeRequest(WireModel):
    protocol_version: int = Field(ge=0, le=65535)
    client_capabilities: ClientCapabilities = Field(default_factory=ClientCapabilities)
    client_info: Implementation | None = None


class PromptCapabilities(WireModel):
    image: bool = False
    audio: bool = False
    embedded_context: bool = False


class McpCapabilities(WireModel):
    http: bool = False
    sse: bool = False


class SessionCapabilities(WireModel):
    list: Empty | None = None
    resume: Empty | None = None
    close: Empty | None = None
    delete: Empty | None = None
    additional_directories: Empty | None = None


class AgentAuthCapabilities(WireModel):
    logout: Empty | None = None


class AgentCapabilities(WireModel):
    load_session: bool = False
    auth: AgentAuthCapabilities | None = None
    prompt_capabilities: PromptCapabilities = Field(default_factory=PromptCapabilities)
    mcp_capabilities: McpCapabilities = Field(default_factory=McpCapabilities)
    session_capabilities: SessionCapabilities = Field(default_factory=SessionCapabilities)


class AuthMethod(WireModel):
    id: str
    name: str
    description: str | None = None


class InitializeResponse(WireModel):
    protocol_version: int
    agent_capabilities: AgentCapabilities
    agent_info: Implementation | None = None
    auth_methods: list[AuthMethod] | None = None


class AuthenticateRequest(WireModel):
    method_id: str


# -- session setup --------------------------------------------------------------------------------


class EnvVariable(WireModel):
    name: str
    value: str


class HttpHeader(WireModel):
    name: str
    value: str


class McpServerStdio(WireModel):
    type: Literal["stdio"] = "stdio"
    name: str
    command: str
    args: list[str] = Field(default_factory=list)
    env: list[EnvVariable] = Field(default_factory=list)


class McpServerHttp(WireModel):
    type: Literal["http"]
    name: str
    url: str
    headers: list[HttpHeader] = Field(default_factory=list)


class McpServerSse(WireModel):
    type: Literal["sse"]
    name: str
    url: str
    headers: list[HttpHeader] = Field(default_factory=list)


def _mcp_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("http", "sse") else "stdio"


McpServer = Annotated[
    Annotated[McpServerStdio, Tag("stdio")]
    | Annotated[McpServerHttp, Tag("http")]
    | Annotated[McpServerSse, Tag("sse")],
    Discriminator(_mcp_kind),
]


class NewSessionRequest(WireModel):
    cwd: str
    additional_directories: list[str] = Field(default_factory=list)
    mcp_servers: list[McpServer] = Field(default_factory=list)


class LoadSessionRequest(NewSessionRequest):
    session_id: str


class ResumeSessionRequest(NewSessionRequest):
    session_id: str


class SessionIdParams(WireModel):
    """Params of methods that only name a session (close, delete, cancel)."""

    session_id: str


class ListSessionsRequest(WireModel):
    cwd: str | None = None
    cursor: str | None = None


class SessionMode(WireModel):
    id: str
    name: str
    description: str | None = None


class SessionModeState(WireModel):
    current_mode_id: str
    available_modes: list[SessionMode]


class SessionConfigSelectOption(WireModel):
    value: str
    name: str
    description: str | None = None


class SessionConfigOption(WireModel):
    """A `select` option (with `options`) or a `boolean` one (offered only to a client that
    advertised `session.configOptions.boolean`)."""

    id: str
    name: str
    type: Literal["select", "boolean"] = "select"
    current_value: str | bool
    options: list[SessionConfigSelectOption] | None = None
    description: str | None = None
    category: str | None = None


class SessionSetupResponse(WireModel):
    """The result of session/new (with `session_id`), session/load and session/resume."""

    session_id: str | None = None
    modes: SessionModeState | None = None
    config_options: list[SessionConfigOption] | None = None


class SessionInfo(WireModel):
    session_id: str
    cwd: str
    additional_directories: list[str] | None = None
    title: str | None = None
    updated_at: str | None = None


class ListSessionsResponse(WireModel):
    sessions: list[SessionInfo]
    next_cursor: str | None = None


class SetSessionModeRequest(WireModel):
    session_id: str
    mode_id: str


class SetSessionConfigOptionRequest(WireModel):
    session_id: str
    config_id: str
    value: str | bool
    type: str | None = None


class SetSessionConfigOptionResponse(WireModel):
    config_options: list[SessionConfigOption]


# -- prompt turn ----------------------------------------------------------------------------------


class PromptRequest(WireModel):
    session_id: str
    prompt: list[ContentBlock]


class PromptResponse(WireModel):
    stop_reason: StopReason


class ToolCallLocation(WireModel):
    path: str
    line: int | None = None


class ContentToolCallContent(WireModel):
    type: Literal["content"] = "content"
    content: ContentBlock


class DiffContent(WireModel):
    type: Literal["diff"] = "diff"
    path: str
    new_text: str
    old_text: str | None = None


class TerminalContent(WireModel):
    type: Literal["terminal"] = "terminal"
    terminal_id: str


ToolCallContent = Annotated[
    ContentToolCallContent | DiffContent | TerminalContent, Field(discriminator="type")
]


class ToolCallUpdateFields(WireModel):
    """What `tool_call_update` and the `toolCall` of a permission request carry."""

    tool_call_id: str
    title: str | None = None
    kind: ToolKind | None = None
    status: ToolCallStatus | None = None
    content: list[ToolCallContent] | None = None
    locations: list[ToolCallLocation] | None = None
    raw_input: Any = None
    raw_output: Any = None


class PermissionOption(WireModel):
    option_id: str
    name: str
    kind: PermissionOptionKind


class RequestPermissionRequest(WireModel):
    session_id: str
    tool_call: ToolCallUpdateFields
    options: list[PermissionOption]


class SelectedOutcome(WireModel):
    outcome: Literal["selected"]
    option_id: str


class CancelledOutcome(WireModel):
    outcome: Literal["cancelled"]


class RequestPermissionResponse(WireModel):
    outcome: Annotated[SelectedOutcome | CancelledOutcome, Field(discriminator="outcome")]


class AvailableCommandInput(WireModel):
    hint: str


class AvailableCommand(WireModel):
    name: str
    description: str
    input: AvailableCommandInput | None = None


# -- client methods (agent -> client) -------------------------------------------------------------


class ReadTextFileResponse(WireModel):
    content: str


class CreateTerminalResponse(WireModel):
    terminal_id: str


class TerminalExitStatus(WireModel):
    exit_code: int | None = None
    signal: str | None = None


class TerminalOutputResponse(WireModel):
    output: str
    truncated: bool = False
    exit_status: TerminalExitStatus | None = None


class CreateElicitationResponse(WireModel):
    """`accept` (with `content` for a form), `decline` or `cancel`; another action (a newer
    or `_`-prefixed one) is kept as sent and read as a cancel."""

    action: str
    content: dict[str, Any] | None = None


__all__ = [
    "PROTOCOL_VERSION",
    "AgentAuthCapabilities",
    "AgentCapabilities",
    "AudioContent",
    "AuthMethod",
    "AuthenticateRequest",
    "AvailableCommand",
    "AvailableCommandInput",
    "BlobResourceContents",
    "ClientCapabilities",
    "ClientSessionCapabilities",
    "ContentBlock",
    "ContentToolCallContent",
    "CreateElicitationResponse",
    "CreateTerminalResponse",
    "DiffContent",
    "ElicitationCapabilities",
    "EmbeddedResource",
    "Empty",
    "EnvVariable",
    "HttpHeader",
    "ImageContent",
    "Implementation",
    "InitializeRequest",
    "InitializeResponse",
    "ListSessionsRequest",
    "ListSessionsResponse",
    "LoadSessionRequest",
    "McpCapabilities",
    "McpServer",
    "McpServerHttp",
    "McpServerSse",
    "McpServerStdio",
    "NewSessionRequest",
    "PermissionOption",
    "PermissionOptionKind",
    "PromptCapabilities",
    "PromptRequest",
    "PromptResponse",
    "ReadTextFileResponse",
    "RequestPermissionRequest",
    "RequestPermissionResponse",
    "ResourceLink",
    "ResumeSessionRequest",
    "SessionCapabilities",
    "SessionConfigOption",
    "SessionConfigOptionsCapabilities",
    "SessionConfigSelectOption",
    "SessionIdParams",
    "SessionInfo",
    "SessionMode",
    "SessionModeState",
    "SessionSetupResponse",
    "SetSessionConfigOptionRequest",
    "SetSessionConfigOptionResponse",
    "SetSessionModeRequest",
    "StopReason",
    "TerminalContent",
    "TerminalExitStatus",
    "TerminalOutputResponse",
    "TextContent",
    "TextResourceContents",
    "ToolCallContent",
    "ToolCallLocation",
    "ToolCallStatus",
    "ToolCallUpdateFields",
    "ToolKind",
    "WireModel",
]
