"""Lines of a pipe as an asyncio protocol, with a synchronous taker in front of the reader.

`StreamReader` hands each line to a task: the bytes arrive in the transport's callback, which
wakes the reading task one event-loop turn later (and, for a subprocess's pipe, asyncio adds a
`call_soon` hop before that). For `junction --mode mcp`'s stdin and a stdio upstream's stdout,
the line that matters most (a `tools/call` in, its response out) can be served right in the
callback: `front(line)` is offered each complete line while the reading task is idle waiting
for one (nothing queued before it, so the order the task would see is kept), and what it does
not take is queued for the task as before. That is two event-loop turns fewer per relayed
call.

A line longer than `limit` (without its newline) is discarded as it streams in, never held
whole, and reported as `Oversized` with the id its first bytes show; reading then goes on.
A last line without a newline still counts at end of input.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import cast

from transports.stream import HEAD_BYTES, Oversized, request_id_in

log = logging.getLogger("mcp_gateway.lines")

_PAUSE_AT = 256
"""Queued lines at which the pipe stops being read (the task is behind); resumed at a quarter."""


class LineReader(asyncio.Protocol):
    """A read pipe's protocol: `next_line()` for the reading task, `front` in the callback."""

    def __init__(self, limit: int, front: Callable[[bytes], bool] | None = None) -> None:
        """`front(line)`: whether it took `line` (with its newline) now; it must not block,
        and is offered a line only while the reading task waits with nothing queued."""
        self._limit = limit
        self._front = front
        self._lines: deque[bytes | Oversized] = deque()
        self._partial = bytearray()
        self._discarded = 0
        """Bytes of an oversized line dropped so far (0: not dropping one)."""
        self._head = b""
        self._eof = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A read pipe's (uvloop's is no `asyncio.ReadTransport` subclass, but reads alike).
        self._transport = cast("asyncio.ReadTransport", transport)

    def data_received(self, data: bytes) -> None:
        start = 0
        waiter = self._waiter
        if (
            self._front is not None
            and waiter is not None
            and not waiter.done()
            and not self._lines
            and not self._partial
            and not self._discarded
        ):
            start = self._offer(data)
            if start == len(data):
                return
        self._split(data, start)
        if self._lines:
            self._wake()
            if len(self._lines) >= _PAUSE_AT and not self._paused and self._transport is not None:
                self._paused = True
                self._transport.pause_reading()

    def _offer(self, data: bytes) -> int:
        """Offer `front` the complete lines at the start of `data`; where the rest begins."""
        assert self._front is not None
        start = 0
        while (newline := data.find(b"\n", start)) >= 0 and newline - start <= self._limit:
            line = data if start == 0 and newline == len(data) - 1 else data[start : newline + 1]
            try:
                taken = self._front(line)
            except Exception:  # the reading task offers it again, and reports the failure
                log.debug("line taker raised; the line goes to the reader", exc_info=True)
                taken = False
            if not taken:
                break
            start = newline + 1
        return start

    def _split(self, data: bytes, start: int) -> None:
        limit = self._limit
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                rest = data[start:]
                if self._discarded:
                    self._discarded += len(rest)
                else:
                    self._partial += rest
                    if len(self._partial) > limit:
                        self._head = bytes(self._partial[:HEAD_BYTES])
                        self._discarded = len(self._partial)
                        self._partial = bytearray()
                return
            if self._discarded:
                size = self._discarded + newline - start
                self._lines.append(Oversized(size, limit, request_id_in(self._head)))
                self._discarded, self._head = 0, b""
            elif self._partial:
                self._partial += data[start : newline + 1]
                line = bytes(self._partial)
                self._partial = bytearray()
                self._lines.append(_checked(line, limit))
            else:
                self._lines.append(_checked(data[start : newline + 1], limit))
            start = newline + 1

    def eof_received(self) -> bool | None:
        self._eof = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        if exc is not None and self._error is None:
            self._error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_line(self) -> bytes | Oversized | None:
        """The next line (with its newline, but a last one), an `Oversized` marker, or None
        at end of input; raises the pipe's read error, if it had one, after its lines."""
        while not self._lines:
            if self._eof:
                return self._last()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        line = self._lines.popleft()
        if self._paused and len(self._lines) <= _PAUSE_AT // 4 and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return line

    def _last(self) -> bytes | Oversized | None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._discarded:
            size, self._discarded = self._discarded + len(self._partial), 0
            head, self._head = self._head, b""
            self._partial = bytearray()
            return Oversized(size, self._limit, request_id_in(head))
        rest, self._partial = bytes(self._partial), bytearray()
        return rest or None


def _checked(line: bytes, limit: int) -> bytes | Oversized:
    if len(line) - 1 <= limit:
        return line
    return Oversized(len(line) - 1, limit, request_id_in(line[:HEAD_BYTES]))


class PipeFile:
    """The file a pipe transport owns: a descriptor closed once, by whichever loop runs.
    asyncio's transport closes it through `close()`; uvloop's closes the descriptor itself
    and calls `close()` after, which must then do nothing (the number may be reused)."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd = fd
        self._closes = not type(loop).__module__.startswith("uvloop")

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._closes:
            self._closes = False
            os.close(self._fd)
