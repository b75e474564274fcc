"""The WebSocket and SSE framings themselves, over real sockets to an in-process uvicorn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import connect as raw_ws_connect

from tests.transports.servers import (
    Accepted,
    serve_app,
    sse_pair,
    tcp_proxy,
    websocket_pair,
    ws_url,
)
from transports.sse import SseClientStream, SseServerStream, connect_sse, sse_routes
from transports.stream import MessageStream, Oversized
from transports.websocket import (
    WebSocketServerStream,
    connect_websocket,
    websocket_route,
)

LIMIT = 64 * 1024


def message(n: int, **extra: Any) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "method": "note", "params": {"n": n, **extra}})


async def receive(stream: MessageStream, timeout: float = 5) -> bytes | Oversized | None:
    return await asyncio.wait_for(stream.receive(), timeout)


async def eventually(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    assert condition()


async def exchange_both_ways(server: MessageStream, client: MessageStream, count: int) -> None:
    """Send `count` messages each way at once; each side must get the other's in order."""
    unicode = message(-1, text="ünïcødé ✓ 😀").decode()
    multiline = b'{\n  "jsonrpc": "2.0",\r\n  "method": "pretty"\n}'

    async def pump(stream: MessageStream, tag: str) -> None:
        for n in range(count):
            await stream.send(message(n, sender=tag))
        await stream.send(unicode.encode())
        await stream.send(multiline)

    async def drain(stream: MessageStream, tag: str) -> list[bytes]:
        got = []
        for _ in range(count + 2):
            item = await receive(stream)
            assert isinstance(item, bytes)
            got.append(item)
        return got

    *_, from_client, from_server = await asyncio.gather(
        pump(client, "c"), pump(server, "s"), drain(server, "c"), drain(client, "s")
    )
    for got, sender in ((from_client, "c"), (from_server, "s")):
        assert got[:count] == [message(n, sender=sender) for n in range(count)]
        assert got[count] == unicode.encode()
        # SSE splits data on line breaks and joins with "\n"; JSON does not care which.
        assert orjson.loads(got[count + 1]) == {"jsonrpc": "2.0", "method": "pretty"}


# -- WebSocket -----------------------------------------------------------------------------------


@asynccontextmanager
async def ws_server(
    on_connect: Callable[[MessageStream], Awaitable[None]],
    *,
    max_message_bytes: int = LIMIT,
    ws_max_size: int = LIMIT,
) -> AsyncIterator[str]:
    route = websocket_route("/ws", on_connect, max_message_bytes=max_message_bytes)
    async with serve_app(Starlette(routes=[route]), ws_max_size=ws_max_size) as base_url:
        yield ws_url(base_url, "/ws")


async def test_ws_messages_flow_both_ways_in_order() -> None:
    async with websocket_pair(max_message_bytes=LIMIT) as (server, client):
        await exchange_both_ways(server, client, 200)


async def test_ws_frame_over_uvicorn_limit_ends_both_streams_with_1009() -> None:
    async with websocket_pair(max_message_bytes=LIMIT) as (server, client):
        await client.send(message(1, blob="y" * (2 * LIMIT)))
        assert await receive(server) is None
        assert await receive(client) is None
        assert client.close_code == 1009
        assert isinstance(server, WebSocketServerStream)
        # uvicorn's (legacy websockets) protocol reports what the client echoed: usually nothing
        # arrives before the TCP close, hence 1006 (abnormal) rather than the 1009 it sent.
        assert server.close_code in (1006, 1009)
        assert await receive(server) is None  # stays ended
        with pytest.raises(ConnectionError):
            await client.send(b"{}")
        with pytest.raises(ConnectionError):
            await server.send(b"{}")


async def test_ws_route_limit_below_uvicorn_limit_is_enforced_too() -> None:
    accepted = Accepted()
    async with ws_server(accepted.on_connect, max_message_bytes=1000, ws_max_size=LIMIT) as url:
        async with await connect_websocket(url) as client:
            server = await accepted.next()
            exactly = b'"' + b"x" * 998 + b'"'
            await client.send(exactly)
            assert await receive(server) == exactly
            await client.send(b'"' + b"x" * 999 + b'"')
            assert await receive(server) is None
            assert await receive(client) is None
            assert client.close_code == 1009
        accepted.release()


