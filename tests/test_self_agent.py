"""Junction's own A2A agent: the official a2a-sdk client sends tasks to a served Junction whose
self-agent answers with the scripted model server, calling a real MCP upstream
(server-everything) and other hubs; loops between hubs are stopped by the hop path."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from junction import Junction
from tests.a2a.harness import sdk_client, task_of, texts
from tests.peers import npm_bin
from tests.router_core.llm_servers import (
    Call,
    FakeLLMServer,
    Fault,
    Received,
    Reply,
    openai_server,
)
from tests.transports.servers import loopback_socket, serve_app

pytestmark = pytest.mark.asyncio(loop_scope="module")


def config(tmp: Path, model_url: str, **self_agent: Any) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{tmp}/junction.db"},
        "backends": {"fake": {"type": "openai", "url": f"{model_url}/v1", "models": ["m1"]}},
        "mcp_servers": {"everything": {"command": str(npm_bin("mcp-server-everything"))}},
        "a2a": {
            "card_timeout": 2,
            "self_agent": {
                "name": "junction",
                "skills": [{"id": "answer", "description": "answers anything", "tags": ["qa"]}],
                "mcp_tools": ["everything__echo"],
                **self_agent,
            },
        },
    }


@contextlib.asynccontextmanager
async def served(cfg: dict[str, Any], sock: Any = None) -> AsyncIterator[tuple[Junction, str]]:
    junction = Junction.from_config(cfg)
    async with junction, serve_app(junction.asgi_app(), sock=sock) as base:
        await junction.gateway.wait_settled(30)
        yield junction, base


def tool_results(received: Received) -> list[str]:
    """The tool messages the model was sent (the turn loop's results of its calls)."""
    return [
        str(m.get("content"))
        for m in received.body.get("messages", [])
        if isinstance(m, dict) and m.get("role") == "tool"
    ]


def tool_names(received: Received) -> set[str]:
    return {t["function"]["name"] for t in received.body.get("tools") or []}


def last_user_text(received: Received) -> str:
    users = [m for m in received.body["messages"] if m.get("role") == "user"]
    content = users[-1]["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content)
    return str(content)


def state(task: dict[str, Any]) -> str:
    return str(task["status"]["state"])


async def test_sdk_client_task_completed_with_a_real_mcp_tool(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        model.script(
            [
                Reply(tool_calls=[Call("everything__echo", {"message": "hello"})]),
                lambda received: Reply(text="The tool said: " + tool_results(received)[-1]),
            ]
        )
        async with served(config(tmp_path, model.url)) as (_, base):
            card = await _card(base)
            assert [s["description"] for s in card["skills"]] == [
                "answers anything (agent: junction)"
            ]
            async with sdk_client(base, "1.0") as client:
                events = await client.ok(
                    "send", text="echo hello please", stream=True, metadata={"agent": "junction"}
                )
        first = model.chat_requests[0]
        # Only the tools its config allows (plus ask_caller); never the agents' MCP tools.
        assert tool_names(first) == {"everything__echo", "ask_caller"}
        assert "Echo: hello" in tool_results(model.chat_requests[1])[-1]
    final = [e for e in events if "statusUpdate" in e][-1]["statusUpdate"]
    assert final["status"]["state"] == "TASK_STATE_COMPLETED"
    chunks = [e["artifactUpdate"] for e in events if "artifactUpdate" in e]
    assert chunks, events  # streamed as it came, not only at the end
    answer = "".join(p.get("text", "") for c in chunks for p in c["artifact"].get("parts", []))
    assert answer == "The tool said: Echo: hello"
    working = [
        e["statusUpdate"]["status"]
        for e in events
        if "statusUpdate" in e and e["statusUpdate"]["status"]["state"] == "TASK_STATE_WORKING"
    ]
    notes = [p["text"] for s in working if "message" in s for p in s["message"]["parts"]]
    assert any("everything__echo" in note for note in notes), notes


async def test_input_required_then_continued_and_stored(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        model.script(
            [
                Reply(tool_calls=[Call("ask_caller", {"question": "Which city?"})]),
                Reply(text="I have asked."),
                lambda received: Reply(text=f"Weather in {last_user_text(received)}: sunny"),
            ]
        )
        async with served(config(tmp_path, model.url)) as (_, base):
            async with sdk_client(base, "1.0") as client:
                asked = task_of(await client.ok("send", text="What is the weather?"))
                assert state(asked) == "TASK_STATE_INPUT_REQUIRED"
                question = asked["status"]["message"]["parts"][0]["text"]
                assert question == "Which city?"
                done = task_of(await client.ok("send", text="Paris", task_id=asked["id"]))
                assert done["id"] == asked["id"]
                assert state(done) == "TASK_STATE_COMPLETED"
                assert texts(done)[-1] == "Weather in Paris: sunny"
                stored = await client.ok("get", id=asked["id"])
                assert state(stored) == "TASK_STATE_COMPLETED"
                again = await client.call("send", text="more", task_id=asked["id"])
                assert "error" in again  # a finished task takes no more messages
        # The model saw the whole conversation: its question, then the answer.
        assert len(model.chat_requests) == 3
        assert last_user_text(model.chat_requests[2]) == "Paris"


async def test_tools_it_may_not_use_are_refused_with_a_reason(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        "",
        mcp_tools=["everything__echo", "everything__get-sum"],
        permissions={"rules": [["everything__echo", "ask"]]},
    )
    async with openai_server(models=["m1"]) as model:
        cfg["backends"]["fake"]["url"] = f"{model.url}/v1"
        model.script(
            [
                Reply(tool_calls=[Call("everything__get-env", {})]),  # not in mcp_tools
                Reply(tool_calls=[Call("everything__echo", {"message": "x"})]),  # policy: ask
                Reply(text="could not do it"),
            ]
        )
        async with served(cfg) as (_, base):
            async with sdk_client(base, "1.0") as client:
                task = task_of(await client.ok("send", text="print the environment"))
        assert state(task) == "TASK_STATE_COMPLETED"
        unknown = tool_results(model.chat_requests[1])[-1]
        assert "Unknown tool 'everything__get-env'" in unknown
        denied = tool_results(model.chat_requests[2])[-1]
        assert "Permission denied" in denied and "nobody can approve" in denied


async def test_failed_model_call_fails_the_task(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        async with served(config(tmp_path, model.url)) as (_, base):
            model.fault(Fault.http(500))  # every attempt, so the router's retries fail too
            async with sdk_client(base, "1.0") as client:
                task = task_of(await client.ok("send", text="hi"))
    assert state(task) == "TASK_STATE_FAILED"
    assert "model request failed" in task["status"]["message"]["parts"][0]["text"]


async def test_a_loop_between_two_hubs_is_stopped(tmp_path: Path) -> None:
    """Hub A's agent asks hub B, whose agent asks hub A again: A refuses the message (it has
    already passed through A), B's model hears why, and both tasks still end."""
    sock_a, sock_b = loopback_socket(), loopback_socket()
    url_a = f"http://127.0.0.1:{sock_a.getsockname()[1]}"
    url_b = f"http://127.0.0.1:{sock_b.getsockname()[1]}"
    async with openai_server(models=["m1"]) as model_a, openai_server(models=["m1"]) as model_b:
        model_a.script(
            [
                Reply(tool_calls=[Call("a2a__b", {"message": "ask a"})]),
                lambda received: Reply(text="B said: " + tool_results(received)[-1]),
            ]
        )
        model_b.script(
            [
                Reply(tool_calls=[Call("a2a__a", {"message": "ask a again"})]),
                lambda received: Reply(text="A refused: " + tool_results(received)[-1]),
            ]
        )
        cfg_a = _hub_config(tmp_path / "a", model_a, "hub-a", {"b": {"url": url_b}})
        cfg_b = _hub_config(tmp_path / "b", model_b, "hub-b", {"a": {"url": url_a}})
        async with served(cfg_a, sock_a) as (_, base_a), served(cfg_b, sock_b):
            async with sdk_client(base_a, "1.0") as client:
                task = task_of(await client.ok("send", text="start", timeout=60))
    assert state(task) == "TASK_STATE_COMPLETED"
    refusal = tool_results(model_b.chat_requests[1])[-1]
    assert "loop" in refusal.lower() and "hub-a" in refusal, refusal
    assert texts(task)[-1].startswith("B said: A refused:")
    assert len(model_a.chat_requests) == 2  # A's agent was never asked a second time


def _hub_config(
    tmp: Path, model: FakeLLMServer, hub_id: str, agents: dict[str, Any]
) -> dict[str, Any]:
    tmp.mkdir()
    cfg = config(tmp, model.url, fallback=True)
    cfg["a2a"]["hub_id"] = hub_id
    cfg["a2a_agents"] = {name: {**spec, "mcp_tool": "off"} for name, spec in agents.items()}
    return cfg


async def _card(base: str) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient() as http:
        response = await http.get(f"{base}/.well-known/agent-card.json")
        response.raise_for_status()
        card: dict[str, Any] = response.json()
        return card


async def test_subscribe_and_cancel_a_running_task(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        model.script([Reply(text="slow " * 200, chunk_size=5, chunk_delay=0.05)])
        async with served(config(tmp_path, model.url)) as (_, base):
            async with sdk_client(base, "1.0") as client:
                started = task_of(
                    await client.ok("send", text="take your time", return_immediately=True)
                )
                events = await client.ok("subscribe", id=started["id"], max_events=3)
                assert any("artifactUpdate" in e for e in events), events  # it is streaming
                canceled = await client.ok("cancel", id=started["id"])
                assert state(canceled) == "TASK_STATE_CANCELED"
                stored = await client.ok("get", id=started["id"])
                assert state(stored) == "TASK_STATE_CANCELED"
                again = await client.call("cancel", id=started["id"])
                assert "error" in again  # already canceled: not cancelable again
            await model.wait_disconnect()  # the model's stream was closed, not left running


async def test_a_waiting_task_is_continued_after_a_restart(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        model.script(
            [
                Reply(tool_calls=[Call("ask_caller", {"question": "Which file?"})]),
                Reply(text="Asked."),
                lambda received: Reply(text=f"Opened {last_user_text(received)}"),
            ]
        )
        cfg = config(tmp_path, model.url)
        async with served(cfg) as (_, base):
            async with sdk_client(base, "1.0") as client:
                asked = task_of(await client.ok("send", text="open the file"))
        assert state(asked) == "TASK_STATE_INPUT_REQUIRED"
        async with served(cfg) as (_, base):  # a new process's worth of state: store only
            async with sdk_client(base, "1.0") as client:
                done = task_of(await client.ok("send", text="notes.md", task_id=asked["id"]))
    assert state(done) == "TASK_STATE_COMPLETED"
    assert texts(done)[-1] == "Opened notes.md"
    # The resumed session still had the first turn: the model saw its own question.
    assert "Which file?" in str(model.chat_requests[2].body["messages"])


async def test_mcp_clients_reach_junctions_own_agent_as_a_tool(tmp_path: Path) -> None:
    import anyio
    import mcp_types as types
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with openai_server(models=["m1"]) as model:
        model.script([Reply(text="self-agent here")])
        async with served(config(tmp_path, model.url)) as (_, base):
            async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as client:

                async def names() -> set[str]:
                    return {t.name for t in (await client.list_tools()).tools}

                with anyio.fail_after(10):
                    while "a2a__junction" not in await names():  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                result = await client.call_tool("a2a__junction", {"message": "who are you?"})
    assert not result.is_error
    texts_out = [c.text for c in result.content if isinstance(c, types.TextContent)]
    assert texts_out == ["self-agent here"]
    assert last_user_text(model.chat_requests[0]) == "who are you?"


LIMITED_KEYS = [
    {
        "key": "own-agent-only",
        "a2a_agents": ["junction"],
        "mcp_tools": ["none"],
        "models": ["none"],
    },
    {"key": "no-tools", "a2a_agents": ["junction"], "mcp_tools": ["a2a__junction"]},
    {"key": "tool-no-model", "mcp_tools": ["a2a__junction"], "models": ["none"]},
]


async def test_a_keys_model_limit_holds_through_its_own_agent(tmp_path: Path) -> None:
    """A key that may use only Junction's own agent gets no model call out of it."""
    cfg = config(tmp_path, "")
    cfg["server"] = {"api_keys": LIMITED_KEYS}
    async with openai_server(models=["m1"]) as model:
        cfg["backends"]["fake"]["url"] = f"{model.url}/v1"
        model.script([Reply(text="a model answer the key may not have")])
        async with served(cfg) as (_, base):
            async with sdk_client(base, "1.0", token="own-agent-only") as client:
                task = task_of(await client.ok("send", text="hi", metadata={"agent": "junction"}))
        assert model.chat_requests == []
    assert state(task) == "TASK_STATE_FAILED"
    assert "not allowed for this API key" in task["status"]["message"]["parts"][0]["text"]


async def test_a_keys_tool_and_agent_limits_hold_through_its_own_agent(tmp_path: Path) -> None:
    """The own agent offers a limited key's task neither the MCP tools nor the other agents the
    key may not use, and refuses a call to them; `ask_caller` stays."""
    from tests.a2a.harness import sdk_agent

    cfg = config(tmp_path, "")
    cfg["server"] = {"api_keys": [*LIMITED_KEYS, "full"]}
    with sdk_agent("echo") as echo_url:
        cfg["a2a_agents"] = {"echo": {"url": echo_url, "mcp_tool": "off"}}
        async with openai_server(models=["m1"]) as model:
            cfg["backends"]["fake"]["url"] = f"{model.url}/v1"
            cfg["a2a"]["self_agent"]["a2a_agents"] = ["*"]
            model.script(
                [
                    Reply(tool_calls=[Call("everything__echo", {"message": "leak"})]),
                    Reply(tool_calls=[Call("a2a__echo", {"message": "leak"})]),
                    Reply(text="done"),
                    # The same calls for a full key: both are offered and both run.
                    Reply(tool_calls=[Call("everything__echo", {"message": "ok"})]),
                    Reply(tool_calls=[Call("a2a__echo", {"message": "ok"})]),
                    Reply(text="done"),
                ]
            )
            async with served(cfg) as (_, base):
                async with sdk_client(base, "1.0", token="no-tools") as client:
                    task = task_of(
                        await client.ok("send", text="go", metadata={"agent": "junction"})
                    )
                async with sdk_client(base, "1.0", token="full") as client:
                    full = task_of(
                        await client.ok("send", text="go", metadata={"agent": "junction"})
                    )
    assert state(task) == state(full) == "TASK_STATE_COMPLETED"
    assert tool_names(model.chat_requests[0]) == {"ask_caller"}
    limited = tool_results(model.chat_requests[2])
    assert len(limited) == 2 and not any("ok" in r or "leak" in r for r in limited), limited
    assert {"everything__echo", "a2a__echo"} <= tool_names(model.chat_requests[3])
    allowed = tool_results(model.chat_requests[5])
    assert "Echo: ok" in allowed[0] and "ok" in allowed[1], allowed


async def test_a_keys_limits_hold_through_the_own_agents_mcp_tool(tmp_path: Path) -> None:
    """`a2a__junction` over `/mcp` with a key limited to that tool: no model call for it."""
    import mcp_types as types
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from mcp_gateway._sdk import create_mcp_http_client

    cfg = config(tmp_path, "")
    cfg["server"] = {"api_keys": LIMITED_KEYS}
    async with openai_server(models=["m1"]) as model:
        cfg["backends"]["fake"]["url"] = f"{model.url}/v1"
        model.script([Reply(text="a model answer the key may not have")])
        async with served(cfg) as (_, base):
            http = create_mcp_http_client(headers={"Authorization": "Bearer own-agent-only"})
            async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
                assert (await c.list_tools()).tools == []  # mcp_tools: [none]
                with pytest.raises(MCPError, match="Unknown tool"):
                    await c.call_tool("a2a__junction", {"message": "hi"})
            http = create_mcp_http_client(headers={"Authorization": "Bearer tool-no-model"})
            async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
                refused = await c.call_tool("a2a__junction", {"message": "hi"})
            assert model.chat_requests == []
            http = create_mcp_http_client(headers={"Authorization": "Bearer no-tools"})
            async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
                result = await c.call_tool("a2a__junction", {"message": "use no tools"})
        assert len(model.chat_requests) == 1
        assert tool_names(model.chat_requests[0]) == {"ask_caller"}
    assert refused.is_error
    assert "not allowed for this API key" in str(refused.content)
    assert not result.is_error
    out = [x.text for x in result.content if isinstance(x, types.TextContent)]
    assert out == ["a model answer the key may not have"]
