"""JSON-RPC 2.0 over stdio (NDJSON), WebSocket and SSE: one peer, three framings.

The peer (`JsonRpcPeer`) carries requests both ways on one connection; a framing turns a byte
stream into whole messages (`MessageStream`). Nothing here knows about ACP, MCP or A2A.
"""

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
from transports.ndjson import NdjsonStream, claim_stdout, open_pipe_stream, open_stdio
from transports.peer import CANCEL_METHOD, JsonRpcPeer, session_lane
from transports.stream import DEFAULT_MAX_MESSAGE_BYTES, MessageStream, Oversized

__all__ = [
    "CANCEL_METHOD",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
    "JsonRpcPeer",
    "MessageStream",
    "NdjsonStream",
    "Oversized",
    "PeerClosedError",
    "RpcError",
    "claim_stdout",
    "open_pipe_stream",
    "open_stdio",
    "session_lane",
]
