"""Real servers on loopback for the transport tests: uvicorn in-process, and connected stream pairs over
WebSocket."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp

from transports.stream import DEFAULT_MAX_MESSAGE_BYTES, MessageStream
from transports.websocket import WebSocketClientStream, connect_websocket, websocket_route

UVICORN_WS_MAX_SIZE = 16 * 1024 * 1024
"""uvicorn's own default, used when a test does not say."""


def loopback_socket() -> socket.socket:
    """A listening-ready TCP socket on a free loopback port (bind first, serve later: for peers
    that must know each other's URL before either starts)."""
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on accepted sockets when the listening
    # socket names its protocol, and without it every response waits ~40 ms on delayed ACKs.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serve_app(
    app: ASGIApp, *, ws_max_size: int = UVICORN_WS_MAX_SIZE, sock: socket.socket | None = None
) -> AsyncIterator[str]:
    """Run `app` under uvicorn (WebSockets by the `websockets` library, as in serve mode) on a free
    loopback port (or `sock`); yields the base URL, e.g. "http://127.0.0.1:41234"."""
    sock = sock or loopback_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        ws_max_size=ws_max_size,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


class Accepted:
    """An `on_connect` for tests: hands each server-side stream over, and keeps its connection
    open (the handler not returning) until `release()`."""

    def __init__(self) -> None:
        self._streams: asyncio.Queue[MessageStream] = asyncio.Queue()
        self._release = asyncio.Event()

    async def on_connect(self, stream: MessageStream) -> None:
        await self._streams.put(stream)
        await self._release.wait()

    async def next(self, timeout: float = 5) -> MessageStream:
        return await asyncio.wait_for(self._streams.get(), timeout)

    def release(self) -> None:
        self._release.set()


def ws_url(base_url: str, path: str) -> str:
    return "ws" + base_url.removeprefix("http") + path


@asynccontextmanager
async def websocket_pair(
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ws_max_size: int | None = None,
    **client_options: Any,
) -> AsyncIterator[tuple[MessageStream, WebSocketClientStream]]:
    """A connected (server stream, client stream) over a real WebSocket.

    uvicorn's `ws_max_size` defaults to the route's limit, as serve mode would set it.
    """
    accepted = Accepted()
    route = websocket_route("/acp", accepted.on_connect, max_message_bytes=max_message_bytes)
    app = Starlette(routes=[route])
    async with serve_app(app, ws_max_size=ws_max_size or max_message_bytes) as base_url:
        client = await connect_websocket(ws_url(base_url, "/acp"), **client_options)
        try:
            server = await accepted.next()
            try:
                yield server, client
            finally:
                await server.aclose()
        finally:
            await client.aclose()
            accepted.release()
