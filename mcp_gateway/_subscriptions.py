"""Resource subscriptions of every client, held upstream once per URI.

Clients of both generations subscribe (2025-11-25: `resources/subscribe` per connection;
2026-07-28: `resourceSubscriptions` of a `subscriptions/listen` stream); the resource's owner
is asked once, when the first subscriber comes, and released when the last one goes, so one
client unsubscribing never silences another. Updates from upstreams reach the subscribed
connections and listen streams (`server._Notifier.deliver_notices`).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from typing import Any

import anyio
from mcp.server import ServerRequestContext
from mcp.server.subscriptions import ListenHandler

from mcp_gateway.errors import GatewayError
from mcp_gateway.gateway import Catalog

log = logging.getLogger("mcp_gateway.server")

RELEASE_SECONDS = 5.0
"""How long an upstream `resources/unsubscribe` may take when its last subscriber left."""


class Subscriptions:
    def __init__(self, catalog: Catalog, listen: ListenHandler) -> None:
        self._catalog = catalog
        self._listen = listen
        self._held: Counter[str] = Counter()
        self._connections: dict[str, set[int]] = {}
        """Resource URI -> the handshake-era connections subscribed to it."""

    def subscribers(self, uri: str) -> set[int]:
        return set(self._connections.get(uri, ()))

    async def hold(self, uri: str) -> dict[str, Any]:
        """One more subscriber of `uri`: the upstream is asked on the first (its error, such as
        an unknown resource, is the subscriber's)."""
        self._held[uri] += 1
        if self._held[uri] > 1:
            return {}
        try:
            return await self._catalog.subscribe_resource("resources/subscribe", uri)
        except BaseException:
            self._drop(uri)
            raise

    async def release(self, uri: str) -> None:
        """One subscriber fewer: the upstream is released after the last."""
        if self._held[uri] <= 0 or self._drop(uri):
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(RELEASE_SECONDS):
            try:
                await self._catalog.subscribe_resource("resources/unsubscribe", uri)
            except GatewayError as exc:
                log.debug("could not unsubscribe %s upstream: %s", uri, exc.message)

    def _drop(self, uri: str) -> bool:
        """Count one subscriber of `uri` out; whether others remain."""
        self._held[uri] -= 1
        if self._held[uri] > 0:
            return True
        del self._held[uri]
        return False

    async def subscribe(self, connection: int, uri: str) -> dict[str, Any]:
        """`resources/subscribe` of a handshake-era connection (again: a no-op)."""
        if connection in self._connections.get(uri, ()):
            return {}
        result = await self.hold(uri)
        self._connections.setdefault(uri, set()).add(connection)
        return result

    async def unsubscribe(self, connection: int, uri: str) -> dict[str, Any]:
        keys = self._connections.get(uri)
        if keys is None or connection not in keys:
            return {}
        keys.discard(connection)
        if not keys:
            del self._connections[uri]
        await self.release(uri)
        return {}

    def gone(self, connection: int) -> list[str]:
        """A connection ended: the URIs it held, to release."""
        uris = [uri for uri, keys in self._connections.items() if connection in keys]
        for uri in uris:
            self._connections[uri].discard(connection)
            if not self._connections[uri]:
                del self._connections[uri]
        return uris

    async def listen(self, ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
        """`subscriptions/listen`: the stream's resource subscriptions are held upstream while
        it is open (one the upstream refuses is still listened to, and never fires)."""
        uris = list(params.notifications.resource_subscriptions or ())
        held: list[str] = []
        try:
            for uri in uris:
                with contextlib.suppress(GatewayError):
                    await self.hold(uri)
                    held.append(uri)
            return await self._listen(ctx, params)
        finally:
            for uri in held:
                await self.release(uri)
