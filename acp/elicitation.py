"""Asking the person in the editor mid-turn: ACP `elicitation/create` (stable since 2026-07-24).

Two things reach the person this way, so neither dead-ends inside Junction:
- an MCP upstream's own `elicitation/create` during a tool call (the gateway hands it to the
  `on_request` callback of `ToolProvider.call_tool`; `mcp_requests` answers it), and
- an A2A agent's `input-required` during a delegated task (`AgentDirectory.send_task`'s
  `on_input`; `question` asks for one line of text).

A request goes only in a mode the client advertised (`clientCapabilities.elicitation.form` /
`.url`); otherwise it is declined on the person's behalf, which every requester must handle.
Each request names the session and the tool call it belongs to.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from acp.paths import Roots
from acp.protocols import ClientRequestFn
from acp.schema import ClientCapabilities, CreateElicitationResponse
from transports import INVALID_PARAMS, METHOD_NOT_FOUND, JsonRpcPeer, RpcError

ACTIONS = frozenset({"accept", "decline", "cancel"})


class Elicitor:
    """`elicitation/create` for one tool call of one session, on the connection it came from."""

    def __init__(
        self,
        peer: JsonRpcPeer,
        client: ClientCapabilities,
        session_id: str,
        tool_call_id: str | None = None,
    ) -> None:
        self._peer = peer
        self._client = client
        self._scope: dict[str, Any] = {"sessionId": session_id}
        if tool_call_id is not None:
            self._scope["toolCallId"] = tool_call_id

    def supports(self, mode: str) -> bool:
        return self._client.elicits(mode)

    async def create(self, mode: str, message: str, **fields: Any) -> CreateElicitationResponse:
        """Ask in `mode` ("form" with `requestedSchema`, "url" with `url` and `elicitationId`);
        a mode the client did not advertise is declined without asking. An action this agent
        does not know comes back as `cancel`; a client error propagates as `RpcError`."""
        if not self.supports(mode):
            return CreateElicitationResponse(action="decline")
        raw = await self._peer.request(
            "elicitation/create", {**self._scope, "mode": mode, "message": message, **fields}
        )
        try:
            answer = CreateElicitationResponse.model_validate(raw)
        except ValidationError:
            raise RpcError(
                INVALID_PARAMS, "the editor's answer to elicitation/create was not understood"
            ) from None
        if answer.action not in ACTIONS:
            return CreateElicitationResponse(action="cancel")
        return answer

    async def question(self, asker: str, question: str) -> str | None:
        """One line of text for `asker`'s `question` (a form with one string field)."""
        schema = {
            "type": "object",
            "properties": {
                "answer": {"type": "string", "title": "Your answer", "description": question}
            },
            "required": ["answer"],
        }
        answer = await self.create("form", f"{asker} asks: {question}", requestedSchema=schema)
        content = answer.content or {}
        text = content.get("answer")
        if answer.action != "accept" or not isinstance(text, str) or not text.strip():
            return None
        return text


def mcp_requests(elicitor: Elicitor, roots: Roots) -> ClientRequestFn:
    """Answers what an MCP upstream asks its client during a call: `elicitation/create` goes
    to the person (as ACP elicitation), `roots/list` is the session's directories; anything
    else (sampling) is refused with -32601."""

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "elicitation/create":
            return await _mcp_elicitation(elicitor, params)
        if method == "roots/list":
            return {
                "roots": [
                    {"uri": Path(root).as_uri(), "name": Path(root).name or root}
                    for root in roots.all
                ]
            }
        raise RpcError(METHOD_NOT_FOUND, f"the editor's session does not answer {method}")

    return on_request


async def _mcp_elicitation(elicitor: Elicitor, params: dict[str, Any]) -> dict[str, Any]:
    """MCP's ElicitRequest params -> ACP elicitation -> MCP's ElicitResult. MCP's omitted mode
    means form; ACP needs it said."""
    mode = params.get("mode") or "form"
    message = params.get("message")
    if not isinstance(message, str):
        raise RpcError(INVALID_PARAMS, "elicitation/create needs a string message")
    if mode == "form":
        schema = params.get("requestedSchema")
        if not isinstance(schema, dict):
            raise RpcError(INVALID_PARAMS, "a form elicitation needs a requestedSchema object")
        answer = await elicitor.create("form", message, requestedSchema=schema)
    elif mode == "url":
        url = params.get("url")
        if not isinstance(url, str):
            raise RpcError(INVALID_PARAMS, "a URL elicitation needs a url")
        elicitation_id = params.get("elicitationId")
        if not isinstance(elicitation_id, str):
            elicitation_id = f"elicit_{uuid.uuid4().hex}"
        answer = await elicitor.create("url", message, url=url, elicitationId=elicitation_id)
    else:
        return {"action": "decline"}
    result: dict[str, Any] = {"action": answer.action}
    if answer.action == "accept" and answer.content is not None:
        result["content"] = answer.content
    return result


__all__ = ["ACTIONS", "Elicitor", "mcp_requests"]
