"""ACP's remote transport, server side: Streamable HTTP and WebSocket on one endpoint, as the
official ACP Python SDK (0.12.1, `acp.http`/`acp.ws`) speaks it, made durable as the ACP
"durable and resumable transport" RFD proposes (`durable.py`). Who may call is the embedding
application's middleware's decision (Junction's access guard); the routes check only that each
request on a connection comes from the caller that opened it (else 404, as for an unknown id).

Streamable HTTP (`{path}`; header names are case-insensitive):

- `POST` an `initialize` request (no `Acp-Connection-Id`): a new connection; `200` with the
  agent's JSON-RPC answer as the body and `Acp-Connection-Id: <id>` as a header.
- `POST` any other message with `Acp-Connection-Id`: `202`, empty body; the answer comes on the
  stream. `session/prompt`, `session/cancel`, `session/close`, `session/set_mode` and
  `session/set_config_option` must carry `Acp-Session-Id` (400 without it, 404 for a session
  the connection has not seen). A retry (same request id, or same `Idempotency-Key`, same
  bytes) is not run again: `202` with `Acp-Duplicate: true`. The same id with other bytes while
  the first is unanswered: `409`. Errors: `415` not `application/json`, `400` not JSON or not a
  JSON-RPC object (`error` says which), `413` over `max_message_bytes`, `501` a batch, `400`
  without a connection id, `404` an unknown or ended connection.
- `GET` with `Acp-Connection-Id` and `Accept: text/event-stream` (else 406): the connection's
  stream, every server->client message as an SSE event `event: message`, `id: <cursor>`,
  `data: <JSON-RPC>`; `event: close` (`data: end`) when the connection ends for good. With
  `Last-Event-ID: <cursor>` it first replays everything after that cursor; a cursor not retained,
  beyond the last one sent, or not a number: `409`, and nothing else changes. One stream is live
  per connection: a newer GET fences the older off (it ends without `close`). Without
  `Last-Event-ID` it continues after what the previous stream took (after 0 the first time, so
  nothing sent between `initialize` and the first GET is lost). With `Acp-Session-Id` (the SDK
  opens one per session) it is a session listener: `200`, keepalives only, since every message
  is on the connection stream in one order.
- `DELETE` with `Acp-Connection-Id`: the connection ends (`202`).
- A connection with no stream attached for `grace_seconds` ends.

WebSocket (`GET {path}` with `Upgrade: websocket`): the accept carries `Acp-Connection-Id`.
Without a subprotocol it is the SDK's profile: text frames of plain JSON-RPC, and the connection
ends with the socket. With the subprotocol `RESUMABLE_SUBPROTOCOL` the connection is durable:
each server->client message carries its cursor as a top-level `"_meta": {"acp/cursor": "<n>"}`
member, and a client that comes back sends, as its first frame, the notification
`stream/resume` `{"connectionId", "cursor"}`; the server answers `stream/resumed`
`{"connectionId", "cursor"}` and replays, or `stream/resume_failed` `{"reason"}`, after which the
socket serves a new connection. A resumed socket fences the older one off (closed with 4409). A
client close with 1000 ends the connection; any other loss leaves it for `grace_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from transports.durable import Accepted, DurableConnection
from transports.owners import Owners, owners_of
from transports.stream import DEFAULT_MAX_MESSAGE_BYTES, MessageStream
from transports.websocket import CLOSE_NORMAL, same_principal, serve_websocket

logger = logging.getLogger(__name__)

CONNECTION_ID_HEADER = "Acp-Connection-Id"
SESSION_ID_HEADER = "Acp-Session-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DUPLICATE_HEADER = "Acp-Duplicate"
RESUMABLE_SUBPROTOCOL = "acp.resumable.v1"
CURSOR_META = "acp/cursor"
RESUME = "stream/resume"
RESUMED = "stream/resumed"
RESUME_FAILED = "stream/resume_failed"
CLOSE_SUPERSEDED = 4409
CLOSE_TOO_BIG = 1009
SESSION_SCOPED = frozenset(
    {
        "session/prompt",
        "session/cancel",
        "session/close",
        "session/set_mode",
        "session/set_config_option",
    }
)
"""Methods whose POST must name its session in `Acp-Session-Id` (the SDK's rule)."""


def with_cursor(message: bytes, cursor: int) -> bytes:
    """`message` (a JSON object's text) with `"_meta": {"acp/cursor": "<cursor>"}` as its first
    member; anything else (a batch) as it is. `strip_cursor` undoes it byte for byte."""
    if not message.startswith(b"{"):
        return message
    rest = message[1:].lstrip()
    head = b'{"_meta":{"acp/cursor":"%d"}' % cursor
    return head + (b"}" if rest.startswith(b"}") else b"," + rest)


def strip_cursor(message: bytes) -> tuple[bytes, str | None]:
    """The message without the member `with_cursor` added, and the cursor (None if absent)."""
    prefix = b'{"_meta":{"acp/cursor":"'
    if not message.startswith(prefix):
        return message, None
    end = message.find(b'"}', len(prefix))
    if end < 0:
        return message, None
    cursor = message[len(prefix) : end].decode()
    rest = message[end + 2 :]
    return (b"{" + rest[1:] if rest.startswith(b",") else b"{" + rest), cursor


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _INVALID


_INVALID = object()


class RemoteAcpServer:
    """The connections behind one endpoint, and its HTTP and WebSocket handlers."""

    def __init__(
        self,
        on_connect: Callable[[MessageStream], Awaitable[None]],
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        retention: int = 1024,
        grace_seconds: float = 60.0,
        ping_seconds: float = 15.0,
        initialize_timeout: float = 30.0,
    ) -> None:
        self.on_connect = on_connect
        self.limit = max_message_bytes
        self.retention = retention
        self.grace_seconds = grace_seconds
        self.ping_seconds = ping_seconds
        self.initialize_timeout = initialize_timeout
        self.connections: dict[str, DurableConnection] = {}
        self.owners: Owners | None = None
        """Where other processes learn which connections are here (`owners.py`; none alone)."""

    def routes(self, path: str) -> list[BaseRoute]:
        return [
            Route(path, self.http, methods=["GET", "POST", "DELETE"]),
            WebSocketRoute(path, self.websocket),
        ]

    # -- connections ----------------------------------------------------------------------------

    def _open(self, state: Any, connection_id: str | None = None) -> DurableConnection:
        connection = DurableConnection(
            connection_id or secrets.token_urlsafe(16),
            state=state,
            retention=self.retention,
            grace_seconds=self.grace_seconds,
        )
        self.connections[connection.connection_id] = connection
        connection.task = asyncio.create_task(self._run(connection))
        return connection

    async def _record(self, scope: Any, connection: DurableConnection) -> None:
        """Tell the application's `Owners` (if any) that `connection` lives here."""
        owners = owners_of(scope)
        if owners is not None:
            self.owners = owners
            await owners.opened("acp", connection.connection_id, lambda: not connection.ended)

    async def _run(self, connection: DurableConnection) -> None:
        """Run the handler; when it returns (or fails) the connection ends."""
        try:
            await self.on_connect(connection)
        except Exception:
            logger.exception("remote ACP connection handler failed")
        finally:
            connection.end("handler returned")
            self.connections.pop(connection.connection_id, None)
            if self.owners is not None:
                self.owners.closed("acp", connection.connection_id)

    def _find(self, connection_id: str | None, state: Any) -> DurableConnection | None:
        """A live connection of this caller (another caller's is as unknown as a made-up id)."""
        found = self.connections.get(connection_id or "")
        if found is None or found.ended or not same_principal(state, found.state):
            return None
        return found

    # -- Streamable HTTP ------------------------------------------------------------------------

    async def http(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._post(request)
        connection_id = request.headers.get(CONNECTION_ID_HEADER)
        if connection_id is None:
            return _error(400, f"missing {CONNECTION_ID_HEADER} header")
        connection = self._find(connection_id, request.scope.get("state"))
        if connection is None:
            return _error(404, "unknown or ended connection")
        if request.method == "DELETE":
            connection.end("closed by the client")
            return Response(status_code=202)
        return self._get(request, connection)

    async def _post(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("application/json"):
            return _error(415, "Content-Type must be application/json")
        body = await self._read_body(request)
        if body is None:
            return JSONResponse(
                {"error": "message exceeds the size limit", "limit": self.limit}, status_code=413
            )
        message = _decode(body)
        if message is _INVALID:
            return _error(400, "the body is not JSON")
        if isinstance(message, list):
            return _error(501, "batches are not supported")
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _error(400, "the body is not a JSON-RPC 2.0 message")
        method = message.get("method")
        if method == "initialize" and "id" in message:
            return await self._initialize(request, body, message)
        connection_id = request.headers.get(CONNECTION_ID_HEADER)
        if connection_id is None:
            return _error(400, f"missing {CONNECTION_ID_HEADER} header (initialize first)")
        connection = self._find(connection_id, request.scope.get("state"))
        if connection is None:
            return _error(404, "unknown or ended connection")
        session_id = request.headers.get(SESSION_ID_HEADER)
        if method in SESSION_SCOPED and session_id is None:
            return _error(400, f"{method} needs the {SESSION_ID_HEADER} header")
        params = message.get("params")
        named = params.get("sessionId") if isinstance(params, dict) else None
        if session_id is not None and named is not None and named != session_id:
            return _error(400, f"{SESSION_ID_HEADER} does not match params.sessionId")
        if method in SESSION_SCOPED and session_id not in connection.sessions:
            return _error(404, "unknown session id on this connection")
        accepted = connection.accept(body, message, key=request.headers.get(IDEMPOTENCY_HEADER))
        if accepted is Accepted.CONFLICT:
            return _error(409, "this request id is in use by another request still running")
        if accepted is Accepted.DUPLICATE:
            return Response(status_code=202, headers={DUPLICATE_HEADER: "true"})
        return Response(status_code=202)

    async def _initialize(self, request: Request, body: bytes, message: Any) -> Response:
        connection = self._open(request.scope.get("state"))
        await self._record(request.scope, connection)
        answer = connection.expect_answer(message)
        connection.accept(body, message)
        try:
            text = await asyncio.wait_for(answer, self.initialize_timeout)
        except (TimeoutError, ConnectionError) as exc:
            connection.end("initialize was not answered")
            return _error(504, f"initialize was not answered: {exc!r}")
        return Response(
            text,
            media_type="application/json",
            headers={CONNECTION_ID_HEADER: connection.connection_id},
        )

    def _get(self, request: Request, connection: DurableConnection) -> Response:
        accept = request.headers.get("accept", "")
        if "text/event-stream" not in accept and "*/*" not in accept:
            return _error(406, "Accept must include text/event-stream")
        session_id = request.headers.get(SESSION_ID_HEADER)
        if session_id is not None:
            if session_id not in connection.sessions:
                return _error(404, "unknown session id on this connection")
            return EventSourceResponse(self._idle(connection), ping=self.ping_seconds)
        last = request.headers.get("last-event-id")
        cursor: int | None = None
        if last is not None:
            if not last.isdigit() or len(last) > 18:
                return _error(409, f"cannot resume after {last!r}: not a cursor of this connection")
            cursor = int(last)
        attached = connection.attach(cursor)
        if attached is None:
            logger.warning(
                "connection %s: refused to resume after cursor %s (retained up to %d)",
                connection.connection_id,
                last,
                connection.last_cursor,
            )
            return _error(409, f"cannot resume after cursor {last}: not retained or never sent")
        generation, start = attached
        return _Stream(connection, generation, self._events(connection, start, generation), self)

    async def _events(
        self, connection: DurableConnection, cursor: int, generation: int
    ) -> AsyncIterator[ServerSentEvent]:
        async for number, data in connection.deliveries(cursor, generation):
            yield ServerSentEvent(data=data.decode(), event="message", id=str(number))
        if connection.ended and not connection.superseded(generation):
            yield ServerSentEvent(data="end", event="close")

    async def _idle(self, connection: DurableConnection) -> AsyncIterator[ServerSentEvent]:
        await connection.until_ended()
        yield ServerSentEvent(data="end", event="close")

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None when it is over the limit (read no further than that)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.limit:
                    return None
                chunks.append(chunk)
        except ClientDisconnect:
            return b""
        return b"".join(chunks)

    # -- WebSocket ------------------------------------------------------------------------------

    async def websocket(self, websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        connection_id = secrets.token_urlsafe(16)
        header = [(CONNECTION_ID_HEADER.lower().encode(), connection_id.encode())]
        if RESUMABLE_SUBPROTOCOL not in offered:
            await serve_websocket(
                websocket, self.on_connect, max_message_bytes=self.limit, headers=header
            )
            return
        await websocket.accept(subprotocol=RESUMABLE_SUBPROTOCOL, headers=header)
        socket = _Socket(websocket, self.limit)
        first = await socket.receive()
        if first is None:
            return
        state = websocket.scope.get("state")
        connection: DurableConnection | None = None
        start = 0
        request = _decode(first)
        if isinstance(request, dict) and request.get("method") == RESUME:
            connection, start, why = self._resume(request.get("params"), state)
            elsewhere = self._elsewhere(websocket, request.get("params"))
            if connection is None and elsewhere is not None:  # another process's connection?
                refusal = await elsewhere.resume_elsewhere(
                    websocket, request["params"]["connectionId"], first
                )
                if refusal is None:  # carried there, and served until it ended
                    return
                why = refusal
            if connection is None:
                await socket.send_json(
                    {"jsonrpc": "2.0", "method": RESUME_FAILED, "params": {"reason": why}}
                )
            else:
                params = {"connectionId": connection.connection_id, "cursor": str(start)}
                await socket.send_json({"jsonrpc": "2.0", "method": RESUMED, "params": params})
            first = None
        if connection is None:
            connection = self._open(state, connection_id)
            await self._record(websocket.scope, connection)
            attached = connection.attach(0)
            assert attached is not None
            generation = attached[0]
        else:
            generation = connection.generation
        await self._pump_socket(socket, connection, generation, start, first)

    def _elsewhere(self, websocket: WebSocket, params: Any) -> Owners | None:
        """The `Owners` to offer a resumption of a connection id this process never had."""
        owners = owners_of(websocket.scope)
        if owners is None or not isinstance(params, dict):
            return None
        named = params.get("connectionId")
        return owners if isinstance(named, str) and named not in self.connections else None

    def _resume(self, params: Any, state: Any) -> tuple[DurableConnection | None, int, str]:
        """The connection a `stream/resume` names, attached after its cursor; or None and why."""
        if not isinstance(params, dict):
            return None, 0, "stream/resume needs params {connectionId, cursor}"
        connection = self._find(str(params.get("connectionId", "")), state)
        if connection is None:
            return None, 0, "unknown or ended connection"
        cursor = str(params.get("cursor", ""))
        if not cursor.isdigit() or len(cursor) > 18:
            return None, 0, f"cannot resume after {cursor!r}: not a cursor of this connection"
        attached = connection.attach(int(cursor))
        if attached is None:
            return None, 0, f"cannot resume after cursor {cursor}: not retained or never sent"
        return connection, attached[1], ""

    async def _pump_socket(
        self,
        socket: _Socket,
        connection: DurableConnection,
        generation: int,
        cursor: int,
        first: bytes | None,
    ) -> None:
        """Frames in to the connection, its messages out, until either side is done."""
        sender = asyncio.create_task(self._socket_out(socket, connection, generation, cursor))
        try:
            if first is not None:
                self._accept_frame(connection, first)
            while (frame := await socket.receive()) is not None:
                if connection.superseded(generation) or connection.ended:
                    break
                self._accept_frame(connection, frame)
            if socket.client_code == CLOSE_NORMAL:
                connection.end("closed by the client")
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            connection.detach(generation)
            if connection.superseded(generation):
                await socket.close(CLOSE_SUPERSEDED, "superseded by a newer connection")
            elif connection.ended:
                await socket.close(CLOSE_NORMAL)
            else:
                await socket.close(socket.close_code or CLOSE_NORMAL)

    @staticmethod
    def _accept_frame(connection: DurableConnection, frame: bytes) -> None:
        connection.accept(frame, _decode(frame))

    @staticmethod
    async def _socket_out(
        socket: _Socket, connection: DurableConnection, generation: int, cursor: int
    ) -> None:
        async for number, data in connection.deliveries(cursor, generation):
            if not await socket.send(with_cursor(data, number)):
                return
        # superseded or ended: end the socket's reader too
        await socket.close(
            CLOSE_SUPERSEDED if connection.superseded(generation) else CLOSE_NORMAL,
            "superseded by a newer connection" if connection.superseded(generation) else "",
        )


class _Stream(EventSourceResponse):
    """An SSE response that detaches its connection's sink when it ends, however it ends."""

    def __init__(
        self,
        connection: DurableConnection,
        generation: int,
        content: AsyncIterator[ServerSentEvent],
        server: RemoteAcpServer,
    ) -> None:
        super().__init__(content, ping=server.ping_seconds)
        self._connection = connection
        self._generation = generation

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._connection.detach(self._generation)


class _Socket:
    """A Starlette WebSocket reduced to what the durable profile needs, never raising."""

    def __init__(self, websocket: WebSocket, limit: int) -> None:
        self._ws = websocket
        self._limit = limit
        self._lock = asyncio.Lock()
        self._closed = False
        self.client_code: int | None = None
        self.close_code: int | None = None

    async def receive(self) -> bytes | None:
        if self._closed:
            return None
        try:
            message = await self._ws.receive()
        except (RuntimeError, OSError):
            self._closed = True
            return None
        if message["type"] == "websocket.disconnect":
            self._closed = True
            self.client_code = int(message.get("code") or 1005)
            return None
        text = message.get("text")
        data: bytes = text.encode() if text is not None else (message.get("bytes") or b"")
        if len(data) > self._limit:
            logger.warning(
                "websocket message of %d bytes exceeds the limit of %d", len(data), self._limit
            )
            await self.close(CLOSE_TOO_BIG, "message too big")
            return None
        return data

    async def send(self, data: bytes) -> bool:
        if self._closed:
            return False
        async with self._lock:
            try:
                await self._ws.send_text(data.decode())
            except (WebSocketDisconnect, RuntimeError, OSError, UnicodeDecodeError):
                return False
        return True

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send(orjson.dumps(message))

    async def close(self, code: int, reason: str = "") -> None:
        if self._closed:
            return
        self._closed = True
        self.close_code = code
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self._ws.close(code, reason)


def remote_routes(
    path: str,
    on_connect: Callable[[MessageStream], Awaitable[None]],
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    retention: int = 1024,
    grace_seconds: float = 60.0,
) -> list[BaseRoute]:
    """The HTTP and WebSocket routes of ACP's remote transport at `path` (see the docstring)."""
    server = RemoteAcpServer(
        on_connect,
        max_message_bytes=max_message_bytes,
        retention=retention,
        grace_seconds=grace_seconds,
    )
    return server.routes(path)


__all__ = [
    "CONNECTION_ID_HEADER",
    "CURSOR_META",
    "DUPLICATE_HEADER",
    "IDEMPOTENCY_HEADER",
    "RESUMABLE_SUBPROTOCOL",
    "RESUME",
    "RESUMED",
    "RESUME_FAILED",
    "SESSION_ID_HEADER",
    "RemoteAcpServer",
    "remote_routes",
    "strip_cursor",
    "with_cursor",
]
