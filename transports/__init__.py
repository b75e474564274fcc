"""JSON-RPC 2.0 over stdio (NDJSON), WebSocket and SSE: one peer, three framings.

The peer (`JsonRpcPeer`) carries requests both ways on one connection; a framing turns a byte
stream into whole messages (`MessageStream`). Nothing here knows about ACP, MCP or A2A.
"""

import importlib
from typing import TYPE_CHECKING, Any

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
_LAZY = {
    "connect_sse": "transports.sse",
    "sse_routes": "transports.sse",
    "HandshakeRefusedError": "transports.websocket",
    "connect_websocket": "transports.websocket",
    "websocket_route": "transports.websocket",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'transports' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "CANCEL_METHOD",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
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
