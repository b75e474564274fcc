"""JSON-RPC 2.0 over stdio (NDJSON) and WebSocket: one peer, two framings; and ACP's
remote transport (Streamable HTTP and WebSocket on one endpoint, `remote.py`), whose connections
outlive their sockets (`durable.py`: cursors, replay, idempotent retries, fencing).

The peer (`JsonRpcPeer`) carries requests both ways on one connection; a framing turns a byte
stream into whole messages (`MessageStream`). Nothing here knows about ACP, MCP or A2A.

Decisions:

- The peer is our own, not jsonrpcserver for both directions: jsonrpcserver only dispatches
  requests that come in, while ACP needs both directions on one connection (the agent asks
  `session/request_permission` while the client's `session/prompt` runs), ids correlated,
  `$/cancel_request`, batches and size limits. jsonrpcserver still dispatches (`dispatch.py`),
  entered at `async_dispatcher.call`: the envelope is parsed by orjson and checked here, and
  its own parse, schema validation (a call costs ~113 us with it, ~46 us without), batch
  `gather` and `validate_args` (~40% of dispatch; params are validated with pydantic anyway)
  are skipped. Over stdio at c=64 the peer does ~72k round trips/s (0.30 of a bare NDJSON echo),
  against 18.9k for jsonrpcserver's own path (design brief; docs/performance.md).
- NDJSON lines are split by hand (`ndjson.py`): `StreamReader.readline` cannot skip the rest of
  an over-long line (its tail would be read as the next message); here such a line is dropped
  as it streams in, never held whole, and reported as `Oversized`. Lines queued in one turn of
  the event loop go out in one write (64 concurrent replies: one syscall instead of 64).
- WebSocket and SSE framing are libraries' (websockets under uvicorn; sse-starlette and
  httpx-sse for the remote transport's streams): nothing here encodes those wires by hand.
- The remote transport is ACP's by name (its headers, `initialize` answered in the POST, the
  methods that need `Acp-Session-Id`), but knows nothing else of ACP: it routes, numbers and
  replays JSON-RPC messages.
- No API-key check on the server routes: who may connect is the embedding application's
  middleware's decision (Junction's access guard); clients send a bearer token when given one.
- `Backoff` is a delay schedule, not a retry decorator: the reconnect loops that use it are
  long-lived supervisors that decide themselves what failed and what they wait on.
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
    from transports.remote import remote_routes
    from transports.remote_client import RemoteClientStream, connect_remote
    from transports.streamable_client import StreamableClientStream, connect_streamable
    from transports.websocket import HandshakeRefusedError, connect_websocket, websocket_route

# The HTTP framings pull in starlette, httpx and websockets; `--mode stdio` must not pay for them
# before it answers `initialize`, so they load on first use.
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "remote": ["remote_routes"],
        "remote_client": ["RemoteClientStream", "connect_remote"],
        "streamable_client": ["StreamableClientStream", "connect_streamable"],
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
    "RemoteClientStream",
    "RpcError",
    "StreamableClientStream",
    "claim_stdout",
    "connect_remote",
    "connect_streamable",
    "connect_websocket",
    "memory_pair",
    "open_pipe_stream",
    "open_stdio",
    "remote_routes",
    "session_lane",
    "websocket_route",
]
