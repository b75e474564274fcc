"""`mcp_gateway._lines.LineReader` over a real pipe: lines, oversized lines, the front taker."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from mcp_gateway._lines import LineReader, PipeFile
from transports.stream import Oversized


class Pipe:
    """A `LineReader` reading an OS pipe we write to."""

    def __init__(self, reader: LineReader, write_fd: int) -> None:
        self.reader = reader
        self._fd = write_fd

    async def write(self, data: bytes) -> None:
        os.write(self._fd, data)
        for _ in range(3):  # the loop's turn to read it
            await asyncio.sleep(0)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


async def _pipe(limit: int, front: Callable[[bytes], bool] | None = None) -> Pipe:
    read_fd, write_fd = os.pipe()
    reader = LineReader(limit, front)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: reader, PipeFile(read_fd, loop))
    return Pipe(reader, write_fd)


Make = Callable[..., Awaitable[Pipe]]


@pytest.fixture
async def lines() -> AsyncIterator[Make]:
    made: list[Pipe] = []

    async def make(limit: int = 64, front: Callable[[bytes], bool] | None = None) -> Pipe:
        pipe = await _pipe(limit, front)
        made.append(pipe)
        return pipe

    yield make
    for pipe in made:
        pipe.close()


async def _all(pipe: Pipe) -> list[bytes | Oversized | None]:
    pipe.close()
    got: list[bytes | Oversized | None] = []
    while (line := await pipe.reader.next_line()) is not None:
        got.append(line)
    got.append(await pipe.reader.next_line())  # stays at the end
    return got


async def test_lines_split_across_writes_and_a_last_line_without_newline(lines: Make) -> None:
    pipe = await lines()
    await pipe.write(b'{"a":')
    await pipe.write(b"1}\n\n{")
    await pipe.write(b'"b":2}\nlast')
    assert await _all(pipe) == [b'{"a":1}\n', b"\n", b'{"b":2}\n', b"last", None]


async def test_an_oversized_line_is_dropped_with_its_id_and_reading_goes_on(lines: Make) -> None:
    pipe = await lines(limit=20)
    big = b'{"id": 7, "x": "' + b"y" * 50 + b'"}'
    await pipe.write(big[:30])
    await pipe.write(big[30:] + b"\nok\n")
    await pipe.write(b'{"id": "s", "x": "' + b"z" * 40 + b'"}\n')
    await pipe.write(b"x" * 21)
    assert await _all(pipe) == [
        Oversized(len(big), 20, 7),
        b"ok\n",
        Oversized(60, 20, "s"),
        Oversized(21, 20, None),
        None,
    ]


async def test_a_line_of_exactly_the_limit_is_a_line(lines: Make) -> None:
    pipe = await lines(limit=5)
    await pipe.write(b"12345\n123456\n")
    assert await _all(pipe) == [b"12345\n", Oversized(6, 5, None), None]


async def test_front_takes_lines_only_while_the_reader_waits_with_nothing_queued(
    lines: Make,
) -> None:
    taken: list[bytes] = []

    def front(line: bytes) -> bool:
        if line.startswith(b"take"):
            taken.append(line)
            return True
        return False

    pipe = await lines(front=front)
    # Nobody waits: everything is queued, in order, for the reader.
    await pipe.write(b"take 1\nkeep 2\n")
    assert taken == []
    assert await pipe.reader.next_line() == b"take 1\n"
    assert await pipe.reader.next_line() == b"keep 2\n"
    # The reader waits: front takes what it wants from the start of a chunk, the rest is queued.
    waiting = asyncio.create_task(pipe.reader.next_line())
    await asyncio.sleep(0)
    await pipe.write(b"take 3\ntake 4\nkeep 5\ntake 6\n")
    assert taken == [b"take 3\n", b"take 4\n"]
    assert await waiting == b"keep 5\n"
    assert await pipe.reader.next_line() == b"take 6\n"
    # A partial line held back: what completes it is not offered to front.
    waiting = asyncio.create_task(pipe.reader.next_line())
    await asyncio.sleep(0)
    await pipe.write(b"keep")
    await pipe.write(b" 7\ntake 8\n")
    assert await waiting == b"keep 7\n"
    assert await _all(pipe) == [b"take 8\n", None]
    assert taken == [b"take 3\n", b"take 4\n"]


async def test_a_raising_front_leaves_the_line_to_the_reader(lines: Make) -> None:
    def front(line: bytes) -> bool:
        raise RuntimeError("broken taker")

    pipe = await lines(front=front)
    waiting = asyncio.create_task(pipe.reader.next_line())
    await asyncio.sleep(0)
    await pipe.write(b"one\n")
    assert await waiting == b"one\n"


def test_serves_uvloop_pipes_too() -> None:
    """Serve mode runs on uvloop, whose pipe transports are not asyncio's classes."""
    uvloop = pytest.importorskip("uvloop")
    taken: list[bytes] = []

    async def scenario() -> list[bytes | Oversized | None]:
        pipe = await _pipe(8, lambda line: line == b"take\n" and not taken.append(line))
        waiting = asyncio.create_task(pipe.reader.next_line())
        await asyncio.sleep(0)
        await pipe.write(b"take\nkeep\n")
        first = await waiting
        await pipe.write(b"x" * 20 + b"\n")
        return [first, *await _all(pipe)]

    assert uvloop.run(asyncio.wait_for(scenario(), 10)) == [b"keep\n", Oversized(20, 8, None), None]
    assert taken == [b"take\n"]


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


async def _close_pipe_and_reuse_its_number() -> tuple[bool, bool]:
    """(the pipe's descriptor was closed, a descriptor opened as the transport closed, which
    may take the same number, is still open once the transport is gone)."""
    read_fd, write_fd = os.pipe()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(asyncio.Protocol, PipeFile(read_fd, loop))
    transport.close()
    other = os.open(os.devnull, os.O_RDONLY)
    try:
        del transport
        await asyncio.sleep(0.05)
        return other == read_fd or _closed(read_fd), not _closed(other)
    finally:
        with contextlib.suppress(OSError):
            os.close(other)
        os.close(write_fd)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_pipe_file_is_closed_once_by_either_loop(loop: str) -> None:
    """asyncio closes a pipe's file through it; uvloop closes the descriptor and then calls
    `close()` too, which must not close a descriptor that took the number meanwhile."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        outcome = uvloop.run(_close_pipe_and_reuse_its_number())
    else:
        outcome = asyncio.run(_close_pipe_and_reuse_its_number())
    assert outcome == (True, True)
