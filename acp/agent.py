"""The agent side of one ACP connection: the methods a client calls, and the sessions it opens.

`serve_connection(stream, runtime)` is all a transport needs: stdio, a WebSocket or an SSE pair
each give a `MessageStream`, and many connections may share one `AgentRuntime`.

Nothing here imports router_core (but its stdlib-only `tracing`) or the turn loop at module
level: `initialize` is answered with only the wire types loaded, and the rest loads in the
background after it.

A W3C trace context in the `_meta` of `session/new`, `session/load`, `session/resume` or
`session/prompt` is active while that request runs, and in the turn it starts, so the model
and tool calls it makes carry it upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from acp.handshake import initialize_result
from acp.permissions import MODE_IDS, MODES
from acp.prompt import PromptError, check_prompt
from acp.runtime import AgentRuntime, Services, ServicesUnavailable
from acp.schema import (
    AuthenticateRequest,
    AuthMethod,
    ClientCapabilities,
    Empty,
    Implementation,
    InitializeRequest,
    ListSessionsRequest,
    ListSessionsResponse,
    LoadSessionRequest,
    NewSessionRequest,
    PromptRequest,
    PromptResponse,
    ResumeSessionRequest,
    SessionIdParams,
    SessionInfo,
    SessionSetupResponse,
    SetSessionConfigOptionRequest,
    SetSessionConfigOptionResponse,
    SetSessionModeRequest,
    StopReason,
    WireModel,
)
from acp.session import AGENTS_OPTION, Session
from acp.settings import Credential
from acp.store import InvalidCursorError, SessionRecord
from router_core import tracing
from router_core.semconv import acp_turn_attributes, acp_turn_result
from transports import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    JsonRpcPeer,
    MessageStream,
    RpcError,
)

log = logging.getLogger(__name__)

RESOURCE_NOT_FOUND = -32002
"""ACP's error code for an unknown session (or other missing resource)."""
AUTH_REQUIRED = -32000
"""ACP's error code for a request that needs authentication first."""

_Params = TypeVar("_Params", bound=WireModel)
_Result = TypeVar("_Result")


def _traced(
    handler: Callable[[AgentConnection, _Params], Awaitable[_Result]],
) -> Callable[[AgentConnection, _Params], Awaitable[_Result]]:
    """Run the handler with the trace context in its params' `_meta`, if any (a malformed
    one is ignored); tasks it starts, such as a prompt's turn, keep that context."""

    @functools.wraps(handler)
    async def traced(self: AgentConnection, params: _Params) -> _Result:
        trace = tracing.from_meta(params.meta)
        if trace is None:
            return await handler(self, params)
        with tracing.active(trace):
            return await handler(self, params)

    return traced


