"""A2A agents as MCP tools: real a2a-sdk agents behind `junction --mode mcp` (a subprocess),
driven by the `mcp` SDK client over stdio."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from a2a import A2aClient
from a2a.client import TaskResult
from junction.bridges.a2a_tools import a2a_result, a2a_tool_name
from junction.config import JunctionConfig
from router_core import close_session
from tests.a2a.harness import free_port, sdk_agent
from tests.mcp_gateway.conftest import SERVERS

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(sdk_agent(name)) for name in ("helper", "doomed", "hidden")
        }


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory, agents: dict[str, str]) -> Path:
    path = tmp_path_factory.mktemp("junction") / "junction.yaml"
    path.write_text(
        json.dumps(
            {
                "mcp_servers": {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}},
                "a2a": {"card_timeout": 2},
                "a2a_agents": {
                    "helper": {"url": agents["helper"]},
                    "doomed": {"url": agents["doomed"]},
                    "hidden": {"url": agents["hidden"], "mcp_tool": False},
                    "gone": {"url": f"http://127.0.0.1:{free_port()}"},
                },
            }
        )
    )
    return path


def params(config: Path) -> StdioServerParameters:
    command = str(Path(sys.executable).with_name("junction"))
    return StdioServerParameters(
        command=command, args=["--mode", "mcp", "--config", str(config)], env=dict(os.environ)
    )


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_agents_are_listed_as_namespaced_tools(config: Path) -> None:
    async with Client(params(config), mode="legacy") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "ok__echo" in tools  # MCP upstream tools stay beside them
        assert {"a2a__helper", "a2a__doomed"} <= set(tools)
        assert "a2a__hidden" not in tools  # mcp_tool: false
        assert "a2a__gone" not in tools  # unreachable: left out, the others still offered
        schema = tools["a2a__helper"].input_schema
        assert schema["required"] == ["message"]
        assert set(schema["properties"]) == {"message", "data", "contextId"}
        assert schema["properties"]["data"]["type"] == "object"
        assert "test agent helper" in (tools["a2a__helper"].description or "")


async def test_echo_steps_ask_and_die(config: Path) -> None:
    async with Client(params(config), mode="legacy") as client:
        echo = await client.call_tool("a2a__helper", {"message": "echo hi"})
        assert not echo.is_error and text(echo) == "echo: hi"

        seen: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message))

        steps = await client.call_tool(
            "a2a__helper", {"message": "steps 3"}, progress_callback=on_progress
        )
        assert not steps.is_error and text(steps) == "chunk 0chunk 1chunk 2"
        assert [m for _, m in seen] == ["chunk 0", "chunk 1", "chunk 2"]
        assert [p for p, _ in seen] == sorted({p for p, _ in seen})  # strictly increasing

        ask = await client.call_tool("a2a__helper", {"message": "ask"})
        assert not ask.is_error
        assert ask.structured_content is not None
        context = ask.structured_content["contextId"]
        assert ask.structured_content["question"] == "what else?"
        assert "what else?" in text(ask) and context in text(ask)
        answer = await client.call_tool(
            "a2a__helper", {"message": "blue", "contextId": context}
        )  # continues the waiting task
        assert not answer.is_error and text(answer) == "helper got: blue"

        wrong = await client.call_tool("a2a__helper", {"message": 5})
        assert wrong.is_error and "is not of type 'string'" in text(wrong)

        died = await client.call_tool("a2a__doomed", {"message": "die"})
        assert died.is_error and "doomed" in text(died) and "could not complete" in text(died)
        # The process and the other tools stay up.
        assert text(await client.call_tool("a2a__helper", {"message": "echo again"})) == (
            "echo: again"
        )


async def test_file_only_and_empty_artifacts_over_the_wire(config: Path) -> None:
    async with Client(params(config), mode="legacy") as client:
        files = await client.call_tool("a2a__helper", {"message": "file"})
        assert not files.is_error
        kinds = [c.type for c in files.content]
        assert kinds == ["resource_link", "resource"], files.content
        link, embedded = files.content
        assert isinstance(link, types.ResourceLink) and str(link.uri) == "https://example.com/r.pdf"
        assert isinstance(embedded, types.EmbeddedResource)
        assert isinstance(embedded.resource, types.BlobResourceContents)
        assert embedded.resource.blob == "aGk="  # b"hi", base64 as A2A carries it
        empty = await client.call_tool("a2a__helper", {"message": "empty"})
        assert not empty.is_error and "finished with no output" in text(empty)


async def test_data_reaches_the_agent_and_cancel_cancels_the_task(
    config: Path, agents: dict[str, str]
) -> None:
    async with Client(params(config), mode="legacy") as client:
        reply = await client.call_tool(
            "a2a__helper", {"message": "echo with data", "data": {"k": 1}}
        )
        assert text(reply) == "echo: with data"
        with pytest.raises(TimeoutError), anyio.fail_after(1.0):
            await client.call_tool("a2a__helper", {"message": "wait"})
        agent = A2aClient(agents["helper"])
        with anyio.fail_after(5):
            try:
                await _until_canceled(agent)
            finally:
                await close_session()


async def _until_canceled(agent: A2aClient) -> None:
    """Poll the agent itself until its one `wait` task is canceled."""
    while True:
        listed: dict[str, Any] = await (await agent._rpc()).call("ListTasks", {})
        states = {
            t["status"]["state"]
            for t in listed.get("tasks", [])
            if t.get("history", [{}])[0].get("parts", [{}])[0].get("text") == "wait"
        }
        if states == {"TASK_STATE_CANCELED"}:
            return
        await anyio.sleep(0.1)


async def test_artifacts_map_to_mcp_content() -> None:
    """Files become links or embedded resources, data becomes structured content, nothing at all
    still says something, and failures carry the agent's reason."""
    done = "TASK_STATE_COMPLETED"
    only_files = TaskResult(
        state=done,
        task_id="t1",
        context_id="c1",
        artifacts=[
            {
                "artifactId": "a1",
                "parts": [
                    {"url": "https://example.com/r.pdf", "mediaType": "application/pdf"},
                    {"raw": "aGk=", "filename": "hi.txt", "mediaType": "text/plain"},
                ],
            }
        ],
    )
    out = a2a_result("x", only_files)
    assert [c["type"] for c in out["content"]] == ["resource_link", "resource"]
    assert out["content"][0]["uri"] == "https://example.com/r.pdf"
    assert out["content"][1]["resource"] == {
        "uri": "a2a://x/tasks/t1/artifacts/a1/hi.txt",
        "mimeType": "text/plain",
        "blob": "aGk=",
    }
    types.CallToolResult.model_validate(out)
    data = a2a_result("x", TaskResult(state=done, artifacts=[{"parts": [{"data": {"n": 1}}]}]))
    assert data["structuredContent"] == {"n": 1} and json.loads(data["content"][0]["text"]) == {
        "n": 1
    }
    empty = a2a_result("x", TaskResult(state=done, artifacts=[{"artifactId": "e", "parts": []}]))
    assert not empty.get("isError") and "no output" in empty["content"][0]["text"]
    failed = a2a_result("x", TaskResult(state="TASK_STATE_FAILED", note="out of disk"))
    assert failed["isError"] and "failed: out of disk" in failed["content"][0]["text"]
    assert a2a_tool_name("a" * 80).startswith("a2a__aaa") and len(a2a_tool_name("a" * 80)) == 64
    assert a2a_tool_name("my agent") != "a2a__my agent"


