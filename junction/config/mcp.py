"""The `mcp_servers:` and `mcp:` sections: upstream MCP servers and how the aggregate names,
filters and times out what they offer.

These stay config models rather than mcp_gateway's specs: those are frozen dataclasses built
for the gateway (tuples, no validation, no unknown-key errors), and the common `mcpServers`
shape users paste (`command` or `url` in one mapping) is a file format, not the gateway's.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError

from junction.config.fields import ConfigModel, HttpUrlStr, NonEmptyStr, Seconds

__all__ = [
    "McpGatewayConfig",
    "McpServerConfig",
    "McpToolFilterConfig",
    "RemoteMcpServerConfig",
    "StdioMcpServerConfig",
]


class McpToolFilterConfig(ConfigModel):
    """Glob filters over one server's tool names: a filtered tool is neither listed nor callable."""

    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


class StdioMcpServerConfig(ConfigModel):
    """An upstream MCP server Junction launches as a child process and talks to over its stdio."""

    kind: ClassVar[str] = "stdio"
    command: NonEmptyStr
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    tools: McpToolFilterConfig = Field(default_factory=McpToolFilterConfig)
    timeout: Seconds | None = None
    connect_timeout: Seconds | None = None


class RemoteMcpServerConfig(ConfigModel):
    """An upstream MCP server reached over HTTP (Streamable HTTP, or legacy SSE)."""

    kind: ClassVar[str] = "remote"
    url: HttpUrlStr
    headers: dict[str, str] = Field(default_factory=dict)
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    tools: McpToolFilterConfig = Field(default_factory=McpToolFilterConfig)
    timeout: Seconds | None = None
    connect_timeout: Seconds | None = None


def _mcp_server_kind(value: Any) -> str | None:
    if isinstance(value, StdioMcpServerConfig | RemoteMcpServerConfig):
        return value.kind
    if isinstance(value, dict):
        return "stdio" if "command" in value else "remote"
    return None


def _one_of_command_or_url(value: Any) -> Any:
    """Say plainly what is wrong instead of pydantic's union error soup."""
    if isinstance(value, StdioMcpServerConfig | RemoteMcpServerConfig):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "mcp_server_shape",
            "expected a mapping with 'command' (stdio server) or 'url' (remote server)",
        )
    has_command, has_url = value.get("command") is not None, value.get("url") is not None
    if has_command and has_url:
        raise PydanticCustomError(
            "mcp_server_shape",
            "give exactly one of 'command' (stdio server) or 'url' (remote server), not both",
        )
    if not has_command and not has_url:
        raise PydanticCustomError(
            "mcp_server_shape",
            "give exactly one of 'command' (stdio server) or 'url' (remote server); neither is set",
        )
    return value


McpServerConfig = Annotated[
    Union[  # noqa: UP007 (Tag annotations need the Union spelling)
        Annotated[StdioMcpServerConfig, Tag(StdioMcpServerConfig.kind)],
        Annotated[RemoteMcpServerConfig, Tag(RemoteMcpServerConfig.kind)],
    ],
    Discriminator(_mcp_server_kind),
    BeforeValidator(_one_of_command_or_url),
]
"""An upstream MCP server: stdio (`command`) or remote (`url`), the common `mcpServers` shape."""


class McpGatewayConfig(ConfigModel):
    """How the MCP aggregate names, filters and times out what its upstreams offer."""

    prefix: Literal["always", "on_collision", "never"] = "always"
    separator: str = Field(default="__", pattern=r"^[A-Za-z0-9_-]{1,8}$")
    deny: list[str] = Field(default_factory=list)
    call_timeout: Seconds = 60.0
    connect_timeout: Seconds = 30.0
