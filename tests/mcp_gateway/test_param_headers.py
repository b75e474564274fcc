"""`Mcp-Param-*` headers (2026-07-28): a tool whose schema declares `x-mcp-header` arguments is
called on a Streamable HTTP upstream with those headers, which the upstream checks against the
body (it refuses the call with -32020 when one is missing)."""

from __future__ import annotations

import asyncio

from mcp_gateway import Gateway, HttpUpstream
from tests.mcp_gateway.conftest import hosted
from tests.test_mcp_conformance import fixture_over_http


async def test_declared_argument_headers_reach_an_http_upstream() -> None:
    process, url = await fixture_over_http()
    try:
        gateway = Gateway([HttpUpstream(name="fixture", url=url)])
        async with hosted(gateway):
            # Until the upstream is connected and listed (a loaded machine can take a while).
            async with asyncio.timeout(60):
                while "fixture__test_x_mcp_header" not in {
                    tool.name for tool in await gateway.llm_tools()
                }:
                    await gateway.wait_settled(5)
                    await asyncio.sleep(0.1)
            for region in ("eu-west", "Hello, world"):  # a token, and a value sent base64-wrapped
                result = await gateway.call_tool("fixture__test_x_mcp_header", {"region": region})
                assert result["content"][0]["text"] == f"region={region}", result
    finally:
        process.terminate()
        await process.wait()