async def test_mcp_tool_is_on_by_default_and_typed() -> None:
    config = JunctionConfig.model_validate(
        {
            "a2a_agents": {
                "a": {"url": "http://127.0.0.1:1"},
                "b": {"url": "http://127.0.0.1:2", "mcp_tool": False},
            }
        }
    )
    assert config.a2a_agents["a"].mcp_tool == "agent"
    assert config.a2a_agents["b"].mcp_tool == "off"
    with pytest.raises(ValueError, match="mcp_tool"):
        JunctionConfig.model_validate(
            {"a2a_agents": {"a": {"url": "http://127.0.0.1:1", "mcp_tool": "sometimes"}}}
        )


async def test_serve_mode_tools_follow_the_registry_per_skill_with_a_deadline(
    tmp_path: Path, agents: dict[str, str]
) -> None:
    """On `/mcp`: one tool per skill, an agent registered or removed through the admin API
    shows up or goes with `tools/list_changed` (no card refresh needed), and a call that
    outlives the MCP deadline is ended and its task canceled."""
    import httpx
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from junction import Junction
    from tests.transports.servers import serve_app

    with sdk_agent("skilled", "1.0", ("summarize:text", "translate:text")) as skilled:
        junction = Junction.from_config(
            {
                "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
                "mcp": {"call_timeout": 4},  # the echo call below must fit on a busy machine
                "a2a": {"card_timeout": 2, "card_refresh": 3600},
                "a2a_agents": {"skilled": {"url": skilled, "mcp_tool": "skills"}},
            }
        )
        changes: list[str] = []

        async def on_message(message: Any) -> None:
            if getattr(message, "method", "") == "notifications/tools/list_changed":
                changes.append("tools")

        async def names(client: Client) -> set[str]:
            return {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}

        async def told(before: int) -> None:
            """A `tools/list_changed` came after the first `before` (it may trail the list a
            poll already saw changed: the two travel separately)."""
            with anyio.fail_after(10):
                while len(changes) <= before:  # noqa: ASYNC110
                    await anyio.sleep(0.05)

        async def until(client: Client, check: Any) -> set[str]:
            with anyio.fail_after(10):
                while not check(current := await names(client)):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            return current

        async with junction, serve_app(junction.asgi_app()) as base:
            mcp = streamable_http_client(f"{base}/mcp")
            async with Client(mcp, mode="legacy", message_handler=on_message) as client:
                assert {n for n in await names(client) if n.startswith("a2a__")} == {
                    "a2a__skilled__summarize",
                    "a2a__skilled__translate",
                }
                async with httpx.AsyncClient(base_url=base) as http:
                    added = await http.post(
                        "/admin/a2a/agents", json={"name": "extra", "url": agents["helper"]}
                    )
                    assert added.status_code in (200, 201), added.text
                    await until(client, lambda n: "a2a__extra" in n)
                    await told(0)  # the client was told, not left to poll
                    echo = await client.call_tool("a2a__extra", {"message": "echo hey"})
                    assert text(echo) == "echo: hey"
                    seen = len(changes)
                    assert (await http.delete("/admin/a2a/agents/extra")).status_code in (200, 204)
                    await until(client, lambda n: "a2a__extra" not in n)
                    await told(seen)

                with pytest.raises(MCPError, match="timed out after 4s"):
                    await client.call_tool("a2a__skilled__summarize", {"message": "wait"})
            agent = A2aClient(skilled)
            with anyio.fail_after(5):
                try:
                    await _until_canceled(agent)
                finally:
                    await close_session()
