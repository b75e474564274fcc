"""What every ACP connection of one process shares: settings, the store, and the services.

The services (model client, MCP tools, A2A agents) start in the background after the first
`initialize` has been answered: their imports alone (aiohttp, the `mcp` SDK) would cost more than
the whole cold-start budget. Sessions wait for them when they first need them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from acp.protocols import AgentDirectory, ModelClient, SessionTools, ToolProvider
from acp.settings import AgentSettings
from acp.store import SessionStore

log = logging.getLogger(__name__)

WARM_IMPORTS = ("acp.turn",)
"""Imported on a worker thread right after `initialize` is answered."""


@dataclass
class Services:
    """The parts of Junction a session calls into."""

    models: ModelClient
    tools: ToolProvider | None = None
    session_tools: SessionTools | None = None
    agents: AgentDirectory | None = None


Lifespan = Callable[[], AbstractAsyncContextManager[Services]]
"""Starts the services and stops them when the block exits (entered once, in one task)."""


class ServicesUnavailable(RuntimeError):
    """The services failed to start; the message says why."""


class Connection(Protocol):
    """What the runtime needs of a live connection to shut it down and count its sessions
    (`AgentConnection`)."""

    @property
    def sessions(self) -> Mapping[str, object]:
        """The sessions open on it, by id."""
        ...

    @property
    def busy(self) -> bool:
        """Whether a prompt turn is running on it."""
        ...

    async def forget(self, session_id: str) -> None:
        """Close the session if it is open on this connection (it is being deleted)."""
        ...

    async def shut_down(self, timeout: float) -> None:
        """Cancel running prompts (they answer `cancelled`), then close the connection."""
        ...


class AgentRuntime:
    """Shared state of the agent; `start()` is idempotent and cheap to call."""

    def __init__(
        self,
        settings: AgentSettings,
        store: SessionStore,
        lifespan: Lifespan,
        *,
        warm_imports: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self._lifespan = lifespan
        self._warm = (*WARM_IMPORTS, *warm_imports)
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[Services] | None = None
        self._stop: asyncio.Event | None = None
        self._connections: set[Connection] = set()
        self.accepting = True
        """False once a server shutdown has begun: new prompts are refused."""
        self.sessions_created = 0
        """`session/new` answered, on every connection (for `/metrics`)."""
        self.turns: dict[str, int] = {}
        """Prompt turns ended, by stop reason (`error` for a turn that failed)."""
        self.models_hint: tuple[str, ...] | None = None
        """The models the configuration names itself (stdio), which a session is offered while
        the services are still starting: an editor's first `session/new` comes right after
        `initialize`, and its answer needs only the model list, not the router (aiohttp) that
        would give the same list ~0.15 s later. None: only the router can tell."""

    def start(self) -> None:
        """Begin starting the services in the background (no-op once started)."""
        if self._task is not None:
            return
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._stop = asyncio.Event()
        self._task = loop.create_task(self._run(), name="acp services")

    @property
    def starting(self) -> bool:
        """Whether the services have not come up (or failed) yet."""
        return self._ready is None or not self._ready.done()

    async def services(self) -> Services:
        """The running services; raises ServicesUnavailable if they could not start."""
        self.start()
        assert self._ready is not None
        return await asyncio.shield(self._ready)

    async def _run(self) -> None:
        assert self._ready is not None and self._stop is not None
        try:
            await asyncio.to_thread(_import_all, self._warm)
            async with self._lifespan() as services:
                self._ready.set_result(services)
                await self._stop.wait()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the agent's services failed")
            if not self._ready.done():
                self._ready.set_exception(ServicesUnavailable(f"{type(exc).__name__}: {exc}"))
        finally:
            if not self._ready.done():
                self._ready.set_exception(ServicesUnavailable("the agent is shutting down"))

    # -- connections, for a graceful server shutdown ---------------------------------------------

    def attach(self, connection: Connection) -> None:
        self._connections.add(connection)

    def detach(self, connection: Connection) -> None:
        self._connections.discard(connection)

    def open_sessions(self) -> int:
        """Sessions open now on all connections."""
        return sum(len(connection.sessions) for connection in self._connections)

    async def forget(self, session_id: str) -> None:
        """Close the session on every connection that has it open (before it is deleted, so
        no queued write of it lands after the delete)."""
        await asyncio.gather(*(c.forget(session_id) for c in list(self._connections)))

    def turn_ended(self, stop: str) -> None:
        self.turns[stop] = self.turns.get(stop, 0) + 1

    @property
    def busy(self) -> bool:
        """Whether any connection is running a prompt turn."""
        return any(connection.busy for connection in self._connections)

    def stop_accepting(self) -> None:
        """A shutdown began: running turns may finish, new prompts get an error."""
        self.accepting = False

    async def drain(self, timeout: float) -> None:
        """End every connection for a shutdown: running prompts are cancelled and answer
        `stopReason: cancelled` (like `session/cancel`, so their history is kept), other
        requests get -32800, then each connection closes. Returns within about `timeout`
        seconds plus the peers' close grace."""
        self.accepting = False
        connections = list(self._connections)
        if connections:
            await asyncio.gather(
                *(connection.shut_down(timeout) for connection in connections),
                return_exceptions=True,
            )

    async def aclose(self) -> None:
        """Stop the services and close the store."""
        if self._task is not None and self._stop is not None:
            self._stop.set()
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception:
                log.exception("stopping the agent's services failed")
        if self._ready is not None and self._ready.done() and not self._ready.cancelled():
            self._ready.exception()  # mark retrieved
        await self.store.aclose()


def _import_all(modules: Sequence[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:
            log.exception("warm-up import of %s failed", name)


__all__ = ["AgentRuntime", "Connection", "Lifespan", "Services", "ServicesUnavailable"]
