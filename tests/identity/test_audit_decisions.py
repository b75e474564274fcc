"""The audit trail of the decisions made past the access guard, over real sockets against a
served Junction with scoped keys and `logging.audit_file`: a model, an MCP tool and an A2A
agent outside a key's globs, a rate limit, and an ACP tool call the person refused each leave
exactly one JSON record with who, where, what and why, and no key text."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from junction import Junction
from router_core.http import close_session
from tests.router_core.llm_servers import Call, FakeLLMServer, Reply, openai_server
from tests.test_key_scopes import acp
from tests.test_limits import clear_of_minute_boundary
from tests.transports.servers import serve_app

LIMITED_KEY = "limited-key-0123456789"
IDE_KEY = "ide-key-0123456789"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@contextlib.asynccontextmanager
async def served(tmp: Path, model: FakeLLMServer) -> AsyncIterator[str]:
    """A key limited to model m1, tool `everything__echo` and agents `public-*`; an unlimited
    key `ide`; one request a minute to model m3; the audit trail in tmp/audit.jsonl."""
    doc = {
        "store": {"url": f"sqlite:///{tmp}/junction.db"},
        "server": {
            "api_keys": [
                {
                    "key": LIMITED_KEY,
                    "name": "limited",
                    "models": ["m1"],
                    "mcp_tools": ["everything__echo"],
                    "a2a_agents": ["public-*"],
                },
                {"key": IDE_KEY, "name": "ide"},
            ]
        },
        "backends": {
            "fake": {"type": "openai", "url": f"{model.url}/v1", "models": ["m1", "m2", "m3"]}
        },
        "acp": {"default_model": "m1"},
        "limits": {"models": {"m3": {"requests_per_minute": 1}}},
        "logging": {"audit_file": str(tmp / "audit.jsonl")},
    }
    junction = Junction.from_config(doc)
    try:
        async with junction, serve_app(junction.asgi_app()) as base:
            yield base
    finally:
        await close_session()


def only_record(tmp: Path, event: str) -> dict[str, Any]:
    """The one record of `event` in the audit file (it must hold no key text)."""
    text = (tmp / "audit.jsonl").read_text()
    assert LIMITED_KEY not in text and IDE_KEY not in text
    found = [r for r in map(json.loads, text.splitlines()) if r["event"] == event]
    assert len(found) == 1, found
    assert found[0]["logger"] == "junction.audit"
    return found[0]


async def test_a_model_outside_the_keys_globs(tmp_path: Path) -> None:
    async with openai_server(models=["m1", "m2", "m3"]) as model, served(tmp_path, model) as base:
        client = openai.AsyncOpenAI(
            base_url=f"{base}/v1",
            api_key=LIMITED_KEY,
            max_retries=0,
            default_headers={"traceparent": TRACEPARENT},
        )
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(
                model="m2", messages=[{"role": "user", "content": "hi"}]
            )
    record = only_record(tmp_path, "model")
    assert record["decision"] == "deny" and record["model"] == "m2"
    assert record["principal"] == "limited" and record["surface"] == "openai"
    assert "model globs" in record["reason"] and record["trace_id"] == TRACE_ID
    assert model.chat_requests == []


async def test_an_mcp_tool_call_outside_the_keys_globs(tmp_path: Path) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from mcp_gateway._sdk import create_mcp_http_client

    async with openai_server(models=["m1"]) as model, served(tmp_path, model) as base:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {LIMITED_KEY}"})
        async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
            with pytest.raises(MCPError):
                await c.call_tool("everything__secret", {})
            assert [t.name for t in (await c.list_tools()).tools if "secret" in t.name] == []
    record = only_record(tmp_path, "tool")
    assert record["decision"] == "deny" and record["tool"] == "everything__secret"
    assert record["principal"] == "limited" and record["surface"] == "mcp"
    assert "tool globs" in record["reason"]


async def test_an_a2a_message_to_an_agent_outside_the_keys_globs(tmp_path: Path) -> None:
    async with (
        openai_server(models=["m1"]) as model,
        served(tmp_path, model) as base,
        httpx.AsyncClient(base_url=base) as http,
    ):
        headers = {"Authorization": f"Bearer {LIMITED_KEY}", "A2A-Version": "1.0"}
        message = {"message": {"role": "ROLE_USER", "messageId": "m-1", "parts": [{"text": "x"}]}}
        rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": message}
        reply = await http.post("/a2a/agents/private", json=rpc, headers=headers)
        assert reply.status_code == 404 and "error" in reply.json()
        record = only_record(tmp_path, "agent")
        assert record["decision"] == "deny" and record["agent"] == "private"
        assert record["principal"] == "limited" and record["surface"] == "a2a"
        assert "agent globs" in record["reason"]
        (tmp_path / "audit.jsonl").write_text("")
        # The hub routing on the message's metadata to that agent: the same refusal.
        routed = {**message, "metadata": {"agent": "private-2"}}
        rpc = {"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": routed}
        reply = await http.post("/a2a", json=rpc, headers=headers)
        assert "error" in reply.json(), reply.text
    record = only_record(tmp_path, "agent")
    assert record["agent"] == "private-2" and record["principal"] == "limited"


async def test_a_rate_limited_call(tmp_path: Path) -> None:
    async with openai_server(models=["m3"]) as model, served(tmp_path, model) as base:
        await clear_of_minute_boundary()
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=IDE_KEY, max_retries=0)
        hi: Any = [{"role": "user", "content": "hi"}]
        await client.chat.completions.create(model="m3", messages=hi)
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="m3", messages=hi)
    record = only_record(tmp_path, "limit")
    assert record["decision"] == "deny" and record["model"] == "m3"
    assert record["principal"] == "ide" and record["surface"] == "openai"
    assert "requests_per_minute" in record["limit"] and record["retry_after"] >= 1


async def test_an_acp_tool_call_the_person_refused(tmp_path: Path) -> None:
    async def reject(params: dict[str, Any]) -> dict[str, Any]:
        return {"outcome": {"outcome": "selected", "optionId": "reject_once"}}

    async with openai_server(models=["m1"]) as model, served(tmp_path, model) as base:
        write = Call("write_text_file", {"path": str(tmp_path / "x.txt"), "content": "x"})
        model.script([Reply(tool_calls=[write]), Reply(text="gave up")])
        async with acp(base, "websocket", IDE_KEY) as client:
            client.handlers["session/request_permission"] = reject
            created = await client.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            await client.prompt(created["sessionId"], "write x")
    assert not (tmp_path / "x.txt").exists()
    record = only_record(tmp_path, "permission")
    assert record["decision"] == "deny" and record["tool"] == "write_text_file"
    assert record["session"] == created["sessionId"] and record["decided_by"] == "person"
    assert record["principal"] == "ide" and record["surface"] == "acp"
    assert record["reason"] == "you rejected it" and record["mode"] == "ask"


async def test_an_mcp_tool_call_over_a_limit(tmp_path: Path) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from mcp_gateway._sdk import create_mcp_http_client
    from tests.peers import python_peer

    time_server = {
        "command": str(python_peer("mcp-server-time")),
        "args": ["-m", "mcp_server_time"],
    }
    doc = {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "server": {"api_keys": [{"key": IDE_KEY, "name": "ide"}]},
        "mcp_servers": {"time": time_server},
        "limits": {"mcp_tools": {"time__*": {"requests_per_minute": 1}}},
        "logging": {"audit_file": str(tmp_path / "audit.jsonl")},
    }
    junction = Junction.from_config(doc)
    async with junction, serve_app(junction.asgi_app()) as base:
        await junction.gateway.wait_settled(30)
        await clear_of_minute_boundary()
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {IDE_KEY}"})
        async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
            await c.call_tool("time__get_current_time", {"timezone": "UTC"})
            with pytest.raises(MCPError):
                await c.call_tool("time__get_current_time", {"timezone": "UTC"})
    record = only_record(tmp_path, "limit")
    assert record["decision"] == "deny" and record["tool"] == "time__get_current_time"
    assert record["principal"] == "ide" and record["surface"] == "mcp"
