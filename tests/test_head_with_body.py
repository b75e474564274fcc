"""Serve mode writes a whole answer's head and body at once (`junction.http.head_with_body`),
and never holds a head back from a stream that has nothing to send yet."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
import websockets
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from junction.http.head_with_body import HeadHeldTransport, head_held


class _Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_a_head_goes_out_with_the_body_that_follows_it() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        real = _Recording()
        held = HeadHeldTransport(real, loop)
        held.write(HEAD)
        assert real.writes == []
        held.write(b"ok")
        assert real.writes == [HEAD + b"ok"]
        # A body write with no head before it is not held.
        held.write(b"more")
        assert real.writes[-1] == b"more"
        # A large body follows its head in order, without being copied behind it.
        big = b"x" * (1 << 20)
        held.write(HEAD)
        held.write(big)
        assert real.writes[-2:] == [HEAD, big]
        await asyncio.sleep(0)  # the release scheduled for each head finds nothing held
        assert len(real.writes) == 4

    asyncio.run(main())


def test_a_head_alone_goes_out_at_the_end_of_the_turn_or_on_close() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        real = _Recording()
        held = HeadHeldTransport(real, loop)
        held.write(HEAD)
        assert real.writes == []
        await asyncio.sleep(0)
        assert real.writes == [HEAD]
        held.write(HEAD)
        held.close()
        assert real.writes == [HEAD, HEAD] and real.closed
        other = _Recording()
        dropped = HeadHeldTransport(other, loop)
        dropped.write(HEAD)
        dropped.abort()
        await asyncio.sleep(0)
        assert other.writes == [] and other.aborted

    asyncio.run(main())


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "echo " + message["text"]})
        await send({"type": "websocket.close"})
        return
    await receive()
    if scope["path"] == "/stream":
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await asyncio.sleep(2)  # nothing to send yet: the head must not wait for this
        await send({"type": "http.response.body", "body": b"data: late\n\n"})
        return
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"whole"})


def test_through_a_real_server_streams_keep_alive_and_upgrades_work() -> None:
    async def main() -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        config = uvicorn.Config(
            _app, http=head_held(AutoHTTPProtocol), log_config=None, lifespan="on"
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(2):  # two answers on one keep-alive connection
                writer.write(b"GET /whole HTTP/1.1\r\nhost: t\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                assert head.startswith(b"HTTP/1.1 200")
                assert await asyncio.wait_for(reader.readexactly(5), 5) == b"whole"
            writer.write(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
            # The stream's head arrives while its first event is still 2 s away.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1)
            assert b"text/event-stream" in head
            writer.close()
            uri = f"ws://127.0.0.1:{port}/ws"
            async with websockets.connect(uri) as ws:
                await ws.send("hi")
                assert await asyncio.wait_for(ws.recv(), 5) == "echo hi"
        finally:
            server.should_exit = True
            await serving

    asyncio.run(main())
