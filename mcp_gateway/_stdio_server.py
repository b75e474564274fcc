"""Our side of `junction --mode mcp`: stdin/stdout on the event loop, for the SDK's stdio server.

The SDK's `stdio_server()` reads and writes through `anyio.wrap_file`: every line read, every
write and every flush is a hop to a worker thread and back (three per tools/call), which was
a third of the gateway's added latency at concurrency 1. When stdin and stdout are pipes,
sockets or terminals (what an MCP client gives its server), this serves them with asyncio pipe
transports instead, and hands the SDK the same line-oriented file interface it reads and
writes. Everything else is the SDK's: the descriptor claim (fd 0 reads the null device and
fd 1 points at stderr while serving, so a stray print cannot corrupt the stream; restored on
exit), message parsing and serialisation. Anything else on stdin (a regular file) gets the
SDK's own threaded path.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import sys
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

from mcp.server import stdio as sdk_stdio
from mcp.server.stdio import stdio_server

LINE_LIMIT = 256 * 1024 * 1024
"""Longest line accepted on stdin: the gateway refuses oversized arguments with a clear error,
which it can only do if it reads them (a 20 MiB argument is one line)."""


def _streamable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


class _Lines:
    """stdin as the SDK reads it: `async for line in stdin`, text lines with their newline."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        try:
            line = await self._reader.readline()
        except ValueError:  # longer than LINE_LIMIT: the rest of the stream is unusable
            raise StopAsyncIteration from None
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", "replace")


class _Writer:
    """stdout as the SDK writes it: `await write(text)` then `await flush()`."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        self._writer.write(text.encode("utf-8"))

    async def flush(self) -> None:
        await self._writer.drain()


@contextlib.asynccontextmanager
async def serve_streams() -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's stdio server streams, over event-loop pipes when stdin/stdout allow it."""
    if sys.platform == "win32" or not (_streamable(0) and _streamable(1)):
        async with stdio_server() as streams:
            yield streams
        return
    stdin, release_in = sdk_stdio._claim_fd(0, sys.stdin, "rb", sdk_stdio._open_stdin_diversion)
    try:
        stdout, release_out = sdk_stdio._claim_fd(
            1, sys.stdout, "wb", sdk_stdio._open_stdout_diversion
        )
    except BaseException:
        if release_in is not None:
            release_in()
        raise
    flags = [(f, fcntl.fcntl(f.fileno(), fcntl.F_GETFL)) for f in (stdin, stdout)]
    loop = asyncio.get_running_loop()
    read_transport: asyncio.BaseTransport | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), _Unowned(stdin)
        )
        write_transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, _Unowned(stdout)
        )
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        async with stdio_server(_Lines(reader), _Writer(writer)) as streams:  # type: ignore[arg-type]
            yield streams
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), 5)
            writer.transport.abort()
        if read_transport is not None:
            read_transport.close()
        for file, flag in flags:  # pipes are shared with the parent: leave them as found
            with contextlib.suppress(OSError):
                fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flag)
        for release in (release_out, release_in):
            if release is not None:
                release()


class _Unowned:
    """A file object for a pipe transport whose close does not close the descriptor
    (the SDK's claim owns it and restores fd 0/1 from it)."""

    def __init__(self, file: BinaryIO) -> None:
        self._fd = file.fileno()

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        return None
