"""JSON-RPC over WebSocket: one message per text frame.

Server side: a Starlette `WebSocketRoute` (serve mode runs it under uvicorn, whose WebSocket
protocol is the `websockets` library). Client side: `websockets`' asyncio client.

Choices worth knowing:

- **Who may connect** is the embedding application's middleware's decision (Junction's access
  guard), made before the route runs; the route has no key check of its own. The client sends
  `Authorization: Bearer <token>` when given a token, and raises `HandshakeRefusedError` with the
  HTTP status of a refused handshake (401/403).
- **Binary frames** are accepted and taken as UTF-8 JSON text (some clients send JSON in binary
  frames); invalid JSON then gets the peer's usual parse error. Both sides send text frames,
  except for bytes that are not valid UTF-8: a text frame must be UTF-8 (the receiver would close
  with 1007), so those go in a binary frame and get a parse error rather than a dead connection.
- **Size limit.** A frame cannot be skipped, so an oversized message ends the connection with
  close code 1009 and `receive()` returns None rather than `Oversized`. uvicorn enforces its own
  `ws_max_size` before the route sees the frame (same 1009 close); the route's
  `max_message_bytes` is checked again, so set `ws_max_size` at least as high as the largest
  route limit.
- **Closed connection:** `receive()` returns None and `send()` raises `ConnectionError`, never a
  library exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from transports.stream import DEFAULT_MAX_MESSAGE_BYTES, ClosesOnExit, MessageStream, Oversized

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011


class HandshakeRefusedError(ConnectionRefusedError):
    """The server refused to open the connection (bad or missing key): `status` is the HTTP code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def same_principal(state: Mapping[str, Any] | None, other: Mapping[str, Any] | None) -> bool:
    """Whether two requests' ASGI states name the same caller (`principal`, None without keys)."""
    return (state or {}).get("principal") == (other or {}).get("principal")


def bearer_header(token: str | None) -> dict[str, str]:
    """The request header a client sends for `token` (none without one)."""
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def _is_utf8(data: bytes) -> bool:
    """Whether `data` may go in a text frame (which must be UTF-8, or the receiver closes with
    1007). Anything else goes in a binary frame, so the peer can answer it with a parse error."""
    if data.isascii():
        return True
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


# -- server ---------------------------------------------------------------------------------------


class WebSocketServerStream:
    """An accepted Starlette WebSocket as a `MessageStream`."""

    def __init__(self, websocket: WebSocket, *, max_message_bytes: int) -> None:
        self._ws = websocket
        self._limit = max_message_bytes
        self._send_lock = asyncio.Lock()
        self._gone = False  # the connection is closed or closing: receive() is done
        self._close_sent = False
        self._close_code: int | None = None

    @property
    def state(self) -> Mapping[str, Any]:
        """The handshake's ASGI `state`: who the caller is, as the server's middleware saw it."""
        return dict(self._ws.scope.get("state") or {})

    @property
    def close_code(self) -> int | None:
        """The close code seen from the client, or the one this side closed with; None while open."""
        return self._close_code

    async def receive(self) -> bytes | Oversized | None:
        if self._gone:
            return None
        try:
            message = await self._ws.receive()
        except (RuntimeError, OSError):  # starlette's WebSocketDisconnected is a RuntimeError
            self._gone = True
            return None
        if message["type"] == "websocket.disconnect":
            self._gone = True
            if self._close_code is None:
                self._close_code = int(message.get("code") or 1005)
            return None
        text = message.get("text")
        data: bytes = text.encode() if text is not None else (message.get("bytes") or b"")
        if len(data) > self._limit:
            logger.warning(
                "websocket message of %d bytes exceeds the limit of %d; closing with %d",
                len(data),
                self._limit,
                CLOSE_TOO_BIG,
            )
            await self._close(CLOSE_TOO_BIG, "message too big")
            return None
        return data

    async def send(self, message: bytes) -> None:
        if self._gone:
            raise ConnectionError("websocket is closed")
        async with self._send_lock:  # the ASGI send of one frame is not safe to interleave
            try:
                try:
                    text = message.decode()
                except UnicodeDecodeError:
                    await self._ws.send_bytes(message)  # see _is_utf8
                else:
                    await self._ws.send_text(text)
            except (WebSocketDisconnect, RuntimeError, OSError) as exc:
                self._gone = True
                raise ConnectionError("websocket is closed") from exc

    async def aclose(self) -> None:
        await self._close(CLOSE_NORMAL)

    async def _close(self, code: int, reason: str = "") -> None:
        """Send a close frame once; a connection that is already gone needs none."""
        if self._close_sent:
            return
        self._close_sent = True
        self._gone = True
        if self._close_code is None:
            self._close_code = code
        with suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self._ws.close(code, reason)


