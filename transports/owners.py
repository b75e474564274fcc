"""Who owns a live session among several processes serving one endpoint: the hook the session
servers here and in `mcp_gateway` call, found in the request's ASGI scope.

A session (an MCP `Mcp-Session-Id`, an ACP `Acp-Connection-Id`) is a live object in the process
that opened it. An application that runs several such processes (Junction with
`cluster.redis_url`) puts an `Owners` in each request's scope under `OWNERS_SCOPE_KEY`; the
session servers tell it which ids they opened and closed, and a WebSocket resumption naming an
id they do not have is offered to it before it is refused. Without one in the scope (a single
process, an embedding application) nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from starlette.websockets import WebSocket

OWNERS_SCOPE_KEY = "session_owners"
"""The ASGI scope key an application sets to its `Owners`."""


class Owners(Protocol):
    """Where a session id's owner is recorded, and how a request reaches it."""

    async def opened(self, kind: str, ident: str, alive: Callable[[], bool]) -> None:
        """`ident` (of `kind`: "mcp" or "acp") now lives here while `alive()`; returns once
        the record is written, so the id's next request can be routed anywhere."""
        ...

    def closed(self, kind: str, ident: str) -> None:
        """`ident` has ended here (its record goes in the background)."""
        ...

    async def resume_elsewhere(
        self, websocket: WebSocket, connection_id: str, first: bytes
    ) -> str | None:
        """A resumption (`first`, the socket's first frame) of a connection this process does
        not have: None when it was carried to the owner and the socket served until it ended,
        else why not (the caller refuses the resumption with it)."""
        ...


def owners_of(scope: Mapping[str, Any]) -> Owners | None:
    """The `Owners` of this request's application (None: one process, nothing to record)."""
    owners: Owners | None = scope.get(OWNERS_SCOPE_KEY)
    return owners


__all__ = ["OWNERS_SCOPE_KEY", "Owners", "owners_of"]
