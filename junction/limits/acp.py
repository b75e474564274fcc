"""Rate limits on a remote ACP connection's model requests: a session's turn asks the caller's
quota before each model request and charges the tokens the model reports; a refusal answers the
`session/prompt` with a JSON-RPC error `RATE_LIMITED` saying which limit and when it resets."""

from __future__ import annotations

from collections.abc import AsyncIterator

from acp.protocols import ModelClient
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


__all__ = ["LimitedModels"]
