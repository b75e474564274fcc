"""Request bodies read under a size limit, for the model surfaces' Starlette endpoints (the chat
hot path reads its own off `receive`)."""

from __future__ import annotations

from starlette.requests import Request


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is over `limit` bytes (the rest is not kept)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["read_limited"]
