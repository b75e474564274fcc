"""What the agent needs from the rest of Junction, as small Protocols it owns.

The router, the MCP gateway and the A2A client satisfy these structurally; acp never imports
their concrete classes, so each can change (or be faked in a test) without touching the turn
loop. Types from `router_core` appear only under TYPE_CHECKING: importing router_core pulls in
aiohttp, which `initialize` must not pay for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from acp.schema import McpServer
    from router_core.types import ChatRequest, StreamEvent


class ProgressCallback(Protocol):
    """MCP progress for a running tool call (the `mcp` SDK's `ProgressFnT` has this shape)."""

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None: ...


class ModelClient(Protocol):
    """Streams model turns (router_core's `Router` satisfies it)."""

    def stream(self, request: ChatRequest, *, key: str | None = None) -> AsyncIterator[StreamEvent]:
        """Normalised stream events; raises `BackendError` if nothing could be streamed.

        `key` is a routing affinity key (the session id), so a session's turns can stay on one
        backend and reuse its prompt cache.
        """
        ...

    async def models(self) -> list[str]:
        """Model names a session may pick from (the `model` config option)."""
        ...


@runtime_checkable
class ToolInfo(Protocol):
    """One tool as LLM tool-calling wants it (mcp_gateway's `ToolSchema` has this shape).

    An object may also carry `kind` (an ACP ToolKind), `title` and `annotations` (the MCP
    tool's: its kind follows from them when it has no `kind`); they are read with getattr.
    """

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]: ...


ClientRequestFn = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""What an MCP upstream asks its client during a call (`elicitation/create`, `roots/list`...):
(method, params) -> the result; a `transports.RpcError` raised is the error it gets back."""


class ToolProvider(Protocol):
    """Aggregated MCP tools (mcp_gateway's `Gateway` and `GatewaySession` satisfy it).

    `call_tool` returns an MCP `CallToolResult` as a dict (`content`, `isError`, ...) and is
    cancelled by cancelling the awaiting task. `on_request` answers the upstream's own requests
    to its client during the call (the person's answer to an elicitation).
    """

    async def llm_tools(self) -> Sequence[ToolInfo]: ...

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_request: ClientRequestFn | None = None,
    ) -> dict[str, Any]: ...


class SessionToolProvider(ToolProvider, Protocol):
    """The tools of one session: global ones plus the MCP servers its `session/new` named."""

    async def startup_problems(self) -> list[str]:
        """Wait for every session server's first connection attempt; one line per failure."""
        ...


class SessionTools(Protocol):
    """Opens session-scoped MCP servers (the `mcpServers` of session/new, load, resume).

    The context manager lives as long as the session; leaving it stops the servers.
    """

    def open(
        self, servers: Sequence[McpServer], *, cwd: str, roots: Sequence[str] = ()
    ) -> AbstractAsyncContextManager[SessionToolProvider]: ...


@runtime_checkable
class AgentInfo(Protocol):
    """A remote A2A agent offered to the model as a tool. An object may also carry `tool_name`,
    the name the model calls it by (read with getattr; default `a2a__<name>`)."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...


AgentProgress = Callable[[str], Awaitable[None]]
"""Streamed progress text from a remote agent (shown as tool_call_update content)."""

AgentQuestion = Callable[[str], Awaitable[str | None]]
"""Asks the person what a remote agent asks (its `input-required` message): their answer, or
None when they gave none."""


class AgentDirectory(Protocol):
    """Registered A2A agents (the a2a client library satisfies it through a thin adapter)."""

    async def list_agents(self) -> Sequence[AgentInfo]: ...

    async def send_task(
        self,
        agent: str,
        message: str,
        *,
        on_progress: AgentProgress | None = None,
        on_input: AgentQuestion | None = None,
        session_id: str | None = None,
    ) -> str:
        """Send the agent a task and return its final answer as text; raise on failure.

        When the agent asks for input, `on_input` asks the person and their answer goes back
        as the next message of the same task (without it, or with no answer, the question is
        the result). `session_id` names the session asking, for a directory that treats
        sessions apart (Junction's own A2A agent stamps each task's routing path onto the
        tasks it sends)."""
        ...


__all__ = [
    "AgentDirectory",
    "AgentInfo",
    "AgentProgress",
    "AgentQuestion",
    "ClientRequestFn",
    "ModelClient",
    "ProgressCallback",
    "SessionToolProvider",
    "SessionTools",
    "ToolInfo",
    "ToolProvider",
]
