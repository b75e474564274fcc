"""What the gateway is told to connect to, in its own small types (no `junction`, no `mcp`).

The composition root maps its configuration onto these, so the gateway never depends on how
the configuration is written, and importing them costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

from mcp_gateway.upstream_auth import UpstreamAuth

PrefixMode = Literal["always", "on_collision", "never"]

DEFAULT_SEPARATOR = "__"


@dataclass(frozen=True, slots=True)
class ToolFilter:
    """Glob allow/deny lists over an upstream's own tool names; deny wins, empty allow = all."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def permits(self, name: str) -> bool:
        if any(fnmatchcase(name, pattern) for pattern in self.deny):
            return False
        return not self.allow or any(fnmatchcase(name, pattern) for pattern in self.allow)


@dataclass(frozen=True, kw_only=True)
class _UpstreamSpec:
    name: str
    tools: ToolFilter = ToolFilter()
    call_timeout: float | None = None
    """Per-call deadline for this server's requests; None takes `GatewayOptions.call_timeout`."""
    connect_timeout: float | None = None
    """Deadline for one connection attempt (spawn + handshake + first listing)."""
    protocol: Literal["auto", "legacy"] = "auto"
    """"auto" probes `server/discover` (2026-07-28) and falls back to the initialize handshake;
    "legacy" goes straight to the 2025-11-25 handshake, for servers that mishandle the probe."""
    legacy_session: bool | None = None
    """When the server speaks 2026-07-28, 2025-11-25 clients' calls go over a second session
    at 2025-11-25 (opened on the first such call), where a tool can ask its client the
    handshake-era way (elicitation, sampling, roots requests) and log without an opt-in, as it
    would for that client directly. None: on for HTTP servers (one server behind both
    sessions), off for stdio ones, where it is a second process that does not share the
    first one's state (turn it on for a stdio server that keeps none between calls)."""

    @property
    def wants_legacy_session(self) -> bool:
        if self.legacy_session is not None:
            return self.legacy_session
        return not isinstance(self, StdioUpstream)


@dataclass(frozen=True, kw_only=True)
class StdioUpstream(_UpstreamSpec):
    """A server Junction launches as a child process (own process group, killed with us)."""

    command: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None

    @property
    def kind(self) -> str:
        return "stdio"


@dataclass(frozen=True, kw_only=True)
class HttpUpstream(_UpstreamSpec):
    """A server reached over Streamable HTTP, or legacy HTTP+SSE with `transport="sse"`."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    auth: UpstreamAuth | None = None
    """OAuth toward this server (`mcp_gateway.upstream_auth`)."""

    @property
    def kind(self) -> str:
        return "sse" if self.transport == "sse" else "http"


UpstreamSpec = StdioUpstream | HttpUpstream


@dataclass(frozen=True, kw_only=True)
class GatewayOptions:
    """Gateway-wide behaviour; every field has a default that suits `junction --mode mcp`."""

    name: str = "junction"
    version: str = "0+unknown"
    """What the gateway says it is, both ways: the served `serverInfo` and the `clientInfo` sent to
    upstreams. The composition root passes the distribution's version."""
    prefix: PrefixMode = "always"
    separator: str = DEFAULT_SEPARATOR
    deny: tuple[str, ...] = ()
    """Global deny globs, matched against `server/tool` and against the bare tool name."""
    call_timeout: float = 60.0
    connect_timeout: float = 30.0
    startup_grace: float = 10.0
    """How long a listing waits for upstreams still on their first connection attempt."""
    reconnect_initial_delay: float = 0.25
    reconnect_max_delay: float = 30.0
    max_argument_bytes: int = 8 * 1024 * 1024
    """Largest `tools/call` arguments (as JSON) forwarded; larger calls get a clear error."""
    page_size: int = 0
    """Items per downstream list page; 0 returns everything in one page."""
    catalog_mode: bool = False
    """MCP clients see three tools (search_tools, describe_tool, call_tool) standing for the
    whole catalog, instead of every tool (`_catalog_mode.py`)."""

    def globally_denied(self, server: str, tool: str) -> bool:
        qualified = f"{server}/{tool}"
        return any(fnmatchcase(qualified, p) or fnmatchcase(tool, p) for p in self.deny)
