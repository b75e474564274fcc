"""Every private name of the `mcp` SDK that the gateway uses, and only here.

The SDK keeps these behind underscores; pyproject pins `mcp` to one minor release (2.3.x,
checked against 2.3.0) and a new minor is checked against this list. Each name and why:

1. `mcp.client._transport.TransportStreams`: the type of a transport's (read, write) pair, which
   our own stdio transport (`_stdio.py`) and `upstream._Streams` produce; the SDK has no public
   alias (its own TODO says so).
2. `mcp.shared._httpx_utils.create_mcp_http_client`: the httpx client with the SDK's MCP
   defaults (timeouts, redirects), made with an upstream's configured headers for Streamable
   HTTP.
3. `ClientSession._stamp`: the session's version stamp (2026-07-28 `_meta` and headers) on a
   request we send raw.
4. `ClientSession._dispatcher` (`send_raw_request`): sends a request and returns the result
   dict, skipping the typed parse, so results pass through untouched (`raw_request`); its
   `_write_stream` names the stdio transport whose raw channel may send it instead.
5. `mcp.server.stdio._claim_fd`, 6. `_open_stdin_diversion`, 7. `_open_stdout_diversion`: the
   SDK's claim of fd 0/1 (stdin reads the null device, stdout points at stderr while serving,
   restored on exit), reused by our event-loop stdio server (`_stdio_server.py`) so a stray
   print cannot corrupt the stream.
8. `mcp.shared._context_streams` (`ContextReceiveStream`, `ContextSendStream`,
   `create_context_streams`): the message streams the SDK's server reads and writes, which that
   stdio server hands it.
9. `ServerSession._connection` (its `exit_stack`): how the server's notifier learns that a
   handshake-era connection ended, to stop notifying it of list changes.
10. `ServerSession._request_outbound`: the back-channel of the request being served (on
   Streamable HTTP, that request's SSE stream), to relay an upstream's server-to-client
   request or log message raw: the typed `send_request` re-validates and drops fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from mcp.client._transport import TransportStreams
from mcp.client.session import ClientSession
from mcp.server import stdio as _stdio
from mcp.server.session import ServerSession
from mcp.shared._context_streams import (
    ContextReceiveStream,
    ContextSendStream,
    create_context_streams,
)
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.dispatcher import CallOptions, Outbound
from mcp_types import CLIENT_CAPABILITIES_META_KEY

from mcp_gateway._raw_upstream import channel_of

Release = Callable[[], None] | None
"""Gives a claimed standard descriptor back (None: nothing to give back)."""


async def raw_request(
    session: ClientSession, method: str, params: Mapping[str, Any] | None, opts: CallOptions
) -> dict[str, Any]:
    """Send `method` on the SDK session and return the result dict untouched.

    The session's stamp (2026-07-28) writes Junction's own client capabilities into `_meta`; a
    capabilities entry the caller's `_meta` already holds is the client's, and stays.
    """
    # A stdio upstream's raw channel (`_raw_upstream.py`), found by the session's write stream.
    raw = channel_of(getattr(session._dispatcher, "_write_stream", None))
    data: dict[str, Any] = {"method": method, "params": dict(params or {})}
    given = data["params"].get("_meta")
    if raw is not None:
        # Over stdio the stamp's HTTP headers go nowhere: a copy without the params is
        # stamped (no Mcp-Name or Mcp-Param-* headers worked out), and only its `_meta` kept.
        bare: dict[str, Any] = {"method": method, "params": {}}
        if isinstance(given, dict):
            bare["params"]["_meta"] = dict(given)
        bare_opts: CallOptions = {**opts}
        session._stamp(bare, bare_opts)
        if raw.takes(bare_opts):
            body = data["params"]
            if "_meta" in bare["params"]:
                body["_meta"] = _with_callers_capabilities(bare["params"]["_meta"], given)
            return await raw.request(str(opts["request_id"]), method, body, opts.get("on_progress"))
    if isinstance(given, dict):
        data["params"]["_meta"] = dict(given)  # the stamp writes into it
    session._stamp(data, opts)
    if isinstance(given, dict) and "_meta" in data["params"]:
        data["params"]["_meta"] = _with_callers_capabilities(data["params"]["_meta"], given)
    result: dict[str, Any] = await session._dispatcher.send_raw_request(
        method, data.get("params") or None, opts
    )
    return result


def _with_callers_capabilities(stamped: dict[str, Any], given: Any) -> dict[str, Any]:
    if isinstance(given, dict) and CLIENT_CAPABILITIES_META_KEY in given:
        stamped[CLIENT_CAPABILITIES_META_KEY] = given[CLIENT_CAPABILITIES_META_KEY]
    return stamped


def claim_stdin(stream: Any) -> tuple[BinaryIO, Release]:
    """Serve the wire from a private duplicate of fd 0; fd 0 reads the null device meanwhile."""
    return _stdio._claim_fd(0, stream, "rb", _stdio._open_stdin_diversion)


def claim_stdout(stream: Any) -> tuple[BinaryIO, Release]:
    """Serve the wire from a private duplicate of fd 1; fd 1 points at stderr meanwhile."""
    return _stdio._claim_fd(1, stream, "wb", _stdio._open_stdout_diversion)


def connection_of(session: ServerSession) -> Any | None:
    """The connection behind a server session (None if the SDK's layout changed)."""
    return getattr(session, "_connection", None)


def request_outbound(session: ServerSession) -> Outbound:
    """The back-channel of the request a server session serves."""
    outbound: Outbound = session._request_outbound
    return outbound


__all__ = [
    "ContextReceiveStream",
    "ContextSendStream",
    "Release",
    "TransportStreams",
    "claim_stdin",
    "claim_stdout",
    "connection_of",
    "create_context_streams",
    "create_mcp_http_client",
    "raw_request",
    "request_outbound",
]
