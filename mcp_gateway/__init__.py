"""Many MCP servers aggregated into one, served over stdio and Streamable HTTP.

Importing this package is cheap: the `mcp` SDK (about 0.5 s of imports) loads only when a
gateway, server or upstream name below is first touched, so a process that never uses MCP
never pays for it.

    async with Gateway([StdioUpstream(name="time", command="uvx", args=("mcp-server-time",))]) as gw:
        tools = await gw.llm_tools()
        result = await gw.call_tool(tools[0].name, {...})
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mcp_gateway.errors import GatewayError
from mcp_gateway.specs import (
    GatewayOptions,
    HttpUpstream,
    PrefixMode,
    StdioUpstream,
    ToolFilter,
    UpstreamSpec,
)

if TYPE_CHECKING:
    from mcp_gateway.gateway import (
        Catalog,
        Gateway,
        GatewaySession,
        LocalHandler,
        LocalTool,
        ToolSchema,
    )
    from mcp_gateway.server import build_server, http_app, serve_stdio
    from mcp_gateway.upstream import UpstreamState, UpstreamStatus

__all__ = [
    "Catalog",
    "Gateway",
    "GatewayError",
    "GatewayOptions",
    "GatewaySession",
    "HttpUpstream",
    "LocalHandler",
    "LocalTool",
    "PrefixMode",
    "StdioUpstream",
    "ToolFilter",
    "ToolSchema",
    "UpstreamSpec",
    "UpstreamState",
    "UpstreamStatus",
    "build_server",
    "http_app",
    "serve_stdio",
]

_LAZY = {
    "Catalog": "mcp_gateway.gateway",
    "Gateway": "mcp_gateway.gateway",
    "GatewaySession": "mcp_gateway.gateway",
    "ToolSchema": "mcp_gateway.gateway",
    "LocalTool": "mcp_gateway.gateway",
    "LocalHandler": "mcp_gateway.gateway",
    "build_server": "mcp_gateway.server",
    "http_app": "mcp_gateway.server",
    "serve_stdio": "mcp_gateway.server",
    "UpstreamState": "mcp_gateway.upstream",
    "UpstreamStatus": "mcp_gateway.upstream",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mcp_gateway' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