def websocket_route(
    path: str,
    on_connect: Callable[[MessageStream], Awaitable[None]],
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> WebSocketRoute:
    """A route that runs `on_connect(stream)` for each accepted connection, then closes it (1000).

    If `on_connect` raises, the connection closes with 1011 and the error is logged.
    """

    async def endpoint(websocket: WebSocket) -> None:
        await serve_websocket(websocket, on_connect, max_message_bytes=max_message_bytes)

    return WebSocketRoute(path, endpoint)


async def serve_websocket(
    websocket: WebSocket,
    on_connect: Callable[[MessageStream], Awaitable[None]],
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Accept `websocket` (with extra response `headers`), run `on_connect(stream)`, close."""
    await websocket.accept(headers=headers)
    stream = WebSocketServerStream(websocket, max_message_bytes=max_message_bytes)
    code = CLOSE_NORMAL
    try:
        await on_connect(stream)
    except Exception:
        logger.exception("websocket connection handler failed")
        code = CLOSE_INTERNAL_ERROR
    finally:
        await stream._close(code)


# -- client ---------------------------------------------------------------------------------------


class WebSocketClientStream(ClosesOnExit):
    """A `websockets` client connection as a `MessageStream`; usable as an async context manager."""

    def __init__(self, connection: ClientConnection) -> None:
        self._ws = connection

    @property
    def close_code(self) -> int | None:
        """The close code the server sent (1000 normal, 1009 too big, ...); None while open."""
        return self._ws.close_code

    @property
    def latency(self) -> float:
        """Round-trip time of the last keepalive ping, in seconds (0.0 before the first pong)."""
        return self._ws.latency

    async def receive(self) -> bytes | Oversized | None:
        try:
            # decode=False hands over a text frame's UTF-8 bytes without decoding them twice.
            return await self._ws.recv(decode=False)
        except ConnectionClosed:
            return None

    async def send(self, message: bytes) -> None:
        try:
            await self._ws.send(message, text=_is_utf8(message))
        except ConnectionClosed as exc:
            raise ConnectionError(f"websocket is closed ({exc})") from exc

    async def aclose(self) -> None:
        await self._ws.close(CLOSE_NORMAL)


async def connect_websocket(
    url: str,
    *,
    token: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    open_timeout: float | None = 10,
) -> WebSocketClientStream:
    """Open a WebSocket to `url` (ws:// or wss://) and return it as a message stream.

    Keepalive pings are `websockets`' own: a peer that stops answering for `ping_timeout` is
    treated as gone (receive() returns None). Raises `HandshakeRefusedError` when the server
    refuses the handshake and `ConnectionError`/`OSError`/`TimeoutError` when it cannot be reached.
    """
    connection = await open_websocket(
        url,
        token=token,
        max_message_bytes=max_message_bytes,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        open_timeout=open_timeout,
    )
    return WebSocketClientStream(connection)


async def open_websocket(
    url: str,
    *,
    token: str | None,
    max_message_bytes: int,
    ping_interval: float | None,
    ping_timeout: float | None,
    open_timeout: float | None,
    subprotocols: tuple[str, ...] = (),
) -> ClientConnection:
    """The client handshake both WebSocket clients share (this one and the remote transport's):
    the bearer token as a header, a refusal as `HandshakeRefusedError`, any other failed
    handshake as `ConnectionError`."""
    try:
        return await ws_connect(
            url,
            additional_headers=bearer_header(token),
            subprotocols=[Subprotocol(name) for name in subprotocols] or None,
            max_size=max_message_bytes,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            open_timeout=open_timeout,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise HandshakeRefusedError(status, f"{url} refused the WebSocket: HTTP {status}") from exc
    except InvalidHandshake as exc:
        raise ConnectionError(f"WebSocket handshake with {url} failed: {exc}") from exc