async def test_ws_server_close_ends_client_receive() -> None:
    async with websocket_pair(max_message_bytes=LIMIT) as (server, client):
        await server.send(b'{"last":true}')
        await server.aclose()
        assert await receive(client) == b'{"last":true}'
        assert await receive(client) is None
        assert client.close_code == 1000
        with pytest.raises(ConnectionError):
            await client.send(b"{}")


async def test_ws_client_close_ends_server_receive_at_once() -> None:
    async with websocket_pair(max_message_bytes=LIMIT) as (server, client):
        await client.send(b'{"bye":1}')
        await client.aclose()
        assert await receive(server) == b'{"bye":1}'
        started = time.monotonic()
        assert await receive(server) is None
        assert time.monotonic() - started < 1
        with pytest.raises(ConnectionError):
            await server.send(b"{}")


async def test_ws_handler_return_closes_1000_and_failure_closes_1011() -> None:
    async def answer_once(stream: MessageStream) -> None:
        item = await stream.receive()
        assert isinstance(item, bytes)
        if item == b'"fail"':
            raise RuntimeError("handler bug")
        await stream.send(item)

    async with ws_server(answer_once) as url:
        async with await connect_websocket(url) as client:
            await client.send(b'"ok"')
            assert await receive(client) == b'"ok"'
            assert await receive(client) is None
            assert client.close_code == 1000
        async with await connect_websocket(url) as client:
            await client.send(b'"fail"')
            assert await receive(client) is None
            assert client.close_code == 1011


async def test_ws_binary_frames_are_taken_as_utf8_json() -> None:
    accepted = Accepted()
    async with ws_server(accepted.on_connect) as url:
        async with raw_ws_connect(url) as raw:
            server = await accepted.next()
            await raw.send('{"t":"ü"}'.encode(), text=False)
            assert await receive(server) == '{"t":"ü"}'.encode()
            await raw.send('{"text":1}')
            assert await receive(server) == b'{"text":1}'
            # Our side never puts invalid UTF-8 in a text frame (that would be a 1007 close).
            await server.send(b"\xff\xfe")
            assert await asyncio.wait_for(raw.recv(), 5) == b"\xff\xfe"
            await server.send(b'{"a":"\xc3\xbc"}')
            assert await asyncio.wait_for(raw.recv(), 5) == '{"a":"ü"}'
        accepted.release()


async def test_ws_keepalive_pings_are_answered() -> None:
    async with websocket_pair(max_message_bytes=LIMIT, ping_interval=0.05, ping_timeout=1) as (
        server,
        client,
    ):
        await eventually(lambda: client.latency > 0)  # a pong came back
        await client.send(b"[1]")
        assert await receive(server) == b"[1]"


# -- SSE: helpers ----------------------------------------------------------------------------------


