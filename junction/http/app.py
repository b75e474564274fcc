"""The Starlette application that mounts every HTTP surface of a running Junction, behind the
access guard of the configuration in force and the request metrics (outside the guard, so
refused requests count too)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from junction.audit import audit, configure_audit_file
from junction.config import JunctionConfig, ServerConfig
from junction.http.metrics import Metrics, RequestMetrics
from junction.http.oauth import TokenVerifier, metadata_routes
from junction.http.routing import IndexedRouter
from junction.http.security import AccessGuard
from junction.http.telemetry import server_spans
from junction.http.upstream_login import UpstreamLogins
from junction.reload import Listener
from transports import MessageStream

if TYPE_CHECKING:
    from a2a import Hub
    from junction.limits import Limiter
    from router_core import Router


class Surfaces(Protocol):
    """What the app serves from a running Junction (`junction.root.Junction`)."""

    @property
    def config(self) -> JunctionConfig: ...

    @property
    def running(self) -> bool: ...

    @property
    def router(self) -> Router: ...

    @property
    def hub(self) -> Hub: ...

    @property
    def metrics(self) -> Metrics: ...

    @property
    def limiter(self) -> Limiter: ...

    @property
    def mcp_app(self) -> ASGIApp: ...

    def health(self) -> dict[str, Any]: ...

    def readiness(self) -> tuple[bool, list[str]]: ...

    def mcp_servers(self) -> list[dict[str, Any]]: ...

    async def serve_acp_connection(self, stream: MessageStream) -> None: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def build_app(junction: Surfaces) -> Starlette:
    """Routes read the live objects (router, gateway, hub, runtime), which a reload changes in
    place; the access guard reads the running configuration's keys."""
    from router_core.routes import openai_routes
    from transports import remote_routes

    limit = junction.config.server.max_message_bytes

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(junction.health())

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})  # answering at all is the proof

    async def ready(request: Request) -> JSONResponse:
        ok, missing = junction.readiness()
        body = {"status": "ready" if ok else "not ready", "down": missing}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def admin_mcp(request: Request) -> JSONResponse:
        return JSONResponse({"servers": junction.mcp_servers()})

    async def admin_usage(request: Request) -> JSONResponse:
        return JSONResponse(await junction.limiter.report())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if junction.running:  # a host application already started us
            yield
            return
        async with junction:
            yield

    acp = junction.serve_acp_connection
    routes: list[BaseRoute] = [
        Route("/health", health),
        Route("/health/live", live),
        Route("/health/ready", ready),
        Route("/metrics", junction.metrics.endpoint(), methods=["GET"]),
        Route("/admin/mcp", admin_mcp, methods=["GET"]),
        Route("/admin/usage", admin_usage, methods=["GET"]),
        *metadata_routes(lambda: junction.config.server.oauth),
        *remote_routes("/acp", acp, max_message_bytes=limit),  # ACP's remote transport
        *junction.hub.routes(),
        *openai_routes(junction.router),
        *UpstreamLogins(lambda: junction.config).routes(),  # /mcp/login/...: per-user logins
        Mount("", app=junction.mcp_app),  # last: it answers `/mcp` and 404s everything else
    ]
    configure_audit_file(junction.config.logging.audit_file)
    junction.subscribe(_audit_identity_changes)
    app = _App(
        lifespan=lifespan,
        middleware=[
            Middleware(RequestMetrics, metrics=junction.metrics.http),
            *server_spans(),  # inside the metrics, which accept the caller's trace context
            Middleware(_CurrentAccessGuard, junction=junction),
        ],
    )
    app.router = IndexedRouter(routes, lifespan=lifespan)
    return app


class _App(Starlette):
    """Starlette with only our middleware around the router: its `ServerErrorMiddleware`
    (a 500 for an error before the response, which uvicorn sends too) and
    `ExceptionMiddleware` (which `IndexedRouter` stands in for) each wrapped every request's
    `send` again, for nothing this app uses (it registers no exception handlers)."""

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = self.router
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def _audit_identity_changes(old: JunctionConfig, new: JunctionConfig) -> None:
    """A reload that changes who may come in is audited (names and settings, never keys); the
    audit trail moves to a new `logging.audit_file` first, so the record lands there."""
    configure_audit_file(new.logging.audit_file)
    before = {str(grant.name): grant for grant in old.server.key_grants()}
    after = {str(grant.name): grant for grant in new.server.key_grants()}
    changed = sorted(name for name in {*before, *after} if before.get(name) != after.get(name))
    oauth = old.server.oauth != new.server.oauth
    if changed or oauth:
        audit(
            "config",
            "change",
            reason="identity settings reloaded",
            keys_added=sorted(set(after) - set(before)),
            keys_removed=sorted(set(before) - set(after)),
            keys_changed=[name for name in changed if name in before and name in after],
            oauth=(new.server.oauth.model_dump() if new.server.oauth else None) if oauth else None,
        )


class _CurrentAccessGuard:
    """The `AccessGuard` for the keys and OAuth settings of the running configuration: rebuilt
    when a reload changes `server`, so rotating a key needs no restart (the token verifier, with
    its cached signing keys, is kept while `server.oauth` stays the same). A request keeps the grant it came
    in with (a WebSocket opened with a key that is then removed stays open)."""

    def __init__(self, app: ASGIApp, *, junction: Surfaces) -> None:
        self.app = app
        self.junction = junction
        self._server: ServerConfig | None = None
        self._guard: ASGIApp | None = None
        self._tokens: TokenVerifier | None = None

    def _current(self) -> ASGIApp:
        server = self.junction.config.server
        if self._guard is None or server is not self._server:
            if server.oauth is None:
                self._tokens = None
            elif self._tokens is None or self._tokens.config != server.oauth:
                self._tokens = TokenVerifier(server.oauth)  # else keep its cached keys
            guard: ASGIApp = AccessGuard(
                self.app,
                grants=server.key_grants(),
                tokens=self._tokens,
                metrics_public=server.metrics_public,
                allowed_origins=server.allowed_origins,
                limiter=self.junction.limiter,
            )
            if server.allowed_origins:
                # Answers allowed origins' preflights before the guard (which would want a key).
                guard = CORSMiddleware(
                    guard,
                    allow_origins=server.allowed_origins,
                    allow_methods=["*"],
                    allow_headers=["*"],
                    expose_headers=["*"],
                )
            self._guard = guard
            self._server = server
        return self._guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._current()(scope, receive, send)


__all__ = ["Surfaces", "build_app"]
