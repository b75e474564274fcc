"""The one interface every framing offers the JSON-RPC peer: whole messages in, whole messages out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Large enough for images in ACP prompts (the brief asks for at least 50 MiB)."""


@dataclass(frozen=True, slots=True)
class Oversized:
    """A message the framing dropped because it exceeded the limit.

    The framing hands this to the peer instead of the bytes, so the peer can answer with an error
    and keep the connection when the framing allows it (NDJSON, SSE POSTs).
    """

    size: int
    limit: int
    id: int | str | None = None
    """The request's id when its first bytes show one (`request_id_in`), so the error answers
    the request and the client is not left waiting; None otherwise."""


HEAD_BYTES = 4096
"""How much of a dropped message a framing keeps to find its id."""

_ID_AT = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,256}")\s*[,}]')


def request_id_in(head: bytes) -> int | str | None:
    """The top-level `id` of a JSON-RPC object from the first bytes of its text, or None.

    A message over the size limit is never parsed whole; but its id usually comes early
    (`{"jsonrpc": "2.0", "id": 7, "method": ...`), and answering with it lets the client match
    the error to its request. Only a member of the outer object counts (an `id` nested in
    `params` is skipped), and only a whole integer or string.
    """
    depth, at, end = 0, 0, len(head)
    while at < end:
        char = head[at]
        if char == 0x22:  # a string; at depth 1 outside a value it may be the key "id"
            if depth == 1 and (found := _ID_AT.match(head, at)) is not None:
                return json.loads(found.group(1))  # type: ignore[no-any-return]
            at += 1
            while at < end and head[at] != 0x22:
                at += 2 if head[at] == 0x5C else 1
        elif char in b"{[":
            depth += 1
        elif char in b"}]":
            depth -= 1
        at += 1
    return None


@runtime_checkable
class MessageStream(Protocol):
    """A bidirectional stream of complete JSON-RPC messages (one JSON text each).

    `receive` returns the next message, an `Oversized` marker, or None once the other side has
    gone away. `send` writes one message; it may raise `ConnectionError` when the stream is closed.
    """

    async def receive(self) -> bytes | Oversized | None: ...

    async def send(self, message: bytes) -> None: ...

    async def aclose(self) -> None: ...


class Inbox:
    """Received messages in order, ended by None: a framing's `receive()` keeps answering None
    once the other side is gone, without waiting."""

    def __init__(self, maxsize: int = 0) -> None:
        self._queue: asyncio.Queue[bytes | Oversized | None] = asyncio.Queue(maxsize)
        self._ended = False

    async def get(self) -> bytes | Oversized | None:
        if self._ended:
            return None
        item = await self._queue.get()
        if item is None:
            self._ended = True
        return item

    def put_nowait(self, item: bytes | Oversized | None) -> None:
        self._queue.put_nowait(item)

    async def put(self, item: bytes | Oversized | None) -> None:
        """Wait for room (a bounded inbox holds a fast sender back)."""
        await self._queue.put(item)

    def close(self) -> None:
        """End it now: a `get()` waiting on an empty inbox wakes with None, later ones too."""
        self._ended = True
        with contextlib.suppress(asyncio.QueueFull):  # full: nobody is waiting on it
            self._queue.put_nowait(None)


class ClosesOnExit:
    """`async with stream:` closes the stream on the way out, however the block ends."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
