"""Two `MessageStream`s joined in memory: a JSON-RPC connection inside one process.

Junction's own A2A agent talks ACP to the agent runtime this way, so its tasks run exactly the
turn loop an IDE's prompts run, without a pipe or a socket in between.
"""

from __future__ import annotations

import asyncio

from transports.stream import Oversized


class MemoryStream:
    """One end of a `memory_pair`; closing either end ends both directions."""

    def __init__(
        self, inbox: asyncio.Queue[bytes | None], outbox: asyncio.Queue[bytes | None]
    ) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._closed = False

    async def receive(self) -> bytes | Oversized | None:
        if self._closed:
            return None
        message = await self._inbox.get()
        if message is None:
            self._closed = True
        return message

    async def send(self, message: bytes) -> None:
        if self._closed:
            raise ConnectionError("in-memory stream is closed")
        self._outbox.put_nowait(message)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._outbox.put_nowait(None)
            self._inbox.put_nowait(None)


def memory_pair() -> tuple[MemoryStream, MemoryStream]:
    """Two connected ends (unbounded queues: both sides are our own code on one event loop)."""
    a: asyncio.Queue[bytes | None] = asyncio.Queue()
    b: asyncio.Queue[bytes | None] = asyncio.Queue()
    return MemoryStream(a, b), MemoryStream(b, a)


__all__ = ["MemoryStream", "memory_pair"]
