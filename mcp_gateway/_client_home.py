"""The one client of `junction --mode mcp`: who answers what an upstream asks outside a call.

An upstream may ask its client something while no call of the client's is in flight:
@modelcontextprotocol/server-filesystem asks `roots/list` right after it is initialized and
again after each `notifications/roots/list_changed`, and takes the answer as its allowed
directories. Over stdio there is exactly one client, so such a request goes to it
(`StdioClient.relay` is the catalog's `home`): `roots/list`, `sampling/createMessage` and
`elicitation/create`, each only when the client declared the capability (else -32601, as
the spec's roots chapter says a client without it answers). A request that comes before the
client has initialized waits for it (up to the call timeout). The client's
`notifications/roots/list_changed` goes on to every upstream, which then asks again.

An ACP session's own upstreams have the session as their client (`relay.roots_relay`: its
cwd and additionalDirectories); `/mcp` over HTTP has many clients and none of them is this
one, so there such a request is refused (-32603, saying why; see `_upstream_asks`).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError, NoBackChannelError

from mcp_gateway._client_relay import missing_capability
from mcp_gateway._sdk import connection_of
from mcp_gateway.errors import GatewayError
from mcp_gateway.gateway import Catalog
from mcp_gateway.relay import Relay, relayed_options

log = logging.getLogger("mcp_gateway.server")


class StdioClient:
    """The client on stdin/stdout, as the relay of every upstream request outside a call."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._session: ServerSession | None = None
        self._initialized = anyio.Event()
        self.relay = Relay(self._ask, owner=self, legacy=True)

    @property
    def session(self) -> ServerSession | None:
        """The client's session once it has sent `notifications/initialized`."""
        return self._session

    def attach(self, server: Server[Any]) -> None:
        """Hear the client's `initialized` and roots changes on `server`; become the catalog's
        home. Notification handlers only: nothing is added to a request's path."""
        server.add_notification_handler(
            "notifications/initialized", types.NotificationParams, self._on_initialized
        )
        server.add_notification_handler(
            "notifications/roots/list_changed", types.NotificationParams, self._on_roots_changed
        )
        self._catalog.home = self.relay

    async def _on_initialized(
        self, ctx: ServerRequestContext[Any, Any], params: types.NotificationParams
    ) -> None:
        self._session = ctx.session
        self._initialized.set()

    async def _on_roots_changed(
        self, ctx: ServerRequestContext[Any, Any], params: types.NotificationParams
    ) -> None:
        for upstream in list(self._catalog.upstreams()):
            await upstream.roots_changed()

    async def _ask(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with anyio.move_on_after(self._catalog.options.call_timeout):
            await self._initialized.wait()
        session = self._session
        connection = connection_of(session) if session is not None else None
        if session is None or connection is None:
            raise GatewayError(
                types.INTERNAL_ERROR, f"{method}: no client has initialized to answer it"
            )
        lacking = missing_capability(session.client_capabilities, method, params)
        if lacking:
            raise GatewayError(
                types.METHOD_NOT_FOUND,
                f"{method}: the client did not declare the {lacking} capability",
            )
        try:
            result: dict[str, Any] = await connection.outbound.send_raw_request(
                method, params, relayed_options()
            )
        except NoBackChannelError:
            raise GatewayError(
                types.INTERNAL_ERROR, f"{method}: the client cannot be asked outside its requests"
            ) from None
        except MCPError as exc:
            raise GatewayError(exc.error.code, exc.error.message, data=exc.error.data) from None
        return result
