"""Rate limits on a remote ACP connection: a session's turn asks the caller's quota before each
model request (charging the tokens the model reports), tool call and A2A task. A refused model
request answers the `session/prompt` with a JSON-RPC error `RATE_LIMITED` saying which limit
and when it resets; a refused tool call or task fails that call, with the same words, for the
model to read (as a tool the key may not use does)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from acp.protocols import AgentDirectory, AgentInfo, ModelClient, ToolInfo, ToolProvider
from router_core.quota import RATE_LIMITED, LimitExceeded, Quota
from router_core.types import ChatRequest, StreamEvent, Usage
from transports import RpcError


class LimitedModels:
    """`inner` with the caller's quota asked before each model request."""

    def __init__(self, inner: ModelClient, quota: Quota) -> None:
        self._inner = inner
        self._quota = quota

    async def stream(
        self, request: ChatRequest, *, key: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        try:
            charge = await self._quota.admit("models", request.model)
        except LimitExceeded as exc:
            raise RpcError(RATE_LIMITED, str(exc), exc.data()) from None
        async for event in self._inner.stream(request, key=key):
            if isinstance(event, Usage) and charge is not None:
                charge.tokens(event.prompt_tokens + event.completion_tokens)
            yield event

    async def models(self) -> list[str]:
        return await self._inner.models()


class LimitedTools:
    """`inner` with the caller's quota asked before each tool call."""

    def __init__(self, inner: ToolProvider, quota: Quota) -> None:
        self._inner = inner
        self._quota = quota

    async def llm_tools(self) -> Sequence[ToolInfo]:
        return await self._inner.llm_tools()

    async def call_tool(
        self, name: str, arguments: Mapping[str, Any] | None = None, **options: Any
    ) -> dict[str, Any]:
        try:
            await self._quota.admit("mcp_tools", name)
        except LimitExceeded as exc:
            return {"content": [{"type": "text", "text": str(exc)}], "isError": True}
        return await self._inner.call_tool(name, arguments, **options)


class LimitedAgents:
    """`inner` with the caller's quota asked before each task sent to an agent."""

    def __init__(self, inner: AgentDirectory, quota: Quota) -> None:
        self._inner = inner
        self._quota = quota

    async def list_agents(self) -> Sequence[AgentInfo]:
        return await self._inner.list_agents()

    async def send_task(self, agent: str, message: str, **options: Any) -> str:
        try:
            await self._quota.admit("a2a_agents", agent)
        except LimitExceeded as exc:
            raise PermissionError(str(exc)) from None
        return await self._inner.send_task(agent, message, **options)


__all__ = ["LimitedAgents", "LimitedModels", "LimitedTools"]
