"""JSON-RPC 2.0 over stdio (NDJSON), WebSocket and SSE: one peer, three framings.

The peer (`JsonRpcPeer`) carries requests both ways on one connection; a framing turns a byte
stream into whole messages (`MessageStream`). Nothing here knows about ACP, MCP or A2A.
"""

from typing import TYPE_CHECKING

import lazy_loader

from transports.backoff import Backoff
from transports.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    PeerClosedError,
    RpcError,
)
from transports.memory import MemoryStream, memory_pair
from transports.ndjson import NdjsonStream, claim_stdout, open_pipe_stream, open_stdio
from transports.peer import CANCEL_METHOD, JsonRpcPeer, session_lane
from transports.stream import DEFAULT_MAX_MESSAGE_BYTES, MessageStream, Oversized

if TYPE_CHECKING:
    from transports.sse import connect_sse, sse_routes
    from transports.websocket import HandshakeRefusedError, connect_websocket, websocket_route

# The HTTP framings pull in starlette, httpx and websockets; `--mode stdio` must not pay for them
# before it answers `initialize`, so they load on first use.
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "sse": ["connect_sse", "sse_routes"],
        "websocket": ["HandshakeRefusedError", "connect_websocket", "websocket_route"],
    },
)


__all__ = [
    "CANCEL_METHOD",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
    "Backoff",
    "HandshakeRefusedError",
    "JsonRpcPeer",
    "MemoryStream",
    "MessageStream",
    "NdjsonStream",
    "Oversized",
    "PeerClosedError",
    "RpcError",
    "claim_stdout",
    "connect_sse",
    "connect_websocket",
    "memory_pair",
    "open_pipe_stream",
    "open_stdio",
    "session_lane",
    "sse_routes",
    "websocket_route",
]
