"""The WebSocket framing itself, over real sockets to an in-process uvicorn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect as raw_ws_connect

from tests.transports.servers import (
    Accepted,
    serve_app,
    websocket_pair,
    ws_url,
)
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


# Typing anchor: the concrete class is a MessageStream.
_streams: tuple[type[MessageStream], ...] = (WebSocketServerStream,)
