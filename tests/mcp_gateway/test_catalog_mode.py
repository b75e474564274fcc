"""Catalog mode: MCP clients see search_tools, describe_tool and call_tool instead of every
tool, and reach every tool through them. Upstreams: tests/mcp_gateway/servers.py `ok` and
`many` (50 tools) over stdio; the client is the `mcp` SDK over real HTTP."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import mcp_types as types
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from junction import Junction
from mcp_gateway import Gateway, GatewayOptions, http_app
from mcp_gateway._sdk import create_mcp_http_client
from tests.mcp_gateway.conftest import SERVERS, fault, free_port, hosted
from tests.mcp_gateway.test_serving import _Serving
from tests.transports.servers import serve_app


@contextlib.asynccontextmanager
async def served(gateway: Gateway) -> AsyncIterator[str]:
    async with hosted(gateway):
        await gateway.wait_settled(30)
        port = free_port()
        config = uvicorn.Config(http_app(gateway), host="127.0.0.1", port=port, log_level="warning")
        async with hosted(_Serving(uvicorn.Server(config))):
            yield f"http://127.0.0.1:{port}/mcp"


def text(result: types.CallToolResult) -> str:
    content = result.content[0]
    assert isinstance(content, types.TextContent), result
    return content.text


async def test_three_tools_stand_for_the_catalog_and_reach_every_tool() -> None:
    gateway = Gateway([fault("ok", "ok"), fault("many", "many")], GatewayOptions(catalog_mode=True))
    async with served(gateway) as url, Client(streamable_http_client(url)) as client:
        listed = [t.name for t in (await client.list_tools()).tools]
        assert listed == ["search_tools", "describe_tool", "call_tool"]
        assert len(await gateway.list_tools()) > 50  # what the three stand for

        found = await client.call_tool("search_tools", {"query": "add two integers"})
        names = [t["name"] for t in (found.structured_content or {})["tools"]]
        assert names[0] == "ok__add"

        described = await client.call_tool("describe_tool", {"name": "ok__add"})
        schema = (described.structured_content or {})["inputSchema"]
        assert set(schema["properties"]) == {"a", "b"}

        summed = await client.call_tool(
            "call_tool", {"name": "ok__add", "arguments": {"a": 2, "b": 3}}
        )
        assert text(summed) == "5"
        missing = await client.call_tool("describe_tool", {"name": "nope"})
        assert missing.is_error and "search_tools" in text(missing)


async def test_catalog_mode_costs_a_fraction_of_the_listing() -> None:
    specs = [fault("ok", "ok"), fault("many", "many")]
    sizes = {}
    for mode in (False, True):
        async with served(Gateway(specs, GatewayOptions(catalog_mode=mode))) as url:
            async with Client(streamable_http_client(url)) as client:
                tools = (await client.list_tools()).tools
                sizes[mode] = len(json.dumps([t.model_dump(mode="json") for t in tools]))
    assert sizes[True] * 10 < sizes[False]


async def test_a_limited_key_finds_and_calls_only_its_tools(tmp_path: Path) -> None:
    """Through Junction's HTTP app with API keys: search_tools and describe_tool show a key
    only the tools its `mcp_tools` globs allow, and call_tool refuses the rest as unknown."""
    config = {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "server": {"api_keys": [{"key": "k", "name": "limited", "mcp_tools": ["ok__echo"]}]},
        "mcp": {"catalog_mode": True},
        "mcp_servers": {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}},
    }
    junction = Junction.from_config(config)
    async with junction, serve_app(junction.asgi_app()) as base:
        await junction.gateway.wait_settled(30)
        http = create_mcp_http_client(headers={"Authorization": "Bearer k"})
        async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            found = await client.call_tool("search_tools", {"query": "echo add integers"})
            assert [t["name"] for t in (found.structured_content or {})["tools"]] == ["ok__echo"]
            hidden = await client.call_tool("describe_tool", {"name": "ok__add"})
            assert hidden.is_error
            echoed = await client.call_tool(
                "call_tool", {"name": "ok__echo", "arguments": {"message": "hi"}}
            )
            assert text(echoed) == "hi"
            with pytest.raises(MCPError, match="Unknown tool"):
                await client.call_tool("call_tool", {"name": "ok__add", "arguments": {}})
