"""ACP's 2026 stable features, with the official Python SDK client as the IDE (its own venv,
`junction --mode stdio` spawned as an editor does): the boolean `agents` switch and its select
fallback, and an A2A agent's `input-required` reaching the person as an elicitation."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.a2a.harness import sdk_agent
from tests.acp.test_sdk_clients import AGENT, REPO, run
from tests.peers import python_peer
from tests.router_core.llm_servers import Call, Reply, openai_server

PEER = Path(__file__).parent / "peers" / "sdk_features.py"
ELICITING = REPO / "tests" / "fixtures" / "mcp_conformance_server.py"
"""An MCP server (the `mcp` SDK) whose `test_elicitation` tool asks its client for a response."""


def write_config(
    tmp_path: Path, model_url: str, mcp: dict[str, Any] | None = None, **agents: str
) -> Path:
    path = tmp_path / "junction.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'sessions.db'}"},
                "backends": {
                    "fake": {"type": "openai", "url": f"{model_url}/v1", "models": ["m1"]}
                },
                "a2a_agents": {name: {"url": url} for name, url in agents.items()},
                "mcp_servers": mcp or {},
                "acp": {"default_model": "m1", "default_mode": "auto"},
                "logging": {"level": "warning"},
            }
        )
    )
    return path


async def drive(
    tmp_path: Path, config: Path, steps: list[dict[str, Any]], answers: list[Any] | None = None
) -> dict[str, Any]:
    spec = tmp_path / f"spec-{uuid.uuid4().hex}.json"
    spec.write_text(
        json.dumps(
            {
                "agent": [*AGENT, str(config)],
                "workdir": str(REPO),
                "cwd": str(tmp_path),
                "steps": steps,
                "answers": answers or [],
            }
        )
    )
    return await run([str(python_peer("agent-client-protocol")), str(PEER), str(spec)])


def ok(report: dict[str, Any], index: int) -> Any:
    result = report["results"][index]
    assert "ok" in result, result
    return result["ok"]


def option(options: list[dict[str, Any]], option_id: str) -> dict[str, Any]:
    return next(o for o in options if o["id"] == option_id)


def offered(request: Any) -> set[str]:
    return {tool["function"]["name"] for tool in request.body.get("tools") or []}


async def test_the_agents_switch_is_boolean_persisted_and_withholds_the_agents(
    tmp_path: Path,
) -> None:
    with sdk_agent("alpha", "1.0") as alpha:
        async with openai_server(models=["m1"]) as server:
            server.script([Reply(text="one"), Reply(text="two")])
            config = write_config(tmp_path, server.url, alpha=alpha)
            first = await drive(
                tmp_path,
                config,
                [
                    {"do": "initialize", "boolean": True},
                    {"do": "new"},
                    {"do": "set", "id": "agents", "value": False},
                    {"do": "prompt", "text": "hello"},
                ],
            )
            sid = ok(first, 1)["sessionId"]
            # A new agent process on the same store: the switch came back with the session.
            second = await drive(
                tmp_path,
                config,
                [
                    {"do": "initialize", "boolean": True},
                    {"do": "load", "session": sid},
                    {"do": "prompt", "text": "again"},
                ],
            )
    created = option(ok(first, 1)["configOptions"], "agents")
    assert created["type"] == "boolean" and created["currentValue"] is True
    assert "options" not in created
    assert option(ok(first, 2)["configOptions"], "agents")["currentValue"] is False
    assert option(ok(second, 1)["configOptions"], "agents")["currentValue"] is False
    # Two prompts, both after the switch went off: no agent tool was offered to the model.
    assert len(server.chat_requests) == 2
    assert all("a2a__alpha" not in offered(r) for r in server.chat_requests)


async def test_a_client_without_boolean_options_gets_an_on_off_select(tmp_path: Path) -> None:
    with sdk_agent("alpha", "1.0") as alpha:
        async with openai_server(models=["m1"]) as server:
            server.script([Reply(text="one"), Reply(text="two")])
            config = write_config(tmp_path, server.url, alpha=alpha)
            report = await drive(
                tmp_path,
                config,
                [
                    {"do": "initialize"},
                    {"do": "new"},
                    {"do": "prompt", "text": "with agents"},
                    {"do": "set", "id": "agents", "value": "off"},
                    {"do": "prompt", "text": "without"},
                    {"do": "set", "id": "agents", "value": True},
                ],
            )
    created = option(ok(report, 1)["configOptions"], "agents")
    assert created["type"] == "select" and created["currentValue"] == "on"
    assert [o["value"] for o in created["options"]] == ["on", "off"]
    assert option(ok(report, 3)["configOptions"], "agents")["currentValue"] == "off"
    assert "a2a__alpha" in offered(server.chat_requests[0])
    assert "a2a__alpha" not in offered(server.chat_requests[1])
    # A boolean sent anyway is taken; the option stays a select for this client.
    assert option(ok(report, 5)["configOptions"], "agents")["currentValue"] == "on"


async def test_an_a2a_agents_question_reaches_the_person_and_the_answer_goes_back(
    tmp_path: Path,
) -> None:
    with sdk_agent("alpha", "1.0") as alpha:
        async with openai_server(models=["m1"]) as server:
            server.script(
                [
                    Reply(tool_calls=[Call("a2a__alpha", {"message": "ask"})]),
                    Reply(text="It is done."),
                    Reply(tool_calls=[Call("a2a__alpha", {"message": "ask"})]),
                    Reply(text="It asked."),
                ]
            )
            config = write_config(tmp_path, server.url, alpha=alpha)
            report = await drive(
                tmp_path,
                config,
                [
                    {"do": "initialize", "elicitation": ["form"]},
                    {"do": "new"},
                    {"do": "prompt", "text": "delegate"},
                    {"do": "prompt", "text": "delegate again"},
                ],
                answers=[{"accept": {"answer": "blue"}}, "decline"],
            )
            # A client that does not take elicitation: the question is the tool's result.
            server.script(
                [Reply(tool_calls=[Call("a2a__alpha", {"message": "ask"})]), Reply(text="ok")]
            )
            plain = await drive(
                tmp_path,
                config,
                [{"do": "initialize"}, {"do": "new"}, {"do": "prompt", "text": "delegate"}],
            )
    assert ok(report, 2)["stopReason"] == "end_turn"
    asked, declined = report["elicitations"]
    sid = ok(report, 1)["sessionId"]
    assert asked["message"] == "alpha asks: what else?"
    assert asked["kind"] == "ElicitationFormSessionMode" and asked["sessionId"] == sid
    call_ids = [
        u["toolCallId"] for u in ok(report, 2)["updates"] if u["sessionUpdate"] == "tool_call"
    ]
    assert asked["toolCallId"] == call_ids[0]
    assert asked["requestedSchema"]["required"] == ["answer"]
    # The answer went to the same task as its next message; the model read the outcome.
    tool_results = [m for m in server.chat_requests[1].body["messages"] if m["role"] == "tool"]
    assert tool_results[-1]["content"] == "alpha got: blue"
    assert declined["message"] == "alpha asks: what else?"
    declined_results = [m for m in server.chat_requests[3].body["messages"] if m["role"] == "tool"]
    assert declined_results[-1]["content"] == "alpha needs more input: what else?"
    assert plain["elicitations"] == []
    plain_results = [m for m in server.chat_requests[5].body["messages"] if m["role"] == "tool"]
    assert plain_results[-1]["content"] == "alpha needs more input: what else?"


async def test_an_mcp_servers_elicitation_reaches_the_person_and_the_answer_goes_back(
    tmp_path: Path,
) -> None:
    """A real MCP upstream (stdio, the `mcp` SDK, 2026-07-28: an input-required result) asks
    for input during a tool call; the editor (the official SDK client) is asked, and the
    upstream gets the answer and finishes the call with it."""
    upstream = {"conf": {"command": sys.executable, "args": [str(ELICITING), "stdio"]}}
    async with openai_server(models=["m1"]) as server:
        call = Call("conf__test_input_required_result_elicitation", {})
        server.script([Reply(tool_calls=[call]), Reply(text="Done."), Reply(tool_calls=[call])])
        server.default = Reply(text="Done.")
        config = write_config(tmp_path, server.url, mcp=upstream)
        report = await drive(
            tmp_path,
            config,
            [
                {"do": "initialize", "elicitation": ["form"]},
                {"do": "new"},
                {"do": "prompt", "text": "greet me"},
                {"do": "prompt", "text": "greet me again"},
            ],
            answers=[{"accept": {"name": "Ada"}}, "decline"],
        )
    assert ok(report, 2)["stopReason"] == "end_turn"
    asked, declined = report["elicitations"]
    assert asked["message"] == declined["message"] == "What is your name?"
    assert asked["kind"] == "ElicitationFormSessionMode"
    assert asked["sessionId"] == ok(report, 1)["sessionId"]
    assert asked["requestedSchema"]["required"] == ["name"]
    results = [
        m["content"] for m in server.chat_requests[-1].body["messages"] if m["role"] == "tool"
    ]
    assert results == ["Hello, Ada!", "Hello, ?!"]
