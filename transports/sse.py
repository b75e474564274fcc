"""JSON-RPC over Server-Sent Events plus POST: the server streams, the client POSTs.

For clients that cannot open a WebSocket (ACP under `/acp/` in serve mode). sse-starlette encodes
the server's stream and httpx-sse decodes it on the client; nothing here formats SSE by hand.

Wire protocol (`{prefix}` is where `sse_routes` is mounted). Who may call is the embedding
application's middleware's decision (Junction's access guard, before the routes run); the
routes only check that each request on a connection comes from the caller that opened it:

- `GET {prefix}/events` opens a connection. The server makes an id (`secrets.token_urlsafe`),
  starts `on_connect(stream)` and answers `text/event-stream`:
  - first `event: endpoint`, `data: {prefix}/messages?connection=<id>` (a path, no `id:`);
  - then one `event: message`, `id: <n>`, `data: <JSON text>` per server->client message, with
    n = 1, 2, 3, ... per connection;
  - `event: close` (`data: end`) when the server ends the connection for good; the response
    then ends. A stream that ends without it was dropped, and the client should resume.
  - keepalive comments (`: ping ...`) every `ping_seconds`.
- `POST {prefix}/messages?connection=<id>`, body = one JSON-RPC message (or batch):
  202 with an empty body once the message is queued for the server's `receive()`, in order.
  A body over `max_message_bytes` (by Content-Length, or counted while reading when there is
  none) is dropped: `receive()` yields `Oversized(size, limit)` in its place, so the peer answers
  with a JSON-RPC error over the event stream, and the POST gets 413 with
  `{"error": ..., "size": n, "limit": l}`. Unknown or ended connection: 404.
- `DELETE {prefix}/messages?connection=<id>`: the client is done; the server's `receive()`
  returns None at once (204).
- `GET {prefix}/events?connection=<id>` with `Last-Event-ID: n` (missing = 0) resumes: the
  server replays every buffered message with id > n, then continues live. Only one GET is live
  per connection; a new one replaces the old (which ends without `close`). Each connection
  keeps the last `replay_buffer` messages sent; when message n+1 is no longer buffered (or n
  was never sent) the server answers **409** and ends the connection, because resuming would
  silently lose messages and leave JSON-RPC requests hanging. A slow reader is not a reason to
  drop: `send()` waits while the buffer is full of messages not yet written to a live GET.
- With no GET attached for `reconnect_grace_seconds`, the connection ends: `receive()` returns
  None, later POSTs get 404.

Client (`connect_sse`): resumes a dropped stream by itself with `Last-Event-ID` (a bounded number
of attempts, exponential backoff), so no message is lost. `send()` POSTs one message at a time,
in call order (concurrent POSTs could overtake each other). 413 is logged and `send()` returns
normally, because the server's JSON-RPC error answer arrives on the stream; 404 (connection gone)
and transport failures raise `ConnectionError`, 401/403 `HandshakeRefusedError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from httpx_sse import aconnect_sse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from transports.backoff import Backoff
from transports.stream import (
    DEFAULT_MAX_MESSAGE_BYTES,
    HEAD_BYTES,
    ClosesOnExit,
    Inbox,
    MessageStream,
    Oversized,
    request_id_in,
)
from transports.websocket import HandshakeRefusedError, bearer_header, same_principal

logger = logging.getLogger(__name__)

ENDPOINT_EVENT = "endpoint"
MESSAGE_EVENT = "message"
CLOSE_EVENT = "close"

_DRAIN_FACTOR = 4
"""An oversized POST body is read and thrown away up to this many times the limit, so the client
gets to read the 413 instead of a connection reset; beyond that the server stops reading."""


# -- server ---------------------------------------------------------------------------------------


def _same_caller(connection: SseServerStream, request: Request) -> bool:
    """Whether `request` comes from the caller that opened `connection`: the same `principal`
    in the ASGI state, as the server's middleware puts it there (the rest of the state, such as
    limit counters, may be new objects on every request)."""
    return same_principal(request.scope.get("state"), connection.state)


class SseServerStream:
    """The server side of one SSE connection: messages from POSTs in, events on the GET out."""

    def __init__(
        self, connection_id: str, server: _SseServer, state: Mapping[str, Any] | None = None
    ) -> None:
        self._id = connection_id
        self._server = server
        self.state: Mapping[str, Any] = dict(state or {})
        """The opening request's ASGI `state` (who the caller is, as the server's middleware
        saw it); later requests on the connection must come from the same caller."""
        self._inbox = Inbox()
        self._events: deque[tuple[int, str]] = deque()
        self._next_id = 1
        self._delivered = 0  # the highest id the live GET has taken from the buffer
        self._changed = asyncio.Event()
        self._generation = 0  # which GET is the live one
        self._attached = False
        self._grace: asyncio.TimerHandle | None = None
        self._ended = False
        self._task: asyncio.Task[None] | None = None

    @property
    def connection_id(self) -> str:
        return self._id

    @property
    def ended(self) -> bool:
        """Whether the connection is over (receive() returns None once the queue is drained)."""
        return self._ended

    @property
    def client_attached(self) -> bool:
        """Whether a GET is live now (False while the client is away, within the grace period)."""
        return self._attached

    async def receive(self) -> bytes | Oversized | None:
        return await self._inbox.get()

    async def send(self, message: bytes) -> None:
        capacity = self._server.replay_buffer
        while not self._ended and len(self._events) >= capacity:
            if self._events[0][0] <= self._delivered:
                self._events.popleft()  # already on the wire: it only served replays
                break
            await self._wait_changed()  # backpressure: never drop what was not yet sent
        if self._ended:
            raise ConnectionError(f"SSE connection {self._id} has ended")
        self._events.append((self._next_id, message.decode()))
        self._next_id += 1
        self._notify()

    async def aclose(self) -> None:
        self._end("closed by the server")

    # -- used by the routes

    def _deliver(self, item: bytes | Oversized) -> None:
        self._inbox.put_nowait(item)

    def _attach(self, last_event_id: int) -> int | None:
        """Make a new GET the live one, resuming after `last_event_id`; None if that is impossible."""
        first_buffered = self._events[0][0] if self._events else self._next_id
        if not first_buffered - 1 <= last_event_id < self._next_id:
            return None
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        self._generation += 1
        self._attached = True
        self._delivered = last_event_id
        self._notify()  # a replaced GET wakes up and ends
        return self._generation

    def _detach(self, generation: int) -> None:
        """A GET ended; if it was the live one, the grace period starts."""
        if generation != self._generation or not self._attached:
            return
        self._attached = False
        if self._grace is None:
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(self._server.grace_seconds, self._expire)

    async def _events_after(
        self, cursor: int, generation: int, endpoint: str | None
    ) -> AsyncIterator[ServerSentEvent]:
        """The SSE events for one GET: the endpoint (first GET only), messages after `cursor`,
        then `close` once the connection has ended and everything was written."""
        if endpoint is not None:
            yield ServerSentEvent(data=endpoint, event=ENDPOINT_EVENT)
        while generation == self._generation:
            if self._events and self._events[-1][0] > cursor:
                index = cursor + 1 - self._events[0][0]
                if index < 0:  # cannot happen: send() keeps what the live GET has not taken
                    logger.error("SSE connection %s lost buffered events", self._id)
                    self._end("replay buffer corrupted")
                    return
                event_id, data = self._events[index]
                cursor = self._delivered = event_id
                if len(self._events) >= self._server.replay_buffer:
                    self._notify()  # a sender may be waiting for room
                yield ServerSentEvent(data=data, event=MESSAGE_EVENT, id=str(event_id))
            elif self._ended:
                self._server.forget(self)
                yield ServerSentEvent(data="end", event=CLOSE_EVENT)
                return
            else:
                await self._wait_changed()

    def _end(self, why: str) -> None:
        if self._ended:
            return
        logger.debug("SSE connection %s ended: %s", self._id, why)
        self._ended = True
        self._inbox.put_nowait(None)
        self._notify()

    def _expire(self) -> None:
        self._grace = None
        if not self._attached:
            self._end(f"no client for {self._server.grace_seconds} s")
            self._server.forget(self)

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_changed(self) -> None:
        await self._changed.wait()


class _EventStream(EventSourceResponse):
    """An EventSourceResponse that tells the connection when its GET ends, however it ends."""

    def __init__(
        self,
        connection: SseServerStream,
        generation: int,
        content: AsyncIterator[ServerSentEvent],
        ping: float,
    ) -> None:
        super().__init__(content, ping=ping)
        self._connection = connection
        self._generation = generation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._connection._detach(self._generation)


class _SseServer:
    """The routes' shared state: live connections by id, and the settings."""

    def __init__(
        self,
        on_connect: Callable[[MessageStream], Awaitable[None]],
        *,
        max_message_bytes: int,
        replay_buffer: int,
        grace_seconds: float,
        ping_seconds: float,
    ) -> None:
        if replay_buffer < 1:
            raise ValueError("replay_buffer must be at least 1")
        self.on_connect = on_connect
        self.limit = max_message_bytes
        self.replay_buffer = replay_buffer
        self.grace_seconds = grace_seconds
        self.ping_seconds = ping_seconds
        self.connections: dict[str, SseServerStream] = {}

    def forget(self, connection: SseServerStream) -> None:
        connection._cancel_grace()
        if self.connections.get(connection.connection_id) is connection:
            del self.connections[connection.connection_id]

    def _lookup(self, request: Request) -> SseServerStream | None:
        connection = self.connections.get(request.query_params.get("connection", ""))
        return None if connection is None or connection.ended else connection

    async def events(self, request: Request) -> Response:
        if request.method == "HEAD":
            return Response(media_type="text/event-stream")
        connection_id = request.query_params.get("connection")
        endpoint: str | None = None
        if connection_id is None:
            connection = self._open(request.scope.get("state"))
            messages_path = request.url.path.removesuffix("events") + "messages"
            endpoint = f"{messages_path}?connection={connection.connection_id}"
            last_event_id = 0
        else:
            found = self.connections.get(connection_id)
            if found is None or not _same_caller(found, request):
                return _error(404, "unknown or ended connection")
            connection = found
            try:
                last_event_id = int(request.headers.get("last-event-id") or 0)
            except ValueError:
                return _error(400, "Last-Event-ID must be an integer")
        generation = connection._attach(last_event_id)
        if generation is None:
            logger.warning(
                "SSE connection %s cannot resume after event %d: no longer buffered; ending it",
                connection.connection_id,
                last_event_id,
            )
            connection._end("resumption impossible")
            self.forget(connection)
            return _error(409, f"cannot resume after event {last_event_id}")
        content = connection._events_after(last_event_id, generation, endpoint)
        return _EventStream(connection, generation, content, self.ping_seconds)

    def _open(self, state: Mapping[str, Any] | None) -> SseServerStream:
        connection = SseServerStream(secrets.token_urlsafe(16), self, state)
        self.connections[connection.connection_id] = connection
        connection._task = asyncio.create_task(self._run(connection))
        return connection

    async def _run(self, connection: SseServerStream) -> None:
        """Run the handler; when it returns (or fails) the connection ends, as a WebSocket's would."""
        try:
            await self.on_connect(connection)
        except Exception:
            logger.exception("SSE connection handler failed")
        finally:
            connection._end("handler returned")

    async def messages(self, request: Request) -> Response:
        connection = self._lookup(request)
        if connection is None or not _same_caller(connection, request):
            return _error(404, "unknown or ended connection")
        if request.method == "DELETE":
            connection._end("closed by the client")
            self.forget(connection)
            return Response(status_code=204)
        try:
            body, size, head = await self._read_body(request)
        except ClientDisconnect:
            return Response(status_code=400)
        if connection.ended:
            return _error(404, "unknown or ended connection")
        if body is None:
            logger.warning("SSE POST of %d bytes exceeds the limit of %d", size, self.limit)
            connection._deliver(Oversized(size, self.limit, request_id_in(head)))
            return JSONResponse(
                {"error": "message exceeds the limit", "size": size, "limit": self.limit},
                status_code=413,
            )
        connection._deliver(body)
        return Response(status_code=202)

    async def _read_body(self, request: Request) -> tuple[bytes | None, int, bytes]:
        """The body, its size and its first bytes; None for a body over the limit, which is read
        only to discard it (its first bytes kept, to find its id)."""
        declared: int | None = None
        with contextlib.suppress(ValueError):
            declared = int(request.headers.get("content-length", ""))
        chunks: list[bytes] | None = [] if declared is None or declared <= self.limit else None
        size = 0
        head = b""
        async for chunk in request.stream():
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            size += len(chunk)
            if chunks is not None and size > self.limit:
                chunks = None
            if chunks is not None:
                chunks.append(chunk)
            elif size > _DRAIN_FACTOR * self.limit:
                break
        if chunks is None:
            return None, max(size, declared or 0), head
        return b"".join(chunks), size, head


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def sse_routes(
    prefix: str,
    on_connect: Callable[[MessageStream], Awaitable[None]],
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    replay_buffer: int = 1024,
    reconnect_grace_seconds: float = 30.0,
    ping_seconds: float = 15.0,
) -> list[BaseRoute]:
    """`GET|DELETE`/`POST` routes under `prefix` (e.g. "/acp"; "" inside a `Mount`) serving
    `on_connect(stream)` once per connection. See the module docstring for the protocol."""
    server = _SseServer(
        on_connect,
        max_message_bytes=max_message_bytes,
        replay_buffer=replay_buffer,
        grace_seconds=reconnect_grace_seconds,
        ping_seconds=ping_seconds,
    )
    prefix = prefix.rstrip("/")
    return [
        Route(f"{prefix}/events", server.events, methods=["GET"]),
        Route(f"{prefix}/messages", server.messages, methods=["POST", "DELETE"]),
    ]


