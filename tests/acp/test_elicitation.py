"""An MCP upstream's requests to its client during a tool call reach the person in the editor.

The agent runs in this process behind a real OS pipe; the IDE is the wire client. The tool
provider stands where the MCP gateway stands and calls `on_request` as the gateway does when
an upstream sends `elicitation/create` (or `roots/list`, or sampling) mid-call, so what is
checked is the ACP side: what the editor is asked, and what the upstream gets back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acp import AgentRuntime, MemorySessionStore, Services
from acp.protocols import ClientRequestFn, ProgressCallback, ToolInfo
from junction.bridges.acp_services import serve_acp
from junction.build import agent_settings
from junction.config import JunctionConfig
from router_core.types import ChatRequest, Finish, StreamEvent, TextDelta, ToolCall, ToolCallDone
from tests.acp.wire import HANG_GUARD, ClientError, WireClient
from tests.transports.conftest import pipe_pair
from transports import RpcError

FORM = {
    "mode": "form",
    "message": "Which date should I book?",
    "requestedSchema": {
        "type": "object",
        "properties": {"date": {"type": "string", "format": "date"}},
        "required": ["date"],
    },
}


class ScriptedModel:
    """A model that calls the `book` tool once, then answers."""

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    async def stream(
        self, request: ChatRequest, *, key: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        self.requests.append(request)
        if len(self.requests) % 2:
            yield ToolCallDone(ToolCall(id=f"call_{len(self.requests)}", name="book"))
            yield Finish("tool_calls")
        else:
            yield TextDelta("booked")
            yield Finish("stop")

    async def models(self) -> list[str]:
        return ["m1"]


@dataclass(frozen=True)
class _Info:
    name: str
    description: str
    parameters: Mapping[str, Any]
    annotations: Mapping[str, Any]


class AskingTools:
    """Plays an MCP upstream whose tool asks its client things before it answers."""

    def __init__(self, asks: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self.asks = list(asks)
        self.answers: list[Any] = []

    async def llm_tools(self) -> Sequence[ToolInfo]:
        return [_Info("book", "Book a table", {"type": "object"}, {"readOnlyHint": True})]

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_request: ClientRequestFn | None = None,
    ) -> dict[str, Any]:
        assert on_request is not None
        for method, params in self.asks:
            try:
                self.answers.append(await on_request(method, params))
            except RpcError as exc:
                self.answers.append({"error": exc.code})
        return {"content": [{"type": "text", "text": "done"}]}


@contextlib.asynccontextmanager
async def agent(tmp_path: Path, tools: AskingTools) -> AsyncIterator[WireClient]:
    config = JunctionConfig.model_validate({"store": {"url": f"sqlite:///{tmp_path / 'j.db'}"}})

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[Services]:
        yield Services(models=ScriptedModel(), tools=tools)

    runtime = AgentRuntime(agent_settings(config), MemorySessionStore(), lifespan)
    async with pipe_pair(1 << 20) as (server_side, client_side):
        served = asyncio.create_task(serve_acp(server_side, runtime))
        client = WireClient(client_side)
        client.start()
        try:
            yield client
        finally:
            await client.aclose()
            async with asyncio.timeout(HANG_GUARD):
                await served
            await runtime.aclose()


async def test_an_upstreams_form_elicitation_reaches_the_editor_and_its_answer_goes_back(
    tmp_path: Path,
) -> None:
    tools = AskingTools(
        [
            ("elicitation/create", FORM),
            ("elicitation/create", {**FORM, "mode": None, "message": "And the time?"}),
            ("roots/list", {}),
            ("sampling/createMessage", {"messages": []}),
        ]
    )
    asked: list[dict[str, Any]] = []
    replies = [
        {"action": "accept", "content": {"date": "2026-12-24"}},
        {"action": "decline", "content": {"ignored": True}},
    ]

    async def elicit(params: dict[str, Any]) -> dict[str, Any]:
        asked.append(params)
        return replies.pop(0)

    async with agent(tmp_path, tools) as client:
        client.handlers["elicitation/create"] = elicit
        await client.initialize({"elicitation": {"form": {}}})
        sid = await client.new_session(tmp_path)
        response = await client.prompt(sid, "book it")
    assert response["result"] == {"stopReason": "end_turn"}
    call_id = client.of_kind("tool_call")[0]["toolCallId"]
    assert asked[0] == {"sessionId": sid, "toolCallId": call_id, **FORM}
    assert asked[1]["mode"] == "form" and asked[1]["message"] == "And the time?"
    assert tools.answers[0] == {"action": "accept", "content": {"date": "2026-12-24"}}
    assert tools.answers[1] == {"action": "decline"}
    assert tools.answers[2] == {"roots": [{"uri": tmp_path.as_uri(), "name": tmp_path.name}]}
    assert tools.answers[3] == {"error": -32601}


async def test_a_mode_the_editor_did_not_advertise_is_declined_without_asking(
    tmp_path: Path,
) -> None:
    url = {
        "mode": "url",
        "message": "Sign in to the calendar",
        "url": "https://calendar.example/connect",
        "elicitationId": "el-1",
    }
    tools = AskingTools([("elicitation/create", FORM), ("elicitation/create", url)])
    asked: list[dict[str, Any]] = []

    async def elicit(params: dict[str, Any]) -> dict[str, Any]:
        asked.append(params)
        return {"action": "accept"}

    async with agent(tmp_path, tools) as client:
        client.handlers["elicitation/create"] = elicit
        # URL mode only ({"form": null} is no form support).
        await client.initialize({"elicitation": {"url": {}, "form": None}})
        sid = await client.new_session(tmp_path)
        await client.prompt(sid, "book it")
    assert tools.answers == [{"action": "decline"}, {"action": "accept"}]
    assert asked == [{"sessionId": sid, "toolCallId": asked[0]["toolCallId"], **url}]


async def test_an_unknown_answer_is_a_cancel_and_an_editor_error_goes_upstream(
    tmp_path: Path,
) -> None:
    tools = AskingTools([("elicitation/create", FORM), ("elicitation/create", FORM)])
    outcomes: list[Any] = [
        {"action": "_later"},
        ClientError({"code": -32602, "message": "form too complex"}),
    ]

    async def elicit(params: dict[str, Any]) -> dict[str, Any]:
        outcome = outcomes.pop(0)
        if isinstance(outcome, ClientError):
            raise outcome
        return dict(outcome)

    async with agent(tmp_path, tools) as client:
        client.handlers["elicitation/create"] = elicit
        await client.initialize({"elicitation": {"form": {}}})
        sid = await client.new_session(tmp_path)
        response = await client.prompt(sid, "book it")
    assert response["result"] == {"stopReason": "end_turn"}
    assert tools.answers == [{"action": "cancel"}, {"error": -32602}]
