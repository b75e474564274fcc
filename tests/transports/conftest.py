"""Connected pairs of message streams over real pipes and sockets, one per framing."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest

from transports import MessageStream, NdjsonStream, Oversized, open_pipe_stream

FRAMINGS = ["stdio", "websocket"]
SMALL_LIMIT = 1024 * 1024
"""The message limit the suite's servers use, so "too large" is cheap to provoke."""


@asynccontextmanager
async def pipe_pair(max_message_bytes: int) -> AsyncIterator[tuple[NdjsonStream, NdjsonStream]]:
    """Two NDJSON streams joined by two OS pipes, as an IDE and `junction --mode stdio` are."""
    to_server_r, to_server_w = os.pipe()
    to_client_r, to_client_w = os.pipe()
    server = await open_pipe_stream(to_server_r, to_client_w, max_message_bytes=max_message_bytes)
    client = await open_pipe_stream(to_client_r, to_server_w)
    try:
        yield server, client
    finally:
        await client.aclose()
        await server.aclose()


def open_pair(framing: str, max_message_bytes: int) -> Any:
    if framing == "stdio":
        return pipe_pair(max_message_bytes)
    from tests.transports.servers import websocket_pair

    return websocket_pair(max_message_bytes=max_message_bytes)


@pytest.fixture(params=FRAMINGS)
async def streams(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[MessageStream, MessageStream]]:
    async with open_pair(request.param, SMALL_LIMIT) as pair:
        yield pair


class Raw:
    """The client side as raw bytes, to send what a well-behaved peer never would."""

    def __init__(self, stream: MessageStream) -> None:
        self.stream = stream

    async def send(self, data: bytes | str | Any) -> None:
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, bytes):
            data = orjson.dumps(data)
        await self.stream.send(data)

    async def recv(self, timeout: float = 10) -> Any:
        message = await asyncio.wait_for(self.stream.receive(), timeout)
        assert message is not None, "the server closed the connection"
        assert not isinstance(message, Oversized)
        return orjson.loads(message)

    async def call(self, data: bytes | str | Any) -> Any:
        await self.send(data)
        return await self.recv()
