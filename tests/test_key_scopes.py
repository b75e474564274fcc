"""Scoped API keys on the session surfaces, over real sockets against a served Junction, a
real MCP upstream (server-everything) and the scripted model server. Remote ACP (`/acp` over
WebSocket and SSE): a session sees only the models, MCP tools and A2A agents its key allows,
and only an admin key may start MCP servers on Junction's host. `/mcp`: a session id answers
only the key that opened it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from junction import Junction
from tests.acp.wire import ClientError, WireClient
from tests.peers import npm_bin
from tests.router_core.llm_servers import Call, FakeLLMServer, Reply, openai_server
from tests.transports.servers import serve_app
from transports import MessageStream, connect_streamable, connect_websocket

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITED = {
    "key": "limited-key",
    "name": "limited",
    "scopes": ["acp"],
    "models": ["m1"],
    "mcp_tools": ["everything__echo"],
    "a2a_agents": ["none-*"],
}


KEYS: list[Any] = [
    LIMITED,
    {"key": "admin-key", "name": "admin"},
    {"key": "other-key", "name": "other"},
]


def junction_config(tmp: Path, model: FakeLLMServer, keys: list[Any] = KEYS) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{tmp}/junction.db"},
        "server": {"api_keys": keys},
        "backends": {"fake": {"type": "openai", "url": f"{model.url}/v1", "models": ["m1", "m2"]}},
        "mcp_servers": {"everything": {"command": str(npm_bin("mcp-server-everything"))}},
    }


@contextlib.asynccontextmanager
async def served(tmp: Path, model: FakeLLMServer) -> AsyncIterator[str]:
    junction = Junction.from_config(junction_config(tmp, model))
    async with junction, serve_app(junction.asgi_app()) as base:
        await junction.gateway.wait_settled(30)
        yield base


@contextlib.asynccontextmanager
async def acp(base: str, framing: str, token: str) -> AsyncIterator[WireClient]:
    stream: MessageStream
    if framing == "websocket":
        stream = await connect_websocket(f"{base.replace('http', 'ws')}/acp", token=token)
    else:
        stream = await connect_streamable(f"{base}/acp", token=token)
    client = WireClient(stream)
    client.start()
    try:
        await client.initialize()
        yield client
    finally:
        await client.aclose()


def tool_names(model: FakeLLMServer, index: int) -> set[str]:
    """The MCP tools offered to the model (not the built-in fs/terminal ones of the client)."""
    tools = model.chat_requests[index].body.get("tools") or []
    return {t["function"]["name"] for t in tools if "__" in t["function"]["name"]}


def model_choices(result: dict[str, Any]) -> list[str]:
    (option,) = [o for o in result["configOptions"] if o["id"] == "model"]
    return [choice["value"] for choice in option["options"]]


@pytest.mark.parametrize("framing", ["websocket", "http"])
async def test_a_limited_key_sees_only_its_models_tools_and_no_host_servers(
    tmp_path: Path, framing: str
) -> None:
    async with openai_server(models=["m1", "m2"]) as model, served(tmp_path, model) as base:
        model.script(
            [
                Reply(tool_calls=[Call("everything__get-sum", {"a": 1, "b": 2})]),
                Reply(text="done"),
            ]
        )
        async with acp(base, framing, "limited-key") as client:
            created = await client.call(
                "session/new",
                {
                    "cwd": str(tmp_path),
                    "mcpServers": [{"name": "mine", "command": "/bin/echo", "args": [], "env": []}],
                },
            )
            assert model_choices(created) == ["m1"]
            session = created["sessionId"]
            with pytest.raises(ClientError, match="unknown model"):
                await client.call(
                    "session/set_config_option",
                    {"sessionId": session, "configId": "model", "value": "m2"},
                )
            await client.prompt(session, "add 1 and 2")
            said = client.text()
            assert "may not start MCP servers on the Junction host" in said
        assert tool_names(model, 0) == {"everything__echo"}  # not every everything__* tool
        refused = [m for m in model.chat_requests[1].body["messages"] if m["role"] == "tool"]
        assert "Unknown tool 'everything__get-sum'" in str(refused[-1]["content"])
        assert model.chat_requests[0].body["model"] == "m1"


async def test_an_admin_key_sees_everything(tmp_path: Path) -> None:
    async with openai_server(models=["m1", "m2"]) as model, served(tmp_path, model) as base:
        model.default = Reply(text="hi")
        async with acp(base, "websocket", "admin-key") as client:
            created = await client.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            assert model_choices(created) == ["m1", "m2"]
            await client.prompt(created["sessionId"], "hello")
        offered = tool_names(model, 0)
        assert {"everything__echo", "everything__get-sum"} <= offered


async def test_an_mcp_session_answers_only_the_key_that_opened_it(tmp_path: Path) -> None:
    import httpx

    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    accept = {"Accept": "application/json, text/event-stream"}
    async with openai_server(models=["m1"]) as model, served(tmp_path, model) as base:
        async with httpx.AsyncClient(base_url=base, headers=accept) as http:
            admin = {"Authorization": "Bearer admin-key"}
            opened = await http.post("/mcp", json=init, headers=admin)
            assert opened.status_code == 200, opened.text
            session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
            other = {"Authorization": "Bearer other-key", **session}  # a full key, not the owner
            stolen = await http.post("/mcp", json=listing, headers=other)
            assert stolen.status_code == 404
            own = await http.post("/mcp", json=listing, headers={**admin, **session})
            assert own.status_code == 200 and "everything__echo" in own.text


async def test_a_key_removed_by_a_reload_ends_its_acp_connections(tmp_path: Path) -> None:
    async with openai_server(models=["m1", "m2"]) as model:
        junction = Junction.from_config(junction_config(tmp_path, model))
        async with junction, serve_app(junction.asgi_app()) as base:
            async with (
                acp(base, "websocket", "other-key") as revoked,
                acp(base, "http", "admin-key") as kept,
            ):
                kept_keys = [k for k in KEYS if k["name"] != "other"]
                await junction.replace_config(junction_config(tmp_path, model, kept_keys))
                assert revoked._reader is not None
                await asyncio.wait_for(revoked._reader, 5)  # the agent closed it
                created = await kept.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
                assert created["sessionId"]  # another key's connection carries on


async def test_agent_globs_hold_for_the_agents_mcp_tools(tmp_path: Path) -> None:
    """A key limited to some A2A agents sees and calls only their `a2a__` tools on `/mcp`, even
    with every MCP tool allowed."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from mcp_gateway._sdk import create_mcp_http_client
    from tests.a2a.harness import sdk_agent

    with sdk_agent("pub", "1.0") as pub, sdk_agent("secret", "1.0") as secret:
        junction = Junction.from_config(
            {
                "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
                "server": {"api_keys": [{"key": "pub-key", "name": "pub", "a2a_agents": ["pub"]}]},
                "a2a": {"card_timeout": 2},
                "a2a_agents": {"pub": {"url": pub}, "secret": {"url": secret}},
            }
        )
        async with junction, serve_app(junction.asgi_app()) as base:
            http = create_mcp_http_client(headers={"Authorization": "Bearer pub-key"})
            async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
                names = {t.name for t in (await c.list_tools()).tools}
                assert "a2a__pub" in names and "a2a__secret" not in names
                with pytest.raises(MCPError, match="Unknown tool"):
                    await c.call_tool("a2a__secret", {"message": "echo x"})