class AgentConnection:
    """Serves ACP's agent methods on one peer; owns the sessions opened through it."""

    def __init__(
        self,
        peer: JsonRpcPeer,
        runtime: AgentRuntime,
        *,
        scope: ServiceScope | None = None,
        owner: str | None = None,
        credential: Credential | None = None,
    ) -> None:
        self.peer = peer
        self.runtime = runtime
        self._scope = scope
        self.credential = credential
        self.signed_out = False
        """After `logout`: session methods answer auth_required until `authenticate`."""
        self.owner = owner
        """Whose sessions this connection sees (a remote client's API key name)."""
        self.client = ClientCapabilities()
        self.client_info: Implementation | None = None
        self.sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._prompts: dict[asyncio.Task[Any], Session] = {}
        """Running `session/prompt` requests (the tasks that also send their answers)."""
        peer.on("initialize", self.initialize, InitializeRequest)
        peer.on("authenticate", self.authenticate, AuthenticateRequest)
        peer.on("session/new", self.new_session, NewSessionRequest)
        peer.on("session/load", self.load_session, LoadSessionRequest)
        peer.on("session/resume", self.resume_session, ResumeSessionRequest)
        peer.on("session/list", self.list_sessions, ListSessionsRequest)
        peer.on("session/close", self.close_session, SessionIdParams)
        peer.on("session/delete", self.delete_session, SessionIdParams)
        peer.on("session/prompt", self.prompt, PromptRequest)
        peer.on("session/cancel", self.cancel, SessionIdParams)
        peer.on("session/set_mode", self.set_mode, SetSessionModeRequest)
        peer.on("session/set_config_option", self.set_config_option, SetSessionConfigOptionRequest)
        if credential is not None:
            peer.on("logout", self.logout, Empty)

    def on_extension(self, method: str, handler: Callable[[Any], Awaitable[Any]]) -> None:
        """Serve an `_`-prefixed extension method (unhandled ones get -32601)."""
        if not method.startswith("_"):
            raise ValueError(f"extension methods start with '_': {method!r}")
        self.peer.on(method, handler)

    # -- initialization -------------------------------------------------------------------------

    async def initialize(self, params: InitializeRequest) -> dict[str, Any]:
        self.client = params.client_capabilities
        self.client_info = params.client_info
        # Start loading the services only after this answer has been written.
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self.runtime.start)
        settings = self.runtime.settings
        return initialize_result(
            name=settings.name,
            title=settings.title,
            version=settings.version,
            image=settings.image_prompts,
            auth_methods=[method.wire() for method in self._auth_methods()],
            logout=self.credential is not None,
        )

    def _auth_methods(self) -> list[AuthMethod]:
        methods = list(self.runtime.settings.auth_methods)
        if self.credential is not None:
            methods.append(self.credential.method)
        return methods

    async def authenticate(self, params: AuthenticateRequest) -> dict[str, Any]:
        """The connection's credential (checked again: a token may have expired) signs it
        in again after a `logout`; another advertised method has nothing more to do."""
        if not any(method.id == params.method_id for method in self._auth_methods()):
            raise RpcError(INVALID_PARAMS, f"unknown authentication method {params.method_id!r}")
        if self.credential is not None and params.method_id == self.credential.method.id:
            problem = self.credential.problem(time.time())
            if problem is not None:
                raise RpcError(AUTH_REQUIRED, f"authentication failed: {problem}")
            self.signed_out = False
        return {}

    async def logout(self, params: Empty) -> dict[str, Any]:
        """End this connection's sign-in: its sessions close (they stay stored), and session
        methods answer auth_required until `authenticate` (the credential itself is the
        transport's: a client drops it by reconnecting without it)."""
        self.signed_out = True
        sessions, self.sessions = list(self.sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        return {}

    def _signed_in(self) -> None:
        if self.signed_out:
            raise RpcError(
                AUTH_REQUIRED,
                "authentication required: this connection logged out; call authenticate "
                f"with {self.credential.method.id if self.credential else 'a method'!r}",
            )

    # -- session setup --------------------------------------------------------------------------

    @_traced
    async def new_session(self, params: NewSessionRequest) -> SessionSetupResponse:
        self._signed_in()
        cwd, extra = _directories(params)
        models = await self._models()
        model = self.runtime.settings.default_model or (models[0] if models else "default")
        if models and model not in models:  # the connection may not use the default
            model = models[0]
        record = SessionRecord(
            session_id=f"sess_{uuid.uuid4().hex}",
            cwd=cwd,
            additional_directories=tuple(extra),
            mode=self.runtime.settings.default_mode,
            config={"model": model},
            owner=self.owner,
        )
        await self.runtime.store.save(record)
        self.runtime.sessions_created += 1
        session = self._open(record, [])
        session.open_tools(params.mcp_servers)
        self._after_response(session.send_commands())
        return SessionSetupResponse(
            session_id=record.session_id,
            modes=session.modes(),
            config_options=session.config_options(models),
        )

    @_traced
    async def load_session(self, params: LoadSessionRequest) -> SessionSetupResponse:
        self._signed_in()
        session = await self._restore(params)
        from acp.history import replay_updates

        for update in replay_updates(session.entries):
            await session.send(update)
        # Every update of a load goes before its response (ACP-LOAD-002), the commands too.
        await session.send_commands()
        return await self._setup_response(session)

    @_traced
    async def resume_session(self, params: ResumeSessionRequest) -> SessionSetupResponse:
        self._signed_in()
        session = await self._restore(params)
        self._after_response(session.send_commands())
        return await self._setup_response(session)

    async def _restore(self, params: LoadSessionRequest | ResumeSessionRequest) -> Session:
        cwd, extra = _directories(params)
        record = await self.runtime.store.get(params.session_id)
        if record is None or record.owner != self.owner:  # another key's: as if unknown
            raise RpcError(RESOURCE_NOT_FOUND, f"unknown session {params.session_id!r}")
        live = self.sessions.pop(params.session_id, None)
        if live is not None:
            await live.close()
        entries = await self.runtime.store.history(params.session_id)
        record = record.touched(cwd=cwd, additional_directories=tuple(extra))
        await self.runtime.store.save(record)
        session = self._open(record, entries)
        session.open_tools(params.mcp_servers)
        return session

    async def _setup_response(self, session: Session) -> SessionSetupResponse:
        return SessionSetupResponse(
            modes=session.modes(), config_options=session.config_options(await self._models())
        )

    def _open(self, record: SessionRecord, entries: list[dict[str, Any]]) -> Session:
        session = Session(
            record,
            entries,
            peer=self.peer,
            runtime=self.runtime,
            client=self.client,
            services=self.services,
        )
        self.sessions[record.session_id] = session
        return session

    async def list_sessions(self, params: ListSessionsRequest) -> ListSessionsResponse:
        self._signed_in()
        cwd = _absolute("cwd", params.cwd) if params.cwd is not None else None
        try:
            records, cursor = await self.runtime.store.list(
                cwd=cwd,
                cursor=params.cursor,
                limit=self.runtime.settings.list_page_size,
                owner=self.owner,
            )
        except InvalidCursorError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        return ListSessionsResponse(
            sessions=[
                SessionInfo(
                    session_id=r.session_id,
                    cwd=r.cwd,
                    additional_directories=list(r.additional_directories) or None,
                    title=r.title,
                    updated_at=r.updated_at,
                )
                for r in records
            ],
            next_cursor=cursor,
        )

    async def close_session(self, params: SessionIdParams) -> dict[str, Any]:
        session = self.sessions.pop(params.session_id, None)
        if session is None:
            raise RpcError(
                RESOURCE_NOT_FOUND,
                f"session {params.session_id!r} is not active on this connection",
            )
        await session.close()
        return {}

    async def delete_session(self, params: SessionIdParams) -> dict[str, Any]:
        """Remove the session and its history from the store. An unknown id (or another key's
        session) succeeds and changes nothing, as the spec asks of a repeated delete."""
        self._signed_in()
        record = await self.runtime.store.get(params.session_id)
        if record is None or record.owner != self.owner:
            return {}
        await self.runtime.forget(params.session_id)
        await self.runtime.store.delete(params.session_id)
        return {}

    async def forget(self, session_id: str) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None:
            await session.close()

    # -- prompt turns ---------------------------------------------------------------------------

    @_traced
    @tracing.traced(  # the turn's span (no-op with tracing off), under the caller's context
        "invoke_agent junction",
        "server",
        lambda self, params: acp_turn_attributes(params.session_id),
        acp_turn_result,
    )
    async def prompt(self, params: PromptRequest) -> PromptResponse:
        self._signed_in()
        session = self._session(params.session_id)
        if not self.runtime.accepting:
            raise RpcError(
                INTERNAL_ERROR, "the agent is shutting down; send the prompt again once it is back"
            )
        try:
            check_prompt(
                params.prompt,
                image=self.runtime.settings.image_prompts,
                max_image_bytes=self.runtime.settings.max_image_bytes,
            )
        except PromptError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        await session.recover()
        if session.running:
            raise RpcError(
                INVALID_REQUEST,
                f"session {session.id!r} is already running a prompt; wait for its response "
                "or send session/cancel first",
            )
        from acp.turn import TurnFailed, run_turn

        turn = asyncio.create_task(
            run_turn(session, [block.wire() for block in params.prompt]),
            name=f"acp turn {session.id}",
        )
        session.turn = turn
        turn.add_done_callback(self._turn_done)
        request = asyncio.current_task()
        if request is not None:  # done once the answer has been sent (see shut_down)
            self._prompts[request] = session
            request.add_done_callback(self._prompt_done)
        stop: StopReason
        try:
            try:
                stop = await asyncio.shield(turn)
            except asyncio.CancelledError:
                # $/cancel_request for the prompt, or the connection is ending: the turn winds
                # down and the prompt still answers with a stop reason rather than an error.
                turn.cancel()
                try:
                    stop = await turn
                except asyncio.CancelledError:
                    stop = "cancelled"
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
        except TurnFailed as exc:
            raise RpcError(INTERNAL_ERROR, str(exc)) from None
        return PromptResponse(stop_reason=stop)

    async def cancel(self, params: SessionIdParams) -> None:
        session = self.sessions.get(params.session_id)
        if session is None:
            log.info("session/cancel for unknown session %r ignored", params.session_id)
            return
        session.cancel()

    # -- modes and config options ---------------------------------------------------------------

    async def set_mode(self, params: SetSessionModeRequest) -> dict[str, Any]:
        session = self._session(params.session_id)
        if params.mode_id not in MODE_IDS:
            known = ", ".join(m.id for m in MODES)
            raise RpcError(INVALID_PARAMS, f"unknown mode {params.mode_id!r} (modes: {known})")
        await session.recover()
        session.save(mode=params.mode_id)
        await session.send(
            {"sessionUpdate": "current_mode_update", "currentModeId": params.mode_id}
        )
        await self._send_config(session)
        await session.flush()
        return {}

    async def set_config_option(
        self, params: SetSessionConfigOptionRequest
    ) -> SetSessionConfigOptionResponse:
        session = self._session(params.session_id)
        value = params.value
        if params.config_id == AGENTS_OPTION:
            value = _switch(value, params.type)
        elif not isinstance(value, str) or params.type == "boolean":
            raise RpcError(INVALID_PARAMS, f"option {params.config_id!r} takes a string value")
        models = await self._models()
        await session.recover()
        if params.config_id == "mode":
            if value not in MODE_IDS:
                raise RpcError(INVALID_PARAMS, f"unknown mode {value!r}")
            session.save(mode=value)
            await session.send({"sessionUpdate": "current_mode_update", "currentModeId": value})
        elif params.config_id == "model":
            if models and value not in models:
                raise RpcError(
                    INVALID_PARAMS, f"unknown model {value!r} (models: {', '.join(models)})"
                )
            session.save(config={**session.record.config, "model": value})
        elif params.config_id == AGENTS_OPTION:
            session.save(config={**session.record.config, AGENTS_OPTION: value})
        else:
            raise RpcError(INVALID_PARAMS, f"unknown config option {params.config_id!r}")
        options = session.config_options(models)
        await session.send(
            {"sessionUpdate": "config_option_update", "configOptions": [o.wire() for o in options]}
        )
        await session.flush()
        return SetSessionConfigOptionResponse(config_options=options)

    async def _send_config(self, session: Session) -> None:
        options = session.config_options(await self._models())
        await session.send(
            {"sessionUpdate": "config_option_update", "configOptions": [o.wire() for o in options]}
        )

    # -- helpers --------------------------------------------------------------------------------

    def _session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is not None:
            return session
        if not self.sessions:
            raise RpcError(
                RESOURCE_NOT_FOUND,
                f"unknown session {session_id!r}: no session is open on this connection "
                "(call session/new or session/load first)",
            )
        raise RpcError(RESOURCE_NOT_FOUND, f"unknown session {session_id!r}")

    async def services(self) -> Services:
        """The runtime's services as this connection may use them (see `ServiceScope`)."""
        services = await self.runtime.services()
        return self._scope(services) if self._scope is not None else services

    async def _models(self) -> list[str]:
        hint = self.runtime.models_hint
        if hint is not None and self._scope is None and self.runtime.starting:
            return list(hint)  # what the router will list too, without waiting for it
        try:
            services = await self.services()
        except ServicesUnavailable:
            return []
        try:
            async with asyncio.timeout(self.runtime.settings.models_timeout):
                return list(await services.models.models())
        except Exception as exc:
            log.warning("could not list models: %s", exc)
            return []

    def _after_response(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the current request's response has been queued for sending."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _prompt_done(self, request: asyncio.Task[Any]) -> None:
        self._prompts.pop(request, None)

    def _turn_done(self, turn: asyncio.Task[StopReason]) -> None:
        """Count the turn by how it ended (the prompt request reads its result)."""
        if turn.cancelled():
            self.runtime.turn_ended("cancelled")
        elif turn.exception() is not None:
            self.runtime.turn_ended("error")
        else:
            self.runtime.turn_ended(turn.result())

    @property
    def busy(self) -> bool:
        """Whether a prompt turn is running on this connection."""
        return bool(self._prompts)

    async def shut_down(self, timeout: float) -> None:
        """The server is stopping: cancel running prompts, give their answers (`cancelled`) up
        to `timeout` seconds to go out, then close the connection (requests still running get
        -32800, the transport closes normally)."""
        running = list(self._prompts.items())
        for _, session in running:
            session.cancel()
        if running:
            await asyncio.wait([request for request, _ in running], timeout=timeout)
        await self.peer.aclose()

    async def aclose(self) -> None:
        """The connection ended: cancel turns, stop session servers, flush the store."""
        sessions, self.sessions = list(self.sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()


def _switch(value: str | bool, kind: str | None) -> str:
    """An on/off option's value as stored ("on"/"off"): a boolean sent as `type: "boolean"`,
    or the select fallback's "on"/"off" for clients without boolean options."""
    if isinstance(value, bool):
        if kind != "boolean":
            raise RpcError(INVALID_PARAMS, 'a boolean value needs "type": "boolean"')
        return "on" if value else "off"
    if value not in ("on", "off") or kind == "boolean":
        raise RpcError(INVALID_PARAMS, f'option {AGENTS_OPTION!r} takes true/false (or "on"/"off")')
    return value


def _directories(params: NewSessionRequest) -> tuple[str, list[str]]:
    """The session's cwd and additional roots, checked before anything is stored: ACP requires
    absolute paths, and no path (nor any MCP server field) can hold a NUL byte."""
    cwd = _absolute("cwd", params.cwd)
    extra = [_absolute("additionalDirectories", d) for d in params.additional_directories]
    for i, server in enumerate(params.mcp_servers):
        where = _nul_in(server.wire(), f"mcpServers[{i}]")
        if where is not None:
            raise RpcError(INVALID_PARAMS, f"{where} contains a NUL byte")
    return cwd, extra


def _absolute(name: str, path: str) -> str:
    """`path` normalised, or -32602 naming `name` if it is not a usable absolute path."""
    if "\x00" in path:
        raise RpcError(INVALID_PARAMS, f"{name} contains a NUL byte: {path!r}")
    if not os.path.isabs(path):
        raise RpcError(INVALID_PARAMS, f"{name} must be an absolute path, got {path!r}")
    return os.path.normpath(path)


def _nul_in(value: Any, where: str) -> str | None:
    """Where in `value` (wire JSON) a string holds a NUL byte, if anywhere."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        items = [(f"{where}.{key}", item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f"{where}[{i}]", item) for i, item in enumerate(value)]
    else:
        return None
    for inner, item in items:
        found = _nul_in(item, inner)
        if found is not None:
            return found
    return None


async def serve_connection(
    stream: MessageStream,
    runtime: AgentRuntime,
    *,
    scope: ServiceScope | None = None,
    owner: str | None = None,
    credential: Credential | None = None,
) -> None:
    """Serve one ACP client on `stream` until it goes away (with `scope` narrowing what it may
    use, `owner` whose sessions it sees, for the API key it connected with, and `credential`
    that key or token, which `authenticate`/`logout` act on)."""
    peer = JsonRpcPeer(stream)
    connection = AgentConnection(peer, runtime, scope=scope, owner=owner, credential=credential)
    runtime.attach(connection)
    try:
        await peer.run()
    finally:
        runtime.detach(connection)
        with contextlib.suppress(Exception):
            await asyncio.shield(connection.aclose())


ServiceScope = Callable[[Services], Services]
"""Narrows the shared services for one connection (the models, tools and agents an API key may
use); applied each time the connection or its sessions reach for them."""

__all__ = [
    "AUTH_REQUIRED",
    "RESOURCE_NOT_FOUND",
    "AgentConnection",
    "ServiceScope",
    "serve_connection",
]
