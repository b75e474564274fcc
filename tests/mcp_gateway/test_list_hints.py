"""2026-07-28 caching directives on merged lists: the shortest `ttlMs` and the narrowest
`cacheScope` any upstream gave; a 2025-11-25 upstream (no directives) counts as 0.

Upstreams: tests/mcp_gateway/servers.py `ok` (tools/list 60 s public, prompts/list 30 s
private), once at 2026-07-28 and once held to 2025-11-25; the client is the `mcp` SDK over HTTP.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway import Gateway, http_app
from tests.mcp_gateway.conftest import fault, free_port, hosted
from tests.mcp_gateway.test_serving import _Serving


@contextlib.asynccontextmanager
async def served(gateway: Gateway) -> AsyncIterator[str]:
    """The gateway's `/mcp` on a free loopback port, once its upstreams have connected."""
    async with hosted(gateway):
        await gateway.wait_settled(30)
        port = free_port()
        config = uvicorn.Config(http_app(gateway), host="127.0.0.1", port=port, log_level="warning")
        async with hosted(_Serving(uvicorn.Server(config))):
            yield f"http://127.0.0.1:{port}/mcp"


async def hints(url: str) -> tuple[tuple[int, str], tuple[int, str]]:
    async with Client(streamable_http_client(url), mode="2026-07-28") as client:
        tools = await client.list_tools(cache_mode="refresh")
        prompts = await client.list_prompts(cache_mode="refresh")
    return (tools.ttl_ms, tools.cache_scope), (prompts.ttl_ms, prompts.cache_scope)


async def test_a_2026_upstreams_directives_reach_the_client() -> None:
    async with served(Gateway([fault("ok", "ok")])) as url:
        assert await hints(url) == ((60_000, "public"), (30_000, "private"))


async def test_the_shortest_and_narrowest_win_and_a_legacy_upstream_counts_as_zero() -> None:
    both = Gateway([fault("ok", "ok"), fault("old", "ok", protocol="legacy")])
    async with served(both) as url:
        assert await hints(url) == ((0, "public"), (0, "private"))
