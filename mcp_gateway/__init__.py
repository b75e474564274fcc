"""Many MCP servers aggregated into one, served over stdio and Streamable HTTP.

Importing this package is cheap: the `mcp` SDK (about 0.5 s of imports) loads only when a
gateway, server or upstream name below is first touched, so a process that never uses MCP
never pays for it.

    async with Gateway([StdioUpstream(name="time", command="uvx", args=("mcp-server-time",))]) as gw:
        tools = await gw.llm_tools()
        result = await gw.call_tool(tools[0].name, {...})

Decisions:

- The `mcp` SDK does both protocol sides (sessions, the era per connection, Streamable HTTP),
  except the two stdio transports, which are our own:
  - upstream children (`_stdio.py`): a child must never outlive Junction, even a SIGKILLed one
    (PR_SET_PDEATHSIG; the SDK kills the process group only on an orderly exit); the child's
    last stderr lines and exit status say why an upstream failed; non-JSON stdout lines are
    counted and skipped; a line may be up to 128 MiB (a 10 MiB result is one line).
  - `junction --mode mcp` (`_stdio_server.py`): the SDK's `stdio_server()` makes three
    worker-thread hops per `tools/call`, a third of the gateway's added latency at c=1 (moving
    to event-loop pipes took it from 2.3-2.5x to 1.7-1.95x of direct, docs/performance.md); and
    the SDK's reader only logs a bad line, so a client whose request has an id would wait
    forever: here it is answered -32700/-32600, and a line over `server.max_message_bytes` is
    refused and skipped as it streams in, never held whole.
  - both read their pipe with `_lines.LineReader`, which hands a `tools/call` line to the fast
    lane, and its response line to the raw upstream channel, in the pipe's callback (two
    event-loop turns fewer each way than a reading task).
- Streamable HTTP upstreams get an httpx client whose POST event streams are read to their end
  when the SDK closes them early (`_http_keepalive.py`), so their connections are reused.
- Requests go out raw and results pass through untouched (no typed parse): a gateway must carry
  `structuredContent`, images and `_meta` losslessly, and one malformed tool in a listing must
  cost that tool only. That needs private SDK names, all kept in `_sdk.py`.
- One long-lived session per upstream, supervised and reconnected (`transports.Backoff`): a
  session per call is what makes other gateways ~10x slower.
- An unchanged `tools/list` is answered from its last wire form: validating and dumping a
  thousand tools through the SDK's result models costs ~20 ms.
- What an upstream sends its client while it serves a call (2025-11-25 requests: elicitation,
  sampling, roots; log messages) goes to the caller of that call (`relay.py` says how the
  call is told apart on a shared session), in that caller's generation: requests for a
  2025-11-25 client, input-required rounds for a 2026-07-28 one (`_client_relay.py`), and
  `on_request` for in-process callers (`ClientRequestFn`). A 2025-11-25 client's calls to a
  server that speaks both go over a 2025-11-25 session of their own
  (`UpstreamSpec.legacy_session`), so a tool written for that generation works as it would
  directly.
- No API-key check here: who may call `/mcp` is the embedding application's decision (Junction's
  access guard); a session answers only the principal that opened it.
"""

from typing import TYPE_CHECKING

import lazy_loader

from mcp_gateway.errors import ClientRequestFn, GatewayError
from mcp_gateway.specs import (
    GatewayOptions,
    HttpUpstream,
    PrefixMode,
    StdioUpstream,
    ToolFilter,
    UpstreamSpec,
)

if TYPE_CHECKING:
    from mcp_gateway.gateway import Catalog, Gateway, GatewaySession
    from mcp_gateway.routes import LocalHandler, LocalTool, ToolSchema
    from mcp_gateway.server import build_server, http_app, serve_stdio
    from mcp_gateway.upstream import UpstreamState, UpstreamStatus

# The gateway, server and upstream modules pull in the `mcp` SDK; they load on first use.
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "gateway": ["Catalog", "Gateway", "GatewaySession"],
        "routes": ["LocalHandler", "LocalTool", "ToolSchema"],
        "server": ["build_server", "http_app", "serve_stdio"],
        "upstream": ["UpstreamState", "UpstreamStatus"],
    },
)


__all__ = [
    "Catalog",
    "ClientRequestFn",
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