async def test_acp_sessions_belong_to_the_key_that_made_them(tmp_path: Path) -> None:
    async with openai_server(models=["m1", "m2"]) as model, served(tmp_path, model) as base:
        async with (
            acp(base, "websocket", "admin-key") as admin,
            acp(base, "http", "other-key") as other,
        ):
            mine = await admin.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            listed = await other.call("session/list", {})
            assert mine["sessionId"] not in {s["sessionId"] for s in listed["sessions"]}
            for method in ("session/load", "session/resume"):
                with pytest.raises(ClientError, match="unknown session"):
                    await other.call(
                        method,
                        {"sessionId": mine["sessionId"], "cwd": str(tmp_path), "mcpServers": []},
                    )
            own = await admin.call("session/list", {})
            assert mine["sessionId"] in {s["sessionId"] for s in own["sessions"]}


async def test_adding_keys_ends_acp_connections_opened_without_one(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        junction = Junction.from_config(junction_config(tmp_path, model, keys=[]))
        async with junction, serve_app(junction.asgi_app()) as base:
            stream = await connect_websocket(f"{base.replace('http', 'ws')}/acp")
            client = WireClient(stream)
            client.start()
            try:
                await client.initialize()
                await junction.replace_config(junction_config(tmp_path, model))
                assert client._reader is not None
                await asyncio.wait_for(client._reader, 5)  # the agent closed it
            finally:
                await client.aclose()
