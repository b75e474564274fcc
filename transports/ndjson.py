"""Newline-delimited JSON framing, over any asyncio byte stream and over this process's stdin/stdout.

Lines are split by hand rather than with `StreamReader.readline`, because readline cannot skip the
rest of an over-long line: after its limit error the tail of that line would be read as the next
message. Here an over-long line is discarded as it streams in (never buffered whole) and reported
as `Oversized`, and the next line is read normally.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from typing import Protocol

from transports.stream import DEFAULT_MAX_MESSAGE_BYTES, HEAD_BYTES, Oversized, request_id_in

_CHUNK = 256 * 1024
_PUMPS: set[asyncio.Task[None]] = set()


class ByteSink(Protocol):
    """The writing half of a byte stream: `asyncio.StreamWriter` fits, so does `_ThreadedSink`."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class NdjsonStream:
    """A `MessageStream` of one JSON text per line."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: ByteSink,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._limit = max_message_bytes
        self._buffer = bytearray()
        self._start = 0  # where the unread part of _buffer begins
        self._discarded = 0  # bytes of an oversized line thrown away so far, 0 when not discarding
        self._head = b""  # the first bytes of the oversized line being discarded (for its id)
        self._eof = False
        self._closed = False
        self._outbox: list[bytes] = []

    async def receive(self) -> bytes | Oversized | None:
        while True:
            newline = self._buffer.find(b"\n", self._start)
            if newline >= 0:
                line = self._take(newline)
                if line is not None:
                    return line
                continue
            pending = len(self._buffer) - self._start
            if self._discarded or pending > self._limit:
                if not self._discarded:
                    self._head = bytes(self._buffer[self._start : self._start + HEAD_BYTES])
                self._discarded += pending
                self._reset_buffer()
            if self._eof:
                return self._take_last()
            chunk = await self._reader.read(_CHUNK)
            if not chunk:
                self._eof = True
                continue
            if self._start and self._start == len(self._buffer):
                self._reset_buffer()
            self._buffer += chunk

    def _take(self, newline: int) -> bytes | Oversized | None:
        """The complete line ending at `newline`, its Oversized marker, or None for a blank line."""
        start, self._start = self._start, newline + 1
        size = self._discarded + newline - start
        if self._discarded or size > self._limit:
            head = self._head if self._discarded else self._buffer[start : start + HEAD_BYTES]
            self._discarded, self._head = 0, b""
            return Oversized(size, self._limit, request_id_in(bytes(head)))
        line = bytes(self._buffer[start:newline])
        if self._start > _CHUNK:
            self._reset_buffer()
        return line if line.strip() else None

    def _take_last(self) -> bytes | Oversized | None:
        """At EOF: a final line without its newline still counts; then the stream is over."""
        rest = bytes(self._buffer[self._start :]).strip()
        discarded, self._discarded = self._discarded, 0
        head, self._head = self._head, b""
        self._reset_buffer(keep=False)
        if discarded:
            return Oversized(discarded + len(rest), self._limit, request_id_in(head))
        return rest or None

    def _reset_buffer(self, *, keep: bool = True) -> None:
        self._buffer = self._buffer[self._start :] if keep and not self._discarded else bytearray()
        self._start = 0

    async def send(self, message: bytes) -> None:
        """Queue one line; every line queued in this turn of the event loop goes out in one write.

        Coalescing matters under load: 64 concurrent replies become one syscall instead of 64.
        """
        if self._closed:
            raise ConnectionError("stream is closed")
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(message)
        try:
            await self._writer.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            self._closed = True
            raise ConnectionError("the other side closed the stream") from exc

    def _flush(self) -> None:
        if self._closed:
            return
        self._outbox.append(b"")
        data, self._outbox = b"\n".join(self._outbox), []
        try:
            self._writer.write(data)
        except (BrokenPipeError, ConnectionResetError, RuntimeError):
            self._closed = True

    async def aclose(self) -> None:
        if not self._closed:
            if self._outbox:
                self._flush()
            self._closed = True
            self._writer.close()


class _ThreadedSink:
    """Blocking writes in a worker thread, for a stdout that asyncio cannot watch (a regular file)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = asyncio.Lock()
        self._queued: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._queued.append(data)

    async def drain(self) -> None:
        async with self._lock:
            data, self._queued = b"".join(self._queued), []
            if data:
                await asyncio.to_thread(_write_all, self._fd, data)

    def close(self) -> None:
        os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def claim_stdout() -> int:
    """Reserve the real stdout for the protocol and point fd 1 (and `sys.stdout`) at stderr.

    After this, a stray `print`, a chatty library or a child process that inherits fd 1 writes to
    stderr, so nothing but protocol can ever reach the client. Returns the protocol's fd.
    """
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_fd


async def open_stdio(*, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> NdjsonStream:
    """NDJSON on this process's stdin and stdout (claimed with `claim_stdout`)."""
    return await open_pipe_stream(0, claim_stdout(), max_message_bytes=max_message_bytes)


async def open_pipe_stream(
    read_fd: int, write_fd: int, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> NdjsonStream:
    """NDJSON over two file descriptors (pipes, sockets, ttys; regular files through a thread).

    The stream owns both descriptors from here on.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_CHUNK, loop=loop)
    if _is_regular_file(read_fd):  # asyncio cannot watch a file: feed the reader from a thread
        pump = loop.create_task(_pump_file(read_fd, reader))
        _PUMPS.add(pump)
        pump.add_done_callback(_PUMPS.discard)
    else:
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(read_fd, "rb", 0)
        )
    writer: ByteSink
    if _is_regular_file(write_fd):
        writer = _ThreadedSink(write_fd)
    else:
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(write_fd, "wb", 0)
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return NdjsonStream(reader, writer, max_message_bytes=max_message_bytes)


def _is_regular_file(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


async def _pump_file(fd: int, reader: asyncio.StreamReader) -> None:
    while chunk := await asyncio.to_thread(os.read, fd, _CHUNK):
        reader.feed_data(chunk)
    reader.feed_eof()