class RecordRequests:
    """ASGI middleware noting each HTTP request's method, path, query and Last-Event-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str, str | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            last = headers.get(b"last-event-id")
            self.seen.append(
                (
                    scope["method"],
                    scope["path"],
                    scope["query_string"].decode(),
                    None if last is None else last.decode(),
                )
            )
        await self.app(scope, receive, send)


class SseServer:
    def __init__(self, base_url: str, accepted: Accepted, recorder: RecordRequests) -> None:
        self.base_url = base_url
        self.acp = f"{base_url}/acp"
        self.accepted = accepted
        self.recorder = recorder


@asynccontextmanager
async def sse_server(
    *,
    replay_buffer: int = 1024,
    grace: float = 5.0,
    ping_seconds: float = 15.0,
    on_connect: Callable[[MessageStream], Awaitable[None]] | None = None,
) -> AsyncIterator[SseServer]:
    accepted = Accepted()
    routes = sse_routes(
        "/acp",
        on_connect or accepted.on_connect,
        max_message_bytes=LIMIT,
        replay_buffer=replay_buffer,
        reconnect_grace_seconds=grace,
        ping_seconds=ping_seconds,
    )
    recorder = RecordRequests(Starlette(routes=routes))
    async with serve_app(recorder) as base_url:
        try:
            yield SseServer(base_url, accepted, recorder)
        finally:
            accepted.release()


class RawSse:
    """One GET of the event stream, read event by event with httpx-sse."""

    def __init__(self, http: httpx.AsyncClient, url: str, **options: Any) -> None:
        self._cm = aconnect_sse(http, "GET", url, timeout=httpx.Timeout(5.0), **options)
        self.status = 0
        self._events: AsyncIterator[ServerSentEvent] | None = None

    async def __aenter__(self) -> RawSse:
        source = await self._cm.__aenter__()
        self.response = source.response
        self.status = source.response.status_code
        if self.status == 200:
            self._events = source.aiter_sse()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._cm.__aexit__(None, None, None)

    async def next(self, timeout: float = 5) -> ServerSentEvent | None:
        assert self._events is not None
        try:
            return await asyncio.wait_for(anext(self._events), timeout)
        except StopAsyncIteration:
            return None


# -- SSE -----------------------------------------------------------------------------------------


async def test_sse_messages_flow_both_ways_in_order() -> None:
    async with sse_pair(max_message_bytes=LIMIT) as (server, client):
        await exchange_both_ways(server, client, 200)


async def test_sse_endpoint_event_names_the_post_path_even_inside_a_mount() -> None:
    accepted = Accepted()
    app = Starlette(routes=[Mount("/acp", routes=sse_routes("", accepted.on_connect))])
    async with serve_app(app) as base_url, httpx.AsyncClient() as http:
        async with RawSse(http, f"{base_url}/acp/events") as raw:
            assert raw.status == 200
            assert raw.response.headers["content-type"].startswith("text/event-stream")
            endpoint = await raw.next()
            assert endpoint is not None and endpoint.event == "endpoint"
            assert endpoint.data.startswith("/acp/messages?connection=")
            server = await accepted.next()
            posted = await http.post(f"{base_url}{endpoint.data}", content=b'{"x":1}')
            assert posted.status_code == 202 and posted.content == b""
            assert await receive(server) == b'{"x":1}'
            await server.send(b'{"y":2}')
            event = await raw.next()
            assert event is not None
            assert (event.event, event.id, event.data) == ("message", "1", '{"y":2}')
            await server.aclose()
            closing = await raw.next()
            assert closing is not None and closing.event == "close"
            assert await raw.next() is None  # and the response ends
        accepted.release()


async def test_sse_oversized_post_gives_oversized_and_the_connection_keeps_working() -> None:
    async with sse_server() as srv, httpx.AsyncClient() as http:
        async with await connect_sse(srv.acp) as client:
            server = await srv.accepted.next()
            big = message(1, blob="y" * (2 * LIMIT))
            await client.send(big)  # 413 is not an error for the sender: the peer answers
            assert await receive(server) == Oversized(len(big), LIMIT)
            exactly = b'"' + b"x" * (LIMIT - 2) + b'"'
            await client.send(exactly)
            assert await receive(server) == exactly

            # Without Content-Length (chunked), the size is counted while reading.
            url = f"{srv.acp}/messages?connection={client.connection_id}"

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(3):
                    yield b"z" * LIMIT

            response = await http.post(url, content=chunks())
            assert "content-length" not in response.request.headers
            assert response.status_code == 413
            assert response.json() == {
                "error": "message exceeds the limit",
                "size": 3 * LIMIT,
                "limit": LIMIT,
            }
            assert await receive(server) == Oversized(3 * LIMIT, LIMIT)

            await client.send(b'{"after":1}')
            assert await receive(server) == b'{"after":1}'
            await server.send(b'{"still":"up"}')
            assert await receive(client) == b'{"still":"up"}'


async def test_sse_post_to_unknown_connection_is_404() -> None:
    async with sse_server() as srv, httpx.AsyncClient() as http:
        response = await http.post(f"{srv.acp}/messages?connection=nope", content=b"{}")
        assert response.status_code == 404
        response = await http.post(f"{srv.acp}/messages", content=b"{}")
        assert response.status_code == 404
        response = await http.get(f"{srv.acp}/events?connection=nope")
        assert response.status_code == 404


async def test_sse_resume_with_last_event_id_replays_exactly_the_missed_events() -> None:
    async with sse_server() as srv, httpx.AsyncClient() as http:
        async with RawSse(http, f"{srv.acp}/events") as first:
            endpoint = await first.next()
            assert endpoint is not None
            connection = endpoint.data.partition("connection=")[2]
            server = await srv.accepted.next()
            for n in range(1, 6):
                await server.send(message(n))
            for n in (1, 2):
                event = await first.next()
                assert event is not None and (event.id, event.data) == (str(n), message(n).decode())
        # the first GET is gone after reading two of five events
        async with RawSse(
            http,
            f"{srv.acp}/events?connection={connection}",
            headers={"Last-Event-ID": "2"},
        ) as second:
            assert second.status == 200
            got = [await second.next() for _ in range(3)]
            assert [(e.id, e.data) for e in got if e] == [
                (str(n), message(n).decode()) for n in (3, 4, 5)
            ]
            await server.send(message(6))
            live = await second.next()
            assert live is not None and live.id == "6"
            with pytest.raises(TimeoutError):
                await second.next(timeout=0.2)  # nothing more, no duplicates


async def test_sse_resume_from_an_event_no_longer_buffered_is_409_and_ends() -> None:
    async with sse_server(replay_buffer=2) as srv, httpx.AsyncClient() as http:
        async with RawSse(http, f"{srv.acp}/events") as first:
            endpoint = await first.next()
            assert endpoint is not None
            connection = endpoint.data.partition("connection=")[2]
            server = await srv.accepted.next()
            sending = asyncio.gather(*(server.send(message(n)) for n in range(1, 6)))
            ids = [getattr(await first.next(), "id", None) for _ in range(5)]
            await sending
            assert ids == ["1", "2", "3", "4", "5"]
        for last, expected in (("1", 409), ("9", 404)):  # the first 409 ended the connection
            response = await http.get(
                f"{srv.acp}/events?connection={connection}", headers={"Last-Event-ID": last}
            )
            assert response.status_code == expected
        assert await receive(server) is None


async def test_sse_send_waits_instead_of_dropping_when_nothing_reads() -> None:
    async with sse_server(replay_buffer=2) as srv, httpx.AsyncClient() as http:
        async with RawSse(http, f"{srv.acp}/events") as first:
            endpoint = await first.next()
            assert endpoint is not None
            connection = endpoint.data.partition("connection=")[2]
            server = await srv.accepted.next()
        assert isinstance(server, SseServerStream)
        await eventually(lambda: not server.client_attached)  # the server saw the GET go
        await server.send(message(1))
        await server.send(message(2))
        third = asyncio.create_task(server.send(message(3)))
        await asyncio.sleep(0.1)
        assert not third.done()  # the buffer is full of undelivered events
        async with RawSse(
            http, f"{srv.acp}/events?connection={connection}", headers={"Last-Event-ID": "0"}
        ) as second:
            got = [await second.next() for _ in range(3)]
            await asyncio.wait_for(third, 5)
            assert [e.id for e in got if e] == ["1", "2", "3"]


async def test_sse_new_get_replaces_the_live_one() -> None:
    async with sse_server() as srv, httpx.AsyncClient() as http:
        async with RawSse(http, f"{srv.acp}/events") as first:
            endpoint = await first.next()
            assert endpoint is not None
            connection = endpoint.data.partition("connection=")[2]
            server = await srv.accepted.next()
            async with RawSse(
                http, f"{srv.acp}/events?connection={connection}", headers={"Last-Event-ID": "0"}
            ) as second:
                assert await first.next() is None  # ended, without a close event
                await server.send(b"[1]")
                event = await second.next()
                assert event is not None and (event.id, event.data) == ("1", "[1]")


async def test_sse_client_resumes_after_a_dropped_connection_without_loss() -> None:
    async with sse_server() as srv:
        port = int(srv.base_url.rsplit(":", 1)[1])
        async with tcp_proxy(port) as proxy:
            async with await connect_sse(
                f"http://127.0.0.1:{proxy.port}/acp", reconnect_backoff=0.02
            ) as client:
                server = await srv.accepted.next()
                for n in range(1, 4):
                    await server.send(message(n))
                assert [await receive(client) for _ in range(3)] == [message(n) for n in (1, 2, 3)]
                proxy.drop()
                for n in range(4, 7):
                    await server.send(message(n))  # into the cut stream, or the buffer
                assert [await receive(client) for _ in range(3)] == [message(n) for n in (4, 5, 6)]
                await server.send(message(7))
                assert await receive(client) == message(7)  # no duplicates before it
                await client.send(b'{"up":true}')
                assert await receive(server) == b'{"up":true}'
                resumes = [
                    seen
                    for seen in srv.recorder.seen
                    if seen[0] == "GET" and "connection=" in seen[2]
                ]
                assert resumes and resumes[0][3] == "3"
                assert client.last_event_id == 7


async def test_sse_server_close_ends_client_receive() -> None:
    async with sse_pair(max_message_bytes=LIMIT) as (server, client):
        await server.send(b'{"last":true}')
        await server.aclose()
        assert await receive(client) == b'{"last":true}'
        assert await receive(client) is None
        assert await receive(client) is None
        with pytest.raises(ConnectionError):
            await client.send(b"{}")
        with pytest.raises(ConnectionError):
            await server.send(b"{}")


async def test_sse_handler_return_ends_the_connection() -> None:
    async def answer_once(stream: MessageStream) -> None:
        item = await stream.receive()
        assert isinstance(item, bytes)
        await stream.send(item)

    async with sse_server(on_connect=answer_once) as srv:
        async with await connect_sse(srv.acp) as client:
            await client.send(b'"ping"')
            assert await receive(client) == b'"ping"'
            assert await receive(client) is None


async def test_sse_client_close_ends_server_receive_at_once() -> None:
    async with sse_server(grace=30) as srv:
        client = await connect_sse(srv.acp)
        server = await srv.accepted.next()
        await client.send(b'{"bye":1}')
        await client.aclose()
        assert await receive(server) == b'{"bye":1}'
        started = time.monotonic()
        assert await receive(server) is None
        assert time.monotonic() - started < 1
        assert await receive(client) is None
        with pytest.raises(ConnectionError):
            await client.send(b"{}")


async def test_sse_vanished_client_ends_server_receive_after_the_grace_period() -> None:
    grace = 0.3
    async with sse_server(grace=grace) as srv, httpx.AsyncClient() as http:
        async with RawSse(http, f"{srv.acp}/events") as raw:
            endpoint = await raw.next()
            assert endpoint is not None
            server = await srv.accepted.next()
        gone_at = time.monotonic()  # the GET is closed without a DELETE
        assert await receive(server) is None
        assert time.monotonic() - gone_at >= grace * 0.8
        response = await http.post(f"{srv.base_url}{endpoint.data}", content=b"{}")
        assert response.status_code == 404
        with pytest.raises(ConnectionError):
            await server.send(b"{}")


async def test_sse_client_gives_up_when_the_server_is_gone() -> None:
    accepted = Accepted()
    app = Starlette(routes=sse_routes("/acp", accepted.on_connect, reconnect_grace_seconds=5))
    async with serve_app(app) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        proxy_cm = tcp_proxy(port)
        proxy = await proxy_cm.__aenter__()
        client = await connect_sse(
            f"http://127.0.0.1:{proxy.port}/acp", max_reconnect_attempts=3, reconnect_backoff=0.01
        )
        server = await accepted.next()
        await server.send(b"[1]")
        assert await receive(client) == b"[1]"
        await proxy_cm.__aexit__(None, None, None)  # nothing listens on that port any more
        assert await receive(client) is None
        await client.aclose()
        accepted.release()


async def test_sse_ping_comments_keep_the_stream_alive() -> None:
    async with sse_server(ping_seconds=0.05) as srv, httpx.AsyncClient() as http:
        async with http.stream("GET", f"{srv.acp}/events", timeout=5) as response:
            lines = response.aiter_lines()
            seen: list[str] = []
            async with asyncio.timeout(5):
                while not any(line.startswith(": ping") for line in seen):
                    seen.append(await anext(lines))
            assert seen[0] == "event: endpoint"


def test_sse_replay_buffer_must_hold_something() -> None:
    async def nothing(stream: MessageStream) -> None:
        return None

    with pytest.raises(ValueError, match="replay_buffer"):
        sse_routes("/acp", nothing, replay_buffer=0)


# Typing anchors: the concrete classes are MessageStreams.
_streams: tuple[type[MessageStream], ...] = (
    SseClientStream,
    SseServerStream,
    WebSocketServerStream,
)
