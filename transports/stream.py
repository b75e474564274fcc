"""The one interface every framing offers the JSON-RPC peer: whole messages in, whole messages out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class MessageStream(Protocol):
    """A bidirectional stream of complete JSON-RPC messages (one JSON text each).

    `receive` returns the next message, an `Oversized` marker, or None once the other side has
    gone away. `send` writes one message; it may raise `ConnectionError` when the stream is closed.
    """

    async def receive(self) -> bytes | Oversized | None: ...

    async def send(self, message: bytes) -> None: ...

    async def aclose(self) -> None: ...
