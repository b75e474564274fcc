"""One live session on one connection: its record, history, tools scope and running turn.

Writes to the store are queued in order and not awaited on the hot path (see `acp.store`);
`flush()` waits for them, and every turn ends with a flush so a finished prompt is durable.
A write that fails is never acknowledged: the writes after it are dropped (what is stored
stays a prefix of what happened, with no holes), `flush()` raises, so the prompt answers an
error, and the next prompt first takes the history back from the store (`recover()`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from acp.paths import Roots
from acp.permissions import MODES
from acp.protocols import SessionToolProvider
from acp.runtime import AgentRuntime, Services, ServicesUnavailable
from acp.schema import (
    ClientCapabilities,
    McpServer,
    SessionConfigOption,
    SessionConfigSelectOption,
    SessionModeState,
    StopReason,
)
from acp.store import Entry, SessionRecord
from transports import INTERNAL_ERROR, JsonRpcPeer, PeerClosedError, RpcError

if TYPE_CHECKING:
    from acp.protocols import ToolProvider

log = logging.getLogger(__name__)

AGENTS_OPTION = "agents"
"""The boolean config option that offers (or withholds) the A2A agents; stored "on"/"off"."""

COMMANDS: tuple[tuple[str, str, str | None], ...] = (
    ("model", "Show the models, or switch to one", "model name"),
    ("mode", "Show the modes (ask, auto, read-only), or switch to one", "mode id"),
    ("tools", "List the tools the model can use in this session", None),
    ("agents", "List the remote A2A agents the model can ask", None),
)


class Session:
    """A session the client has created, loaded or resumed on this connection."""

    def __init__(
        self,
        record: SessionRecord,
        entries: list[Entry],
        *,
        peer: JsonRpcPeer,
        runtime: AgentRuntime,
        client: ClientCapabilities,
        services: Callable[[], Awaitable[Services]] | None = None,
    ) -> None:
        self.record = record
        self.services = services or runtime.services
        """The services this session may use (its connection's view of the runtime's)."""
        self.entries = entries
        self.peer = peer
        self.runtime = runtime
        self.client = client
        self.roots = Roots(record.cwd, record.additional_directories)
        self.turn: asyncio.Task[StopReason] | None = None
        self.notices: list[str] = []
        self.tool_scope: SessionToolProvider | None = None
        self._tools_settled = asyncio.Event()
        self._tools_settled.set()
        self._tools_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._unsaved_entries: list[Entry] = []
        self._unsaved_record: SessionRecord | None = None
        self._writing: asyncio.Future[None] | None = None
        self._failure: Exception | None = None
        """The first write that failed since the last `recover()`."""

    @property
    def id(self) -> str:
        return self.record.session_id

    @property
    def mode(self) -> str:
        return self.record.mode

    @property
    def model(self) -> str:
        return self.record.config.get("model") or "default"

    @property
    def agents_on(self) -> bool:
        """Whether the model is offered the A2A agents (the `agents` switch, on by default)."""
        return self.record.config.get(AGENTS_OPTION, "on") != "off"

    @property
    def running(self) -> bool:
        return self.turn is not None and not self.turn.done()

    # -- talking to the client ------------------------------------------------------------------

    async def send(self, update: dict[str, Any]) -> None:
        """One `session/update` notification."""
        await self.peer.notify("session/update", {"sessionId": self.id, "update": update})

    async def send_commands(self) -> None:
        """Advertise the slash commands (`available_commands_update`)."""
        commands: list[dict[str, Any]] = []
        for name, description, hint in COMMANDS:
            command: dict[str, Any] = {"name": name, "description": description}
            if hint:
                command["input"] = {"hint": hint}
            commands.append(command)
        with contextlib.suppress(ConnectionError):
            await self.send(
                {"sessionUpdate": "available_commands_update", "availableCommands": commands}
            )

    # -- state ----------------------------------------------------------------------------------

    def remember(self, *entries: Entry) -> None:
        """Add history entries (queued to the store, in order)."""
        self.entries.extend(entries)
        self._unsaved_entries.extend(entries)
        self._write_soon()

    def save(self, **changes: Any) -> None:
        """Update the record (queued to the store) and bump `updated_at`."""
        self.record = self.record.touched(**changes)
        self._unsaved_record = self.record
        self._write_soon()

    def _write_soon(self) -> None:
        if self._writing is None or self._writing.done():
            self._writing = asyncio.ensure_future(self._write_unsaved())

    async def _write_unsaved(self) -> None:
        """What is not stored yet, in one write: every entry queued and the latest record
        (`save_with_entries`), so the end of a turn (its answer, then the record) costs one
        round trip to PostgreSQL, not one per write. What was queued meanwhile goes next;
        nothing goes after a failure."""
        while self._failure is None and (self._unsaved_entries or self._unsaved_record is not None):
            entries, self._unsaved_entries = self._unsaved_entries, []
            record, self._unsaved_record = self._unsaved_record, None
            store = self.runtime.store
            try:
                if record is None:
                    await store.append(self.id, entries)
                else:
                    await store.save_with_entries(record, entries)
            except Exception as exc:
                log.exception("session %s: saving to the store failed", self.id)
                self._failure = exc

    async def flush(self) -> None:
        """Wait for every queued write; raise RpcError if one failed (see `recover`)."""
        while self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)
        if self._failure is not None:
            raise RpcError(
                INTERNAL_ERROR,
                f"saving session {self.id!r} failed ({type(self._failure).__name__}: "
                f"{self._failure}); what it did since is missing from its stored history",
            )

    async def recover(self) -> None:
        """After a failed write: continue from the history as stored, so the model sees what
        a later `session/load` would show (raises RpcError if the store still fails). The
        record is whole in memory; its next `save` stores it all again."""
        if self._failure is None:
            return
        while self._writing is not None and not self._writing.done():
            await asyncio.shield(self._writing)
        self._unsaved_entries.clear()  # after the failure: dropped, the stored history rules
        try:
            self.entries = await self.runtime.store.history(self.id)
        except Exception as exc:
            log.exception("session %s: reading the history back failed", self.id)
            raise RpcError(
                INTERNAL_ERROR,
                f"session {self.id!r} cannot continue: its store fails "
                f"({type(exc).__name__}: {exc})",
            ) from None
        self._failure = None

    def modes(self) -> SessionModeState:
        return SessionModeState(current_mode_id=self.mode, available_modes=list(MODES))

    def config_options(self, models: Sequence[str]) -> list[SessionConfigOption]:
        names = list(dict.fromkeys([*models, self.model]))
        return [
            SessionConfigOption(
                id="mode",
                name="Mode",
                category="mode",
                description="When tools need your permission",
                current_value=self.mode,
                options=[
                    SessionConfigSelectOption(value=m.id, name=m.name, description=m.description)
                    for m in MODES
                ],
            ),
            SessionConfigOption(
                id="model",
                name="Model",
                category="model",
                current_value=self.model,
                options=[SessionConfigSelectOption(value=name, name=name) for name in names],
            ),
            self._agents_option(),
        ]

    def _agents_option(self) -> SessionConfigOption:
        """The `agents` switch: a boolean for a client that takes them, else an on/off select
        (the spec's fallback for older clients)."""
        description = "Let the model hand tasks to the remote A2A agents Junction knows"
        if self.client.boolean_options:
            return SessionConfigOption(
                id=AGENTS_OPTION,
                name="Remote agents",
                type="boolean",
                description=description,
                current_value=self.agents_on,
            )
        return SessionConfigOption(
            id=AGENTS_OPTION,
            name="Remote agents",
            description=description,
            current_value="on" if self.agents_on else "off",
            options=[
                SessionConfigSelectOption(value="on", name="On"),
                SessionConfigSelectOption(value="off", name="Off"),
            ],
        )

    # -- session-scoped MCP servers -------------------------------------------------------------

    def open_tools(self, servers: Sequence[McpServer]) -> None:
        """Connect the client's MCP servers in the background; failures become notices."""
        if not servers:
            return
        self._tools_settled.clear()
        self._tools_task = asyncio.create_task(
            self._hold_tools(list(servers)), name=f"acp session tools {self.id}"
        )

    async def _hold_tools(self, servers: list[McpServer]) -> None:
        names = ", ".join(s.name for s in servers)
        try:
            services = await self.services()
            if services.session_tools is None:
                self.notice(
                    f"The MCP servers this session asked for ({names}) were not started: this "
                    "Junction has no MCP gateway configured."
                )
                return
            tools = services.session_tools  # roots: what the servers' roots/list gets
            async with tools.open(servers, cwd=self.record.cwd, roots=self.roots.all) as scope:
                self.tool_scope = scope
                self._tools_settled.set()
                for problem in await scope.startup_problems():
                    self.notice(f"MCP server failed to start: {problem}")
                await self._closing.wait()
        except asyncio.CancelledError:
            raise
        except (ServicesUnavailable, PermissionError) as exc:
            self.notice(f"The MCP servers of this session ({names}) were not started: {exc}")
        except Exception as exc:
            log.exception("session %s: MCP servers failed", self.id)
            self.notice(f"The MCP servers of this session ({names}) failed: {exc}")
        finally:
            self.tool_scope = None
            self._tools_settled.set()

    def notice(self, text: str) -> None:
        """Tell the user something at the start of the next turn (and keep it in history)."""
        log.warning("session %s: %s", self.id, text)
        self.notices.append(text)

    async def tools_provider(self, fallback: ToolProvider | None) -> ToolProvider | None:
        """The session's tool scope once it is open, else the global tools."""
        await self._tools_settled.wait()
        return self.tool_scope if self.tool_scope is not None else fallback

    # -- ending ---------------------------------------------------------------------------------

    def cancel(self) -> None:
        """Cancel the running turn, if any (its prompt answers `cancelled`)."""
        if self.turn is not None and not self.turn.done():
            self.turn.cancel()

    async def close(self) -> None:
        """Cancel work, stop the session's MCP servers, and make the history durable."""
        self.cancel()
        if self.turn is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self.turn), timeout=5)
        self._closing.set()
        if self._tools_task is not None:
            try:
                await asyncio.wait_for(self._tools_task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                self._tools_task.cancel()
            except Exception:
                log.exception("session %s: stopping MCP servers failed", self.id)
        with contextlib.suppress(RpcError):  # logged, and told to the prompt that lost it
            await self.flush()


__all__ = ["AGENTS_OPTION", "COMMANDS", "PeerClosedError", "Session"]
