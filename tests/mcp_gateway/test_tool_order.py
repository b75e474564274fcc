"""The aggregate's tool order is stable (a client's prompt cache keys on the tool list): the
same on every listing, after an upstream dies and reconnects, and after another server is
added and removed by a reload. Upstreams: tests/mcp_gateway/servers.py `ok`, over stdio;
the client is the `mcp` SDK over real HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway import Gateway, GatewayError, UpstreamState, http_app
from tests.mcp_gateway.conftest import fault, free_port, hosted
from tests.mcp_gateway.test_serving import _Serving


@contextlib.asynccontextmanager
async def served(gateway: Gateway) -> AsyncIterator[str]:
    async with hosted(gateway):
        await gateway.wait_settled(30)
        port = free_port()
        config = uvicorn.Config(http_app(gateway), host="127.0.0.1", port=port, log_level="warning")
        async with hosted(_Serving(uvicorn.Server(config))):
            yield f"http://127.0.0.1:{port}/mcp"


async def names(url: str) -> list[str]:
    async with Client(streamable_http_client(url)) as client:
        return [t.name for t in (await client.list_tools(cache_mode="refresh")).tools]


async def test_tool_order_survives_listings_reconnects_and_reloads() -> None:
    a, b = fault("a", "ok"), fault("b", "ok")
    gateway = Gateway([a, b])
    async with served(gateway) as url:
        first = await names(url)
        assert first[0].startswith("a__") and first[-1].startswith("b__")
        assert await names(url) == first
        with pytest.raises(GatewayError):
            await gateway.call_tool("a__die")  # a's process exits mid-call, then reconnects
        await gateway.call_tool("a__echo", {"message": "back"})
        with anyio.fail_after(30):
            while gateway.statuses()[0].state != UpstreamState.READY:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        assert await names(url) == first
        gateway.reconfigure([a, fault("c", "ok"), b])  # a server added in the middle...
        await gateway.wait_settled(30)
        with anyio.fail_after(30):
            while not any(n.startswith("c__") for n in await names(url)):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        middle = await names(url)
        assert [n for n in middle if not n.startswith("c__")] == first  # ...moves nobody
        gateway.reconfigure([a, b])
        with anyio.fail_after(30):
            while any(n.startswith("c__") for n in await names(url)):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        assert await names(url) == first
