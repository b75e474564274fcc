"""The hub as Starlette routes: the core (`a2a.core`) with its bindings mounted.

`Hub` is the core plus the HTTP surface: the JSON-RPC and HTTP+JSON bindings under `/a2a` and
each per-agent proxy `/a2a/agents/{name}`, the cards under `.well-known`, and the admin API.
This is the one module that knows both the core and Starlette's routing; bindings import the
core, never the other way round.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from a2a.admin import AdminBinding
from a2a.asgi import AsgiEndpoint, Principal, default_principal
from a2a.core import HubCore
from a2a.errors import METHOD_NOT_FOUND, A2aError
from a2a.jsonrpc import JsonRpcBinding
from a2a.paths import WELL_KNOWN
from a2a.rest import PREFIXES, V03_OPERATIONS, V10_OPERATIONS, RestBinding, error_response
from a2a.settings import HubSettings
from a2a.store import TaskStore
from a2a.upstream import SessionFactory, _default_session
from a2a.wellknown import CardBinding


class Hub(HubCore):
    """Registry + store + push + the A2A endpoints; mount `routes()` in a Starlette app."""

    def __init__(
        self,
        store: TaskStore,
        settings: HubSettings | None = None,
        *,
        session: SessionFactory = _default_session,
        principal: Principal = default_principal,
    ) -> None:
        super().__init__(store, settings, session=session)
        self.principal = principal
        """Who is calling; read on every request, so it can be swapped on a running hub."""

    def caller(self, request: Request) -> str:
        """The caller of `request`, by the current `principal`."""
        return self.principal(request)

    def routes(self, *, admin: bool = True) -> list[BaseRoute]:
        """`/.well-known/agent-card.json`, `POST /a2a`, `/a2a/agents/{name}[...]`, the HTTP+JSON
        routes under both, admin routes."""
        rpc = JsonRpcBinding(self, self.caller)
        cards = CardBinding(self)
        routes: list[BaseRoute] = [
            SlashRoute(WELL_KNOWN, cards.hub, methods=["GET"]),
            SlashRoute("/a2a", AsgiEndpoint(rpc.serve_hub), methods=["POST"]),
            SlashRoute("/a2a" + WELL_KNOWN, cards.hub, methods=["GET"]),
            Route("/a2a/jwks.json", cards.jwks, methods=["GET"]),
            SlashRoute("/a2a/agents/{name}", AsgiEndpoint(rpc.serve_agent), methods=["POST"]),
            SlashRoute("/a2a/agents/{name}" + WELL_KNOWN, cards.agent, methods=["GET"]),
            *rest_routes(self),
        ]
        if admin:
            operator = AdminBinding(self.registry)
            routes += [
                Route("/admin/a2a/agents", operator.list, methods=["GET"]),
                Route("/admin/a2a/agents", operator.register, methods=["POST"]),
                Route("/admin/a2a/agents/{name}", operator.remove, methods=["DELETE"]),
            ]
        return routes + unknown_routes()


def rest_routes(hub: Hub) -> list[BaseRoute]:
    """The HTTP+JSON routes for both versions, under the hub's URL and each per-agent proxy's."""
    binding = RestBinding(hub, hub.caller)
    routes: list[BaseRoute] = []
    for prefix in PREFIXES:
        for legacy, operations in ((False, V10_OPERATIONS), (True, V03_OPERATIONS)):
            for op in operations:
                endpoint = AsgiEndpoint(binding.endpoint(op, legacy))
                routes.append(SlashRoute(prefix + op.path, endpoint, methods=[op.verb]))
    return routes


class SlashRoute(Route):
    """A route that also answers its path with a trailing slash: A2A clients join the interface
    URL and `/` (the TCK's JSON-RPC client posts to `{url}/`). One regex, not a twin route, so
    the hot path matches no more routes than before."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: list[str]) -> None:
        super().__init__(path, endpoint, methods=methods)
        self.path_regex = re.compile(self.path_regex.pattern.removesuffix("$") + "/?$")


def unknown_routes() -> list[BaseRoute]:
    """Last under `/a2a`: a path (or verb) no A2A route answers gets MethodNotFound as an A2A
    error body (HTTP+JSON's `google.rpc.Status`, 404), not the application's plain-text 404."""

    async def unknown(request: Request) -> Response:
        path = request.url.path
        message = f"no A2A operation is {request.method} {path}"
        return error_response(A2aError(METHOD_NOT_FOUND, message, {"path": path}))

    verbs = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return [Route(path, unknown, methods=verbs) for path in ("/a2a", "/a2a/{rest:path}")]


__all__ = ["Hub", "rest_routes"]
