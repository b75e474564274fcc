"""`junction --mode serve`: one Starlette application mounting every HTTP surface, under uvicorn.

Each surface is mounted here as its issue lands; until then its routes do not exist (404), which is
more honest than a stub that pretends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from junction.config import JunctionConfig
from junction.logs import redact
from junction.metrics import Metrics, RequestMetrics
from junction.security import AccessGuard
from transports import MessageStream

log = logging.getLogger("junction.server")


def build_app(config: JunctionConfig) -> Starlette:
    """The ASGI application for every surface, guarded by API keys or Host/Origin checks.

    One MCP gateway serves both `/mcp` and the ACP sessions, and one router both `/v1` and the
    ACP sessions, so each upstream runs, and is health-checked, once per process. The metrics
    middleware sits outside the guard so refused requests are counted too.
    """
    from junction.a2a_mode import build_hub, hub_lifespan
    from junction.acp_mode import build_runtime, serve_acp
    from junction.mcp_mode import gateway_inputs
    from junction.router_mode import build_router, openai_routes
    from mcp_gateway import Gateway, http_app
    from transports import sse_routes, websocket_route

    limit = config.server.max_message_bytes
    specs, options = gateway_inputs(config)
    gateway = Gateway(specs, options)
    grants = config.server.key_grants()
    mcp_app = http_app(
        gateway, path="/mcp", api_keys=[grant.key for grant in grants], host=config.server.host
    )
    hub = build_hub(config)
    router = build_router(config)
    runtime = build_runtime(config, gateway=gateway, router=router)
    metrics = Metrics()
    metrics.watch(router=router, gateway=gateway, hub=hub)

    async def serve_acp_connection(stream: MessageStream) -> None:
        """One remote ACP client (WebSocket or SSE), on the runtime every connection shares."""
        await serve_acp(stream, runtime)

    async def health(request: Request) -> JSONResponse:
        """`healthy` only when every configured component is up; `degraded` names what is not."""
        components: dict[str, dict[str, str]] = {
            "mcp_servers": {
                status.name: (
                    f"{status.state}: {status.reason}"
                    if status.reason and status.state != "ready"
                    else str(status.state)
                )
                for status in gateway.statuses()
            },
            "a2a_agents": {agent.name: agent.state() for agent in hub.registry.all()},
            "backends": {
                row["name"]: "ready" if row["available"] else str(row["reason"])
                for row in router.snapshot()
            },
        }
        down = [
            f"{kind}.{name}"
            for kind, states in components.items()
            for name, state in states.items()
            if state != "ready"
        ]
        return JSONResponse(
            {"status": "degraded" if down else "healthy", "down": down, "components": components}
        )

    async def admin_mcp(request: Request) -> JSONResponse:
        """Every MCP upstream's connection state; reasons pass through log redaction because
        upstream errors can quote URLs or headers."""
        servers = []
        for status in gateway.statuses():
            row = status.as_dict()
            row["reason"] = redact(row["reason"]) if row["reason"] else row["reason"]
            row["warnings"] = [redact(warning) for warning in row["warnings"]]
            servers.append(row)
        return JSONResponse({"servers": servers})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Starlette does not run a mounted app's lifespan: the MCP app's runs here.
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(router)
            metrics.state.watch_breakers()
            await stack.enter_async_context(gateway)
            await stack.enter_async_context(mcp_app.router.lifespan_context(mcp_app))
            await stack.enter_async_context(hub_lifespan(hub, config))
            stack.push_async_callback(runtime.aclose)
            yield

    routes: list[BaseRoute] = [
        Route("/health", health),
        Route("/metrics", metrics.endpoint(), methods=["GET"]),
        Route("/admin/mcp", admin_mcp, methods=["GET"]),
        websocket_route("/acp", serve_acp_connection, max_message_bytes=limit),
        Mount("/acp", routes=sse_routes("", serve_acp_connection, max_message_bytes=limit)),
        *hub.routes(),
        *openai_routes(router),
        Mount("", app=mcp_app),  # last: it answers `/mcp` and 404s everything else
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(RequestMetrics, metrics=metrics.http),
            Middleware(AccessGuard, grants=grants, metrics_public=config.server.metrics_public),
        ],
    )


def run_serve(config: JunctionConfig) -> int:
    """Serve until SIGINT/SIGTERM; uvicorn drains connections before returning."""
    import uvicorn

    class Server(uvicorn.Server):
        def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
            # One stable line (with the real port when --port 0) that people and tests can read.
            for listener in listeners:
                host, port = listener.getsockname()[:2]
                log.info("listening on http://%s:%s", host, port)

    server = Server(
        uvicorn.Config(
            build_app(config),
            host=config.server.host,
            port=config.server.port,
            log_config=None,  # keep our stderr logging (uvicorn's default writes to stdout)
            access_log=False,
            ws="websockets-sansio",
            ws_max_size=config.server.max_message_bytes,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    # uvicorn drains on SIGTERM, then re-raises it under the handler that was in place before:
    # make that one a no-op so a graceful stop exits 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    asyncio.run(server.serve())
    return 0
