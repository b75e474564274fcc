"""A2A agents as tools in an ACP turn: a real a2a-sdk agent, called because the model asked."""

from __future__ import annotations

from pathlib import Path

from junction.config import JunctionConfig
from tests.a2a.harness import sdk_agent
from tests.acp.wire import agent, agent_config
from tests.router_core.llm_servers import Call, Reply, openai_server


def with_agents(config: JunctionConfig, **agents: str) -> JunctionConfig:
    data = config.model_dump()
    data["a2a_agents"] = {name: {"url": url} for name, url in agents.items()}
    return JunctionConfig.model_validate(data)


async def test_the_model_hands_a_task_to_an_a2a_agent_and_sees_its_answer(tmp_path: Path) -> None:
    with sdk_agent("alpha", "1.0", ("summarize:text",)) as alpha, sdk_agent("beta", "0.3") as beta:
        async with openai_server(models=["m1"]) as server:
            server.script(
                [
                    Reply(tool_calls=[Call("a2a__alpha", {"message": "steps 3"})]),
                    Reply(tool_calls=[Call("a2a__beta", {"message": "echo from 0.3"})]),
                    Reply(text="Both agents answered."),
                ]
            )
            config = with_agents(
                agent_config(server.url, tmp_path / "j.db"), alpha=alpha, beta=beta
            )
            async with agent(config, {"default_mode": "auto"}) as client:
                await client.initialize()
                sid = await client.new_session(tmp_path)
                response = await client.prompt(sid, "ask the agents")
    assert response["result"] == {"stopReason": "end_turn"}
    offered = {tool["function"]["name"] for tool in server.chat_requests[0].body["tools"]}
    assert {"a2a__alpha", "a2a__beta"} <= offered
    tool_messages = [m for m in server.chat_requests[2].body["messages"] if m["role"] == "tool"]
    assert tool_messages[0]["content"] == "chunk 0chunk 1chunk 2"
    assert tool_messages[1]["content"] == "echo: from 0.3"
    updates = client.of_kind("tool_call_update")
    assert [u["status"] for u in updates if u.get("status") in ("completed", "failed")] == [
        "completed",
        "completed",
    ]
    assert client.text().endswith("Both agents answered.")


async def test_an_agent_that_dies_fails_only_its_tool_call(tmp_path: Path) -> None:
    with sdk_agent("alpha", "1.0") as alpha:
        async with openai_server(models=["m1"]) as server:
            server.script(
                [
                    Reply(tool_calls=[Call("a2a__alpha", {"message": "die"})]),
                    Reply(text="It failed, sorry."),
                ]
            )
            config = with_agents(
                agent_config(server.url, tmp_path / "j.db"),
                alpha=alpha,
                gone="http://127.0.0.1:9",
            )
            async with agent(config, {"default_mode": "auto"}) as client:
                await client.initialize()
                sid = await client.new_session(tmp_path)
                response = await client.prompt(sid, "try it")
    assert response["result"] == {"stopReason": "end_turn"}
    offered = {tool["function"]["name"] for tool in server.chat_requests[0].body["tools"]}
    assert "a2a__alpha" in offered and "a2a__gone" not in offered
    failed = [u for u in client.of_kind("tool_call_update") if u.get("status") == "failed"]
    assert len(failed) == 1
    assert "alpha" in str(failed[0]["content"])


async def test_cancelling_the_prompt_cancels_the_agent_task(tmp_path: Path) -> None:
    with sdk_agent("alpha", "1.0") as alpha:
        async with openai_server(models=["m1"]) as server:
            server.script([Reply(tool_calls=[Call("a2a__alpha", {"message": "wait"})])])
            config = with_agents(agent_config(server.url, tmp_path / "j.db"), alpha=alpha)
            async with agent(config, {"default_mode": "auto"}) as client:
                await client.initialize()
                sid = await client.new_session(tmp_path)
                running = client.start_request(
                    "session/prompt",
                    {"sessionId": sid, "prompt": [{"type": "text", "text": "wait for it"}]},
                )
                # The agent's "still working" status reaches the IDE as tool-call progress.
                await client.wait_for(
                    lambda: any(
                        "still working" in str(u.get("content"))
                        for u in client.of_kind("tool_call_update")
                    )
                )
                await client.notify("session/cancel", {"sessionId": sid})
                response = await running
    assert response["result"] == {"stopReason": "cancelled"}


async def test_an_agent_has_its_mcp_tool_name_in_sessions_too(tmp_path: Path) -> None:
    """One name per agent on every surface: with `mcp.separator: "-"` the model calls the
    agent `a2a-alpha`, as MCP clients do (so one permission rule or key glob covers both)."""
    with sdk_agent("alpha", "1.0") as alpha:
        async with openai_server(models=["m1"]) as server:
            server.script([Reply(text="nothing to do")])
            config = with_agents(agent_config(server.url, tmp_path / "j.db"), alpha=alpha)
            data = config.model_dump()
            data["mcp"]["separator"] = "-"
            config = JunctionConfig.model_validate(data)
            async with agent(config, {"default_mode": "auto"}) as client:
                await client.initialize()
                sid = await client.new_session(tmp_path)
                await client.prompt(sid, "who is there?")
    offered = {tool["function"]["name"] for tool in server.chat_requests[0].body["tools"]}
    assert "a2a-alpha" in offered and "a2a__alpha" not in offered
