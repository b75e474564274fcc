"""The `clientInfo` the gateway sends its upstreams names it with `GatewayOptions` (name and
version): one source for what the gateway says it is, both as a server and as a client."""

from __future__ import annotations

import sys
from pathlib import Path

from mcp_gateway import Gateway, GatewayOptions, StdioUpstream

WHOAMI = """
import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.stdio import stdio_server


async def list_tools(ctx, params):
    info = ctx.session.client_params.client_info
    described = f"{info.name} {info.version}"
    return types.ListToolsResult(
        tools=[types.Tool(name="whoami", description=described, input_schema={"type": "object"})]
    )


async def main():
    server = Server("whoami", on_list_tools=list_tools)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


anyio.run(main)
"""


async def test_upstreams_see_the_options_name_and_version(tmp_path: Path) -> None:
    script = tmp_path / "whoami.py"
    script.write_text(WHOAMI)
    upstream = StdioUpstream(
        name="who", command=sys.executable, args=(str(script),), protocol="legacy"
    )
    options = GatewayOptions(name="gw-under-test", version="9.8.7")
    async with Gateway([upstream], options) as gateway:
        await gateway.wait_settled(20)
        (tool,) = await gateway.list_tools()
    assert tool["description"] == "gw-under-test 9.8.7"
