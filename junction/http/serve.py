"""The uvicorn server Junction's app runs under: it drains in-flight work before the connections
close, and, while it serves, reloads the configuration when its file changes (and on SIGHUP when
Junction owns the process)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from junction.cluster import REPLICA_HEADER, replica_id
from junction.config import JunctionConfig
from junction.reload import ConfigSource, Reloadable, reload_and_log, watch_files

log = logging.getLogger("junction.server")

SHUTDOWN_SETTLE_SECONDS = 3
"""After the grace period: how long cut work has to send its last answers, and upstream
connections and child processes to end, before the rest is cancelled."""


class Servable(Reloadable, Protocol):
    """What the server needs of a Junction: its app, where its config comes from, a drain."""

    @property
    def source(self) -> ConfigSource | None: ...

    def asgi_app(self) -> ASGIApp: ...

    async def drain(self, grace: float) -> None: ...


def with_replica_header(app: ASGIApp, replica: str) -> ASGIApp:
    """`app` with every HTTP response naming the replica (or worker) that answered it, so a
    client, a test or an operator behind a load balancer can tell them apart."""
    header = (REPLICA_HEADER.encode(), replica.encode())

    async def named(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        await app(scope, receive, send_named)

    return named


GEN0_THRESHOLD = 7000
"""Tracked objects allocated (net) before the cyclic GC's youngest generation is collected:
ten times Python's default, above what 32 requests in flight keep alive, so under load the
collector no longer runs every few requests (measured: none in 20,000 requests at c=32,
against ~1,800 young and ~11 full collections with the default)."""


def settle_heap() -> None:
    """Once the server has started: move what startup made (~170k objects: the SDKs, the
    config, the catalogs) out of the collector's sight, and collect the young generation less
    often. Every full collection used to walk all of it, ~85 ms with every request in flight
    stalled, ~60 us of CPU a request at c=32 (`benchmarks/router_bench.py`)."""
    gc.collect()  # what startup left as garbage is freed now, not frozen for good
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(GEN0_THRESHOLD, young), older, oldest)


def uvicorn_server(
    junction: Servable,
    config: JunctionConfig,
    *,
    uds: str | None,
    sighup: bool,
    started: Callable[[], None] | None = None,
    advertise: str | None = None,
) -> Any:
    """A uvicorn server for the app that drains on shutdown and, while it serves, reloads the
    configuration when its file changes (and on SIGHUP when `sighup`: when Junction owns the
    process, never in an application that embeds it). `started` is called once it serves (a
    worker tells its supervisor). With `cluster.redis_url` or several workers, responses carry
    `x-junction-replica`; with `cluster.redis_url` a request for a session another replica
    owns goes there (`forward.py`), this replica being reached at `advertise` (default:
    `cluster.advertise_url`, else `server.host` and `server.port`; ValueError when neither
    names an address another replica can reach)."""
    import uvicorn
    from sse_starlette.sse import AppStatus
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from junction.http.head_with_body import head_held

    class Server(uvicorn.Server):
        # sse-starlette cuts every event stream (MCP, A2A, ACP's SSE variant) mid-body the
        # moment uvicorn sees the signal; while we serve, `drain` ends them properly instead.
        # Its switches are process-wide, so they are put back once this server has stopped.
        _sse_auto_drain = True
        _reloads: set[asyncio.Task[None]]

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self._sse_auto_drain = AppStatus.enable_automatic_graceful_drain
            AppStatus.enable_automatic_graceful_drain = False
            AppStatus.should_exit = False
            self._reloads = set()
            # Before the socket opens, so the watcher's first look precedes any edit a client
            # makes once it sees the server listening.
            source = junction.source
            if source is not None:
                self._spawn(watch_files(junction, source))
            if sighup:
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP, lambda: self._spawn(reload_and_log(junction, "SIGHUP"))
                )
            try:
                await super().startup(sockets)
            except BaseException:  # a failed bind: uvicorn exits without calling shutdown
                self._stop_reloads()
                raise
            if self.should_exit:  # the lifespan failed: likewise
                self._stop_reloads()
                return
            if sighup:  # Junction owns the process: an embedding application keeps its GC
                settle_heap()
            if sockets is not None:  # uvicorn logs only the sockets it bound itself
                self._log_started_message(sockets)
            if started is not None:
                started()

        def _stop_reloads(self) -> None:
            if sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            for task in list(self._reloads):  # the watcher, and a reload under way
                task.cancel()

        def _spawn(self, work: Any) -> None:
            task = asyncio.ensure_future(work)
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            self._stop_reloads()
            # Stop accepting first, then drain while the connections are still open: uvicorn's
            # own shutdown closes every WebSocket at once (code 1012) and cuts the rest after
            # its timeout, which is only the backstop here.
            for server in self.servers:
                server.close()
            # HTTP keep-alive connections: idle ones close now, busy ones after their response,
            # so a client's next request goes elsewhere (another replica, through the balancer)
            # instead of starting work here that the drain would cut. WebSockets stay open.
            for connection in list(self.server_state.connections):
                if type(connection).__module__.startswith("uvicorn.protocols.http."):
                    connection.shutdown()
            grace = junction.config.server.shutdown_grace_seconds
            if not self.force_exit:
                log.info("shutting down: in-flight work has up to %gs to finish", grace)
                draining = asyncio.ensure_future(junction.drain(grace))
                while not draining.done() and not self.force_exit:  # a second Ctrl-C forces
                    await asyncio.wait({draining}, timeout=0.1)
                if not draining.done():
                    log.warning("forced exit: in-flight work is not drained")
                    draining.cancel()
                    await asyncio.wait({draining})
                elif not draining.cancelled() and (error := draining.exception()) is not None:
                    log.error("draining in-flight work failed", exc_info=error)
            AppStatus.should_exit = True  # any event stream still open ends now
            try:
                await super().shutdown(sockets)
            finally:
                AppStatus.should_exit = False
                AppStatus.enable_automatic_graceful_drain = self._sse_auto_drain

        def _log_started_message(self, listeners: Sequence[socket.SocketType]) -> None:
            # One stable line (with the real port when --port 0) that people and tests can read.
            for listener in listeners:
                address = listener.getsockname()
                if isinstance(address, str):
                    log.info("listening on unix:%s", address)
                else:
                    log.info("listening on http://%s:%s", address[0], address[1])

    app = junction.asgi_app()
    if config.cluster.redis_url or config.server.workers > 1:
        app = with_replica_header(app, replica_id())
    if config.cluster.redis_url:
        from junction.cluster import advertise_url
        from junction.http.forward import Forwarder, Ownership

        me = advertise or advertise_url(
            config.cluster.advertise_url, config.server.host, config.server.port
        )
        registry = getattr(getattr(junction, "metrics", None), "registry", None)
        ownership = Ownership(config.cluster.redis_url, me, replica_id(), registry)
        app = Forwarder(app, ownership)
    return Server(
        uvicorn.Config(
            app,
            host=config.server.host,
            port=config.server.port,
            uds=uds,
            log_config=None,  # keep our stderr logging (uvicorn's default writes to stdout)
            access_log=False,
            http=head_held(AutoHTTPProtocol),  # a whole answer's head and body in one write
            ws="websockets-sansio",
            ws_max_size=config.server.max_message_bytes,
            lifespan="on",
            timeout_graceful_shutdown=SHUTDOWN_SETTLE_SECONDS,  # after Junction.drain
        )
    )


__all__ = [
    "SHUTDOWN_SETTLE_SECONDS",
    "Servable",
    "settle_heap",
    "uvicorn_server",
    "with_replica_header",
]