# -- client ---------------------------------------------------------------------------------------

_Outcome = Literal["ended", "dropped"]

_MAX_RESUME_DELAY = 5.0
"""The longest wait between two resumption attempts, in seconds."""


class SseClientStream(ClosesOnExit):
    """The client side: reads the event stream in a task, POSTs what it sends.

    Usable as an async context manager. Use `connect_sse` to make one.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        http: httpx.AsyncClient | None,
        max_reconnect_attempts: int,
        reconnect_backoff: float,
        read_timeout: float | None,
        inbox_size: int = 1024,
    ) -> None:
        self._events_url = base_url.rstrip("/") + "/events"
        self._auth = bearer_header(token)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=30.0)
        self._backoff = Backoff(reconnect_backoff, _MAX_RESUME_DELAY, max_reconnect_attempts)
        self._stream_timeout = httpx.Timeout(30.0, read=read_timeout)
        self._inbox = Inbox(inbox_size)
        self._send_lock = asyncio.Lock()
        self._endpoint: str | None = None
        self._connection_id: str | None = None
        self._last_event_id = 0
        self._server_gone = False
        self._closing = False
        self._reader: asyncio.Task[None] | None = None

    @property
    def connection_id(self) -> str | None:
        return self._connection_id

    @property
    def last_event_id(self) -> int:
        """The id of the last message received: what a resumption asks to continue after."""
        return self._last_event_id

    async def _start(self, open_timeout: float) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._run(ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), open_timeout)
        except BaseException:
            await self.aclose()
            raise

    async def receive(self) -> bytes | Oversized | None:
        return await self._inbox.get()

    async def send(self, message: bytes) -> None:
        if self._closing or self._server_gone or self._endpoint is None:
            raise ConnectionError("SSE connection is closed")
        headers = {**self._auth, "Content-Type": "application/json"}
        async with self._send_lock:
            try:
                response = await self._http.post(self._endpoint, content=message, headers=headers)
            except httpx.HTTPError as exc:
                raise ConnectionError(f"POST to {self._endpoint} failed: {exc!r}") from exc
        status = response.status_code
        if response.is_success:
            return
        if status == 413:
            # The server already answers with a JSON-RPC error on the stream; nothing to raise.
            logger.warning("SSE server refused a message of %d bytes as too large", len(message))
            return
        if status in (401, 403):
            raise HandshakeRefusedError(status, f"SSE server refused the message: HTTP {status}")
        if status == 404:
            raise ConnectionError("SSE connection no longer exists on the server")
        raise ConnectionError(f"SSE server answered HTTP {status} to a message")

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._inbox.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._endpoint is not None and not self._server_gone:
            with contextlib.suppress(httpx.HTTPError):
                await self._http.delete(self._endpoint, headers=self._auth, timeout=2.0)
        if self._owns_http:
            await self._http.aclose()

    async def _run(self, ready: asyncio.Future[None]) -> None:
        """Keep the event stream open, resuming after drops, until the server ends it."""
        try:
            while True:
                try:
                    outcome = await self._listen(ready)
                except (httpx.HTTPError, httpx.StreamError) as exc:
                    if not ready.done():
                        ready.set_exception(
                            ConnectionError(f"cannot open {self._events_url}: {exc!r}")
                        )
                        return
                    logger.info("SSE stream dropped (%r); resuming", exc)
                    outcome = "dropped"
                if not ready.done():
                    ready.set_exception(
                        ConnectionError(f"{self._events_url} ended before the endpoint event")
                    )
                    return
                if outcome == "ended":
                    break
                if not await self._backoff.sleep():
                    logger.warning(
                        "SSE stream lost: %d resumption attempts failed", self._backoff.used
                    )
                    break
        except Exception as exc:
            logger.exception("SSE reader failed")
            if not ready.done():
                ready.set_exception(exc)
                return
        self._server_gone = True
        await self._inbox.put(None)

    async def _listen(self, ready: asyncio.Future[None]) -> _Outcome:
        """One GET of the event stream, from open to end."""
        headers = dict(self._auth)
        params: dict[str, str] = {}
        if self._connection_id is not None:
            params["connection"] = self._connection_id
            headers["Last-Event-ID"] = str(self._last_event_id)
        async with aconnect_sse(
            self._http,
            "GET",
            self._events_url,
            params=params,
            headers=headers,
            timeout=self._stream_timeout,
        ) as source:
            status = source.response.status_code
            if status != 200:
                if not ready.done():
                    message = f"{self._events_url} answered HTTP {status}"
                    error: Exception = (
                        HandshakeRefusedError(status, message)
                        if status in (401, 403)
                        else ConnectionError(message)
                    )
                    ready.set_exception(error)
                    return "ended"
                if status >= 500:
                    return "dropped"
                logger.warning("SSE connection cannot be resumed: HTTP %d", status)
                return "ended"
            self._backoff.reset()
            async for event in source.aiter_sse():
                if event.event == MESSAGE_EVENT:
                    event_id = int(event.id) if event.id.isdigit() else None
                    if event_id is not None:
                        if event_id <= self._last_event_id:
                            continue  # already have it
                        self._last_event_id = event_id
                    await self._inbox.put(event.data.encode())
                elif event.event == ENDPOINT_EVENT and not ready.done():
                    self._endpoint = urljoin(self._events_url, event.data)
                    query = parse_qs(urlsplit(self._endpoint).query)
                    self._connection_id = query.get("connection", [""])[0] or None
                    ready.set_result(None)
                elif event.event == CLOSE_EVENT:
                    return "ended"
        return "dropped"


async def connect_sse(
    base_url: str,
    *,
    token: str | None = None,
    http: httpx.AsyncClient | None = None,
    max_reconnect_attempts: int = 5,
    reconnect_backoff: float = 0.1,
    read_timeout: float | None = 60.0,
    open_timeout: float = 10.0,
) -> SseClientStream:
    """Open `GET {base_url}/events`, wait for the endpoint event, and return the message stream.

    `read_timeout` must exceed the server's ping interval: a stream silent for longer is taken
    as dropped and resumed. Pass `http` to share a client (it is not closed by `aclose`).
    Raises `HandshakeRefusedError` on 401/403 and `ConnectionError` when the server cannot be
    reached or does not speak this protocol.
    """
    stream = SseClientStream(
        base_url,
        token=token,
        http=http,
        max_reconnect_attempts=max_reconnect_attempts,
        reconnect_backoff=reconnect_backoff,
        read_timeout=read_timeout,
    )
    await stream._start(open_timeout)
    return stream
