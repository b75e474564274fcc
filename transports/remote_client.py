"""The client of ACP's remote transport over WebSocket, durable profile (`remote.py`): one
physical socket at a time, with what it takes to resume the logical connection on a new one.

`connect_remote(url, ...)` offers the subprotocol `RESUMABLE_SUBPROTOCOL`. A server that takes it
numbers its messages; `receive()` hands them over without the cursor member and remembers the
last cursor, so `connect_remote(url, resume=(connection_id, cursor))` can ask a new socket to
continue the same connection after it (`resumed` tells whether the server agreed; when it did
not, the socket serves a new connection). A server that does not take the subprotocol (an older
Junction, or any server of the SDK's plain profile) gives a plain JSON-RPC socket:
`resumable` is False and a lost socket is a lost connection.
"""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from transports.remote import (
    CONNECTION_ID_HEADER,
    RESUMABLE_SUBPROTOCOL,
    RESUME,
    RESUME_FAILED,
    RESUMED,
    strip_cursor,
)
from transports.stream import DEFAULT_MAX_MESSAGE_BYTES, ClosesOnExit, Oversized
from transports.websocket import CLOSE_NORMAL, open_websocket

RESUME_TIMEOUT = 10.0
"""How long a resumption waits for the server's `stream/resumed` or `stream/resume_failed`."""


class RemoteClientStream(ClosesOnExit):
    """One socket of a (possibly) durable remote ACP connection, as a `MessageStream`."""

    def __init__(self, connection: ClientConnection) -> None:
        self._ws = connection
        self.resumable = connection.subprotocol == RESUMABLE_SUBPROTOCOL
        response = connection.response
        self.connection_id = response.headers.get(CONNECTION_ID_HEADER) if response else None
        self.cursor = 0
        """The cursor of the last message received: what a resumption continues after."""
        self.resumed = False
        self.refusal: str | None = None
        """Why the server would not resume (None when it did, or nobody asked)."""

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    async def receive(self) -> bytes | Oversized | None:
        try:
            raw = await self._ws.recv(decode=False)
        except ConnectionClosed:
            return None
        if not self.resumable:
            return raw
        message, cursor = strip_cursor(raw)
        if cursor is not None and cursor.isdigit():
            self.cursor = int(cursor)
        return message

    async def send(self, message: bytes) -> None:
        try:
            await self._ws.send(message, text=True)
        except ConnectionClosed as exc:
            raise ConnectionError(f"websocket is closed ({exc})") from exc

    async def aclose(self) -> None:
        await self._ws.close(CLOSE_NORMAL)

    async def _resume(self, connection_id: str, cursor: int) -> None:
        """Ask the server to continue `connection_id` after `cursor` on this socket."""
        params = {"connectionId": connection_id, "cursor": str(cursor)}
        await self.send(orjson.dumps({"jsonrpc": "2.0", "method": RESUME, "params": params}))
        try:
            reply = orjson.loads(
                await asyncio.wait_for(self._ws.recv(decode=False), RESUME_TIMEOUT)
            )
        except ConnectionClosed as exc:
            raise ConnectionError(f"the server closed the socket while resuming ({exc})") from exc
        except orjson.JSONDecodeError as exc:
            raise ConnectionError("the server answered stream/resume with garbage") from exc
        method = reply.get("method") if isinstance(reply, dict) else None
        if method == RESUMED:
            self.connection_id, self.cursor, self.resumed = connection_id, cursor, True
        elif method == RESUME_FAILED:
            reason = (reply.get("params") or {}).get("reason")
            self.refusal = str(reason or "refused")
        else:
            raise ConnectionError(f"the server answered stream/resume with {reply!r}")


async def connect_remote(
    url: str,
    *,
    token: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    resume: tuple[str, int] | None = None,
    ping_interval: float | None = 20,
    ping_timeout: float | None = 20,
    open_timeout: float | None = 10,
) -> RemoteClientStream:
    """Open a socket to `url` (ws:// or wss://), resuming `resume` = (connection id, cursor) on
    a server that can. Raises `HandshakeRefusedError` for a refused handshake (401/403/...),
    `ConnectionError`/`OSError`/`TimeoutError` when the server cannot be reached."""
    connection = await open_websocket(
        url,
        token=token,
        subprotocols=(RESUMABLE_SUBPROTOCOL,),
        max_message_bytes=max_message_bytes,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        open_timeout=open_timeout,
    )
    stream = RemoteClientStream(connection)
    if resume is not None and stream.resumable:
        try:
            await stream._resume(*resume)
        except BaseException:
            await connection.close()
            raise
    return stream


__all__ = ["RESUME_TIMEOUT", "RemoteClientStream", "connect_remote"]
