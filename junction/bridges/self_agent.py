"""Junction's own A2A agent (`a2a.self_agent`): tasks the hub routes to it run the ACP turn loop.

The hub sees an ordinary agent (it is registered with `Registry.add_local` and answers the
A2A methods the hub calls on any agent), so routing, the task store, streaming, resubscribe,
cancel and push work as they do for remote agents. Each A2A context is one ACP session of a
runtime of its own, spoken to over an in-memory JSON-RPC connection: the same turn loop as an
IDE's prompts, with models through the router, tools from the aggregated MCP servers (those the
config lets it use) and the other A2A agents (never itself). ACP `session/update`s become A2A
status and artifact updates.

Nobody is there to answer a permission request, so `ask` means deny (`AgentSettings.unattended`).
When the model needs something only the caller can give, it calls `ask_caller`: the task then
ends its turn in `input-required`, and the caller's next message on that task continues the
session. Loops between hubs are stopped by the hub's `junction/via` path, which this agent copies
onto every task it sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

import orjson

from junction.build import hub_settings
from junction.caller import CALLER
from junction.config import JunctionConfig, SelfAgentConfig

if TYPE_CHECKING:
    from acp import AgentRuntime, Services
    from acp.protocols import (
        AgentInfo,
        AgentProgress,
        AgentQuestion,
        ClientRequestFn,
        ProgressCallback,
        ToolInfo,
        ToolProvider,
    )
    from junction.bridges.acp_services import PoolDirectory
    from mcp_gateway import Gateway
    from router_core import Router
    from transports import JsonRpcPeer

log = logging.getLogger("junction.self_agent")

VIA_KEY = "junction/via"
"""Message metadata: the hub ids a message has passed through (the hub stamps and checks it)."""
ASK_TOOL = "ask_caller"
NOT_ITS_TOOL = "is not a tool this agent may use"
UNATTENDED = "nobody can approve tool calls for an A2A task, so calls that need approval are denied"

SELF_AGENT_PROMPT = (
    "You are {name}, an agent that answers tasks other agents send over the A2A protocol. "
    "Work with the tools you are given and answer with the result itself. If you need "
    f"information only the sender can give, call `{ASK_TOOL}` with your question and then stop."
)

WORKING = "TASK_STATE_WORKING"
SUBMITTED = "TASK_STATE_SUBMITTED"
COMPLETED = "TASK_STATE_COMPLETED"
FAILED = "TASK_STATE_FAILED"
CANCELED = "TASK_STATE_CANCELED"
REJECTED = "TASK_STATE_REJECTED"
INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
_DONE = frozenset({COMPLETED, FAILED, CANCELED, REJECTED})
FORGET_AFTER = 600.0
"""Seconds a settled task stays in memory (for GetTask/SubscribeToTask straight from here)."""
_PAUSED = _DONE | {INPUT_REQUIRED}
_GRANT_FIELDS = ("principal", "scopes", "allowed_models", "allowed_mcp_tools", "allowed_a2a_agents")
"""What tells API keys apart for the self-agent: one connection per distinct caller."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _agent_message(text: str, task: _Task) -> dict[str, Any]:
    return {
        "messageId": uuid.uuid4().hex,
        "role": "ROLE_AGENT",
        "parts": [{"text": text}],
        "taskId": task.id,
        "contextId": task.context_id,
    }


def _prompt_blocks(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An A2A message as ACP prompt content: text as text, data as JSON text, files as links."""
    blocks: list[dict[str, Any]] = []
    for part in message.get("parts") or []:
        if not isinstance(part, Mapping):
            continue
        if isinstance(part.get("text"), str):
            blocks.append({"type": "text", "text": part["text"]})
        elif "data" in part:
            blocks.append({"type": "text", "text": orjson.dumps(part["data"]).decode()})
        elif isinstance(part.get("url"), str):
            name = str(part.get("filename") or part["url"])
            blocks.append({"type": "resource_link", "uri": part["url"], "name": name})
        elif "raw" in part:
            name = part.get("filename") or "file"
            blocks.append({"type": "text", "text": f"(an attached file {name!r} was not read)"})
    return blocks or [{"type": "text", "text": ""}]


@dataclass(eq=False)
class _Task:
    """One A2A task of this agent: the state the hub asks for, and who is watching it."""

    id: str
    context_id: str
    via: list[str]
    peer: JsonRpcPeer
    """The connection its session lives on: the one for its caller's API key and limits."""
    state: str = SUBMITTED
    status_message: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    watchers: set[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=set)
    runner: asyncio.Task[None] | None = None
    turns: int = 0
    question: str | None = None
    failure: str | None = None
    calls: dict[str, tuple[str, Any]] = field(default_factory=dict)
    answer: str | None = None
    """The artifact id the current turn's text streams into (None until the first chunk)."""

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"state": self.state, "timestamp": _now()}
        if self.status_message is not None:
            status["message"] = self.status_message
        return status

    def snapshot(self) -> dict[str, Any]:
        task: dict[str, Any] = {
            "id": self.id,
            "contextId": self.context_id,
            "status": self.status(),
            "history": list(self.history),
        }
        if self.artifacts:
            task["artifacts"] = list(self.artifacts.values())
        return task

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self.watchers:
            queue.put_nowait(event)

    def set_state(self, state: str, text: str | None = None) -> None:
        self.state = state
        self.status_message = _agent_message(text, self) if text else None
        if self.status_message is not None:
            self.history.append(self.status_message)
        self.publish(
            {
                "statusUpdate": {
                    "taskId": self.id,
                    "contextId": self.context_id,
                    "status": self.status(),
                }
            }
        )
        if state in _PAUSED:
            for queue in self.watchers:
                queue.put_nowait(None)

    def add_text(self, text: str) -> None:
        if self.answer is None:
            self.answer = f"answer-{self.turns}"
            self.artifacts[self.answer] = {
                "artifactId": self.answer,
                "name": "answer",
                "parts": [{"text": text}],
            }
            append = False
        else:
            parts: list[dict[str, Any]] = self.artifacts[self.answer]["parts"]
            parts[0] = {"text": parts[0]["text"] + text}
            append = True
        self.publish(
            {
                "artifactUpdate": {
                    "taskId": self.id,
                    "contextId": self.context_id,
                    "artifact": {
                        "artifactId": self.answer,
                        "name": "answer",
                        "parts": [{"text": text}],
                    },
                    "append": append,
                    "lastChunk": False,
                }
            }
        )


class SelfAgent:
    """The in-process agent the hub routes to (it satisfies a2a's `AgentTransport`)."""

    version = "1.0"

    def __init__(
        self,
        config: JunctionConfig,
        settings: SelfAgentConfig,
        *,
        router: Router,
        gateway: Gateway | None,
        current: Callable[[], JunctionConfig] | None = None,
    ) -> None:
        self.settings = settings
        self._current = current or (lambda: config)
        self.name = settings.name
        self._config = config
        self._router = router
        self._gateway = gateway
        self._tasks: dict[str, _Task] = {}
        self._by_session: dict[str, _Task] = {}
        self._runtime: AgentRuntime | None = None
        self._peers: dict[tuple[Any, ...] | None, JsonRpcPeer] = {}
        self._connecting = asyncio.Lock()
        self._background: list[asyncio.Task[None]] = []
        self._version = hub_settings(config).version

    # -- the card --------------------------------------------------------------------------------

    def card(self) -> dict[str, Any]:
        """Its card in 1.0 shape, without interfaces (the hub serves it under its own URL)."""
        skills = [
            {
                "id": skill.id,
                "name": skill.name or skill.id,
                "description": skill.description,
                "tags": list(skill.tags),
                **({"examples": list(skill.examples)} if skill.examples else {}),
            }
            for skill in self.settings.skills
        ]
        return {
            "name": self.name,
            "description": self.settings.description,
            "version": self._version,
            "capabilities": {"streaming": True, "pushNotifications": False},
            "defaultInputModes": ["text/plain", "application/json"],
            "defaultOutputModes": ["text/plain"],
            "skills": skills,
        }

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the agent runtime and open the in-memory ACP connection for keyless callers."""
        self._runtime = self._build_runtime()
        await self._connect(None, None)
        log.info("Junction's own A2A agent %r is ready", self.name)

    async def _caller_peer(self) -> JsonRpcPeer:
        """The connection for the API key whose request is being served (`CALLER`).

        Each key gets a connection of its own, served with that key's limits on top of the
        agent's own config and owning its sessions, so a key limited to this agent cannot reach
        through it the tools, models and agents it may not use directly, nor continue another
        key's conversation."""
        state = CALLER.get()
        key = None if state is None else tuple(state.get(name) for name in _GRANT_FIELDS)
        peer = self._peers.get(key)
        if peer is None:
            async with self._connecting:
                peer = self._peers.get(key) or await self._connect(key, state)
        return peer

    async def _connect(
        self, key: tuple[Any, ...] | None, state: Mapping[str, Any] | None
    ) -> JsonRpcPeer:
        from junction.bridges.acp_services import key_scope, serve_acp
        from transports import JsonRpcPeer, memory_pair

        assert self._runtime is not None, "the self-agent has not been started"
        narrow = key_scope(state) if state is not None else None

        def scope(services: Services) -> Services:
            narrowed = narrow(services) if narrow is not None else services
            return dataclasses.replace(narrowed, tools=_Tools(narrowed.tools))

        owner = str(state["principal"]) if state and state.get("principal") else None
        agent_end, client_end = memory_pair()
        peer = JsonRpcPeer(client_end)
        peer.on("session/update", self._on_update)
        peer.on("session/request_permission", self._refuse_permission)
        self._background += [
            asyncio.create_task(
                serve_acp(agent_end, self._runtime, scope=scope, owner=owner),
                name=f"self-agent-acp {owner or ''}",
            ),
            asyncio.create_task(peer.run(), name=f"self-agent-client {owner or ''}"),
        ]
        await peer.request(
            "initialize",
            {
                "protocolVersion": 1,
                "clientCapabilities": {
                    "fs": {"readTextFile": False, "writeTextFile": False},
                    "terminal": False,
                },
                "clientInfo": {"name": "junction-a2a", "version": self._version},
            },
        )
        self._peers[key] = peer
        return peer

    async def aclose(self) -> None:
        for task in list(self._tasks.values()):
            if task.runner is not None and not task.runner.done():
                task.runner.cancel()
        runners = [t.runner for t in self._tasks.values() if t.runner is not None]
        if runners:
            await asyncio.wait(runners, timeout=5)
        for peer in self._peers.values():
            await peer.aclose()
        for background in self._background:
            background.cancel()
        for background in self._background:
            with contextlib.suppress(BaseException):
                await background
        if self._runtime is not None:
            await self._runtime.aclose()

    def _build_runtime(self) -> AgentRuntime:
        from acp import AgentRuntime, PermissionPolicy, Services
        from junction.bridges.acp_services import (
            FilteredAgents,
            FilteredTools,
            GatewayTools,
            PoolDirectory,
            RoutedModels,
        )
        from junction.build import agent_settings
        from junction.storage import session_store

        cfg = self.settings
        overrides: dict[str, Any] = {
            "name": self.name,
            "system_prompt": cfg.system_prompt or SELF_AGENT_PROMPT.replace("{name}", self.name),
            "unattended": UNATTENDED,
            "default_mode": "auto" if cfg.permissions is None else "ask",
            "default_model": cfg.model or self._config.acp.default_model,
        }
        if cfg.max_model_requests is not None:
            overrides["max_model_requests"] = cfg.max_model_requests
        if cfg.permissions is not None:
            overrides["permissions"] = cfg.permissions.model_dump()
        else:
            overrides["permissions"] = PermissionPolicy()
        settings = agent_settings(self._config, overrides)
        # Its sessions are kept apart from the IDE sessions (they would show up in an IDE's list).
        store = session_store(self._config, realm="self-agent")
        # Each connection adds its caller's limits, then `ask_caller`.
        models = RoutedModels(self._router)
        tools = (
            FilteredTools(GatewayTools(self._gateway), self.may_use, NOT_ITS_TOOL)
            if self._gateway is not None
            else None
        )
        agents = FilteredAgents(
            _Stamped(PoolDirectory(self._current), self), self.may_ask, "is not one it may ask"
        )

        @contextlib.asynccontextmanager
        async def lifespan() -> AsyncIterator[Services]:
            yield Services(models=models, tools=tools, agents=agents)

        return AgentRuntime(settings, store, lifespan)

    def may_use(self, tool: str) -> bool:
        """Whether its config lets it call an aggregated MCP tool (never the A2A agents' own
        MCP tools: agents are reached as agents, which keeps it from calling itself)."""
        if tool.startswith(f"a2a{self._config.mcp.separator}"):
            return False
        return any(fnmatchcase(tool, glob) for glob in self.settings.mcp_tools)

    def may_ask(self, agent: str) -> bool:
        """Whether its config lets it hand work to `agent` (never to itself)."""
        return agent != self.name and any(fnmatchcase(agent, g) for g in self.settings.a2a_agents)

    def via(self, session_id: str | None) -> list[str]:
        """The hub path of the task a session is working on (copied onto tasks it sends)."""
        task = self._by_session.get(session_id or "")
        return list(task.via) if task is not None else []

    # -- A2A methods the hub calls ---------------------------------------------------------------

    async def call(self, method_v10: str, params: dict[str, Any]) -> Any:
        from a2a.errors import A2aError
        from transports import METHOD_NOT_FOUND

        if method_v10 == "SendMessage":
            task = await self._accept(params)
            config = params.get("configuration") or {}
            if not config.get("returnImmediately"):
                await self._settled(task)
            return {"task": task.snapshot()}
        if method_v10 == "GetTask":
            return self._task(params).snapshot()
        if method_v10 == "CancelTask":
            return await self._cancel(self._task(params))
        raise A2aError(METHOD_NOT_FOUND, f"{self.name} does not implement {method_v10}")

    async def stream(
        self, method_v10: str, params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        from a2a.errors import A2aError
        from transports import METHOD_NOT_FOUND

        if method_v10 == "SendStreamingMessage":
            task = await self._accept(params, start=False)
        elif method_v10 == "SubscribeToTask":
            task = self._task(params)
        else:
            raise A2aError(METHOD_NOT_FOUND, f"{self.name} does not stream {method_v10}")
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        task.watchers.add(queue)
        try:
            snapshot = task.snapshot()
            if method_v10 == "SendStreamingMessage":
                self._run(task, params)  # before the first yield: a reader gone now loses nothing
            elif task.state in _PAUSED:
                yield {"task": snapshot}
                return
            yield {"task": snapshot}
            while (event := await queue.get()) is not None:
                yield event
        finally:
            task.watchers.discard(queue)

    # -- tasks -----------------------------------------------------------------------------------

    def _task(self, params: Mapping[str, Any]) -> _Task:
        from a2a.errors import TASK_NOT_FOUND, A2aError

        task = self._tasks.get(str(params.get("id")))
        if task is None:
            raise A2aError(TASK_NOT_FOUND, "Task not found", {"taskId": str(params.get("id"))})
        return task

    async def _accept(self, params: Mapping[str, Any], *, start: bool = True) -> _Task:
        """The task a message starts or continues (its session opened), running unless `start`
        is false (a stream starts it after sending the first snapshot)."""
        from a2a.errors import INVALID_PARAMS, TASK_NOT_FOUND, UNSUPPORTED_OPERATION, A2aError

        message = params.get("message")
        if not isinstance(message, Mapping):
            raise A2aError(INVALID_PARAMS, "params.message is required")
        metadata = message.get("metadata") or {}
        via = [str(hop) for hop in metadata.get(VIA_KEY) or [] if isinstance(hop, str)]
        peer = await self._caller_peer()
        task_id = message.get("taskId")
        if task_id:
            task = self._tasks.get(str(task_id)) or await self._restore(str(task_id), via, peer)
            if task.peer is not peer:  # another key's task: as good as unknown
                raise A2aError(TASK_NOT_FOUND, "Task not found", {"taskId": str(task_id)})
            if task.state != INPUT_REQUIRED:
                raise A2aError(
                    UNSUPPORTED_OPERATION,
                    f"task {task.id} is {task.state.removeprefix('TASK_STATE_').lower()}; "
                    "only a task waiting for input takes another message",
                    {"taskId": task.id},
                )
            task.via = via or task.via
        else:
            session = await self._session_for(message.get("contextId"), peer)
            busy = self._by_session.get(session)
            if busy is not None and busy.state not in _PAUSED:
                raise A2aError(
                    UNSUPPORTED_OPERATION,
                    f"context {session} is busy with task {busy.id}; wait for it or cancel it",
                    {"taskId": busy.id},
                )
            task = _Task(
                id=f"{session}.{uuid.uuid4().hex[:12]}", context_id=session, via=via, peer=peer
            )
            self._tasks[task.id] = task
        task.history.append({**message, "taskId": task.id, "contextId": task.context_id})
        task.question = None
        task.failure = None
        self._by_session[task.context_id] = task
        if start:
            self._run(task, params)
        return task

    async def _session_for(self, context_id: Any, peer: JsonRpcPeer) -> str:
        """The ACP session of an A2A context: continued when it is this caller's, else a new
        one (the store answers unknown for another key's session)."""
        cwd = os.getcwd()
        if isinstance(context_id, str) and context_id.startswith("sess_"):
            current = self._by_session.get(context_id)
            if current is not None and current.peer is peer:
                return context_id
            if current is None:
                try:
                    await peer.request(
                        "session/resume", {"sessionId": context_id, "cwd": cwd, "mcpServers": []}
                    )
                    return context_id
                except Exception as exc:  # unknown, another key's, unreadable: a new one
                    log.info(
                        "context %s cannot be resumed (%s); starting a new one", context_id, exc
                    )
        created = await peer.request("session/new", {"cwd": cwd, "mcpServers": []})
        return str(created["sessionId"])

    async def _restore(self, task_id: str, via: list[str], peer: JsonRpcPeer) -> _Task:
        """A task from before a restart: its session is in the store, so it can be continued."""
        from a2a.errors import TASK_NOT_FOUND, A2aError

        session, _, _ = task_id.partition(".")
        try:
            await peer.request(
                "session/resume", {"sessionId": session, "cwd": os.getcwd(), "mcpServers": []}
            )
        except Exception:
            raise A2aError(TASK_NOT_FOUND, "Task not found", {"taskId": task_id}) from None
        task = _Task(id=task_id, context_id=session, via=via, peer=peer, state=INPUT_REQUIRED)
        self._tasks[task_id] = task
        return task

    def _run(self, task: _Task, params: Mapping[str, Any]) -> None:
        task.turns += 1
        task.answer = None
        task.set_state(WORKING)
        blocks = _prompt_blocks(params["message"])
        task.runner = asyncio.create_task(self._turn(task, blocks), name=f"self-agent {task.id}")
        task.runner.add_done_callback(lambda _: self._forget_later(task))

    def _forget_later(self, task: _Task) -> None:
        """Drop a settled task from memory after `FORGET_AFTER` seconds: the hub's store keeps
        its record, and one waiting for input is restored from its session if continued."""
        asyncio.get_running_loop().call_later(FORGET_AFTER, self._forget, task)

    def _forget(self, task: _Task) -> None:
        if task.runner is not None and not task.runner.done():
            return  # continued meanwhile: its new turn schedules this again
        if self._tasks.get(task.id) is task:
            del self._tasks[task.id]
        if self._by_session.get(task.context_id) is task:
            del self._by_session[task.context_id]

    async def _turn(self, task: _Task, blocks: list[dict[str, Any]]) -> None:
        from transports import RpcError

        peer = task.peer
        try:
            result = await peer.request(
                "session/prompt", {"sessionId": task.context_id, "prompt": blocks}
            )
            stop = str(result.get("stopReason"))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await peer.notify("session/cancel", {"sessionId": task.context_id})
            task.set_state(CANCELED, "The task was canceled.")
            raise
        except (RpcError, ConnectionError) as exc:
            task.set_state(FAILED, f"{self.name} failed: {exc}")
            return
        except Exception as exc:
            log.exception("self-agent task %s failed", task.id)
            task.set_state(FAILED, f"{self.name} failed: {type(exc).__name__}: {exc}")
            return
        if task.answer is not None:
            self._close_answer(task)
        if stop == "cancelled":
            task.set_state(CANCELED, "The task was canceled.")
        elif stop == "refusal":
            task.set_state(REJECTED, "The model refused the task.")
        elif task.question is not None:
            task.set_state(INPUT_REQUIRED, task.question)
        elif stop in ("max_turn_requests", "max_tokens"):
            task.set_state(COMPLETED, f"Stopped early ({stop.replace('_', ' ')}).")
        else:
            task.set_state(COMPLETED)

    def _close_answer(self, task: _Task) -> None:
        assert task.answer is not None
        task.publish(
            {
                "artifactUpdate": {
                    "taskId": task.id,
                    "contextId": task.context_id,
                    "artifact": {"artifactId": task.answer, "name": "answer", "parts": []},
                    "append": True,
                    "lastChunk": True,
                }
            }
        )

    async def _settled(self, task: _Task) -> None:
        runner = task.runner
        if runner is not None:
            await asyncio.wait({runner})

    async def _cancel(self, task: _Task) -> dict[str, Any]:
        from a2a.errors import TASK_NOT_CANCELABLE, A2aError

        if task.state in _DONE:
            raise A2aError(
                TASK_NOT_CANCELABLE, f"task is already {task.state}", {"taskId": task.id}
            )
        runner = task.runner
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait({runner})
        if task.state not in _DONE:
            task.set_state(CANCELED, "The task was canceled.")
        return task.snapshot()

    # -- what the ACP runtime tells its client ---------------------------------------------------

    async def _on_update(self, params: Any) -> None:
        if not isinstance(params, Mapping) or not isinstance(params.get("update"), Mapping):
            return
        update = params["update"]
        task = self._by_session.get(str(params.get("sessionId")))
        if task is None or task.state in _PAUSED:
            return  # a session/resume replay, or a turn that has already been settled
        kind = update.get("sessionUpdate")
        if kind == "agent_message_chunk":
            content = update.get("content") or {}
            if content.get("type") == "text" and content.get("text"):
                task.add_text(str(content["text"]))
        elif kind == "tool_call":
            title = str(update.get("title") or "a tool")
            task.calls[str(update.get("toolCallId"))] = (title, update.get("rawInput"))
            if title != ASK_TOOL:
                task.set_state(WORKING, f"Calling {title}")
        elif kind == "tool_call_update":
            title, raw = task.calls.get(str(update.get("toolCallId")), ("a tool", None))
            status = update.get("status")
            if status == "completed" and title == ASK_TOOL and isinstance(raw, Mapping):
                task.question = str(raw.get("question") or "(no question given)")
            elif status == "failed":
                task.set_state(WORKING, f"{title} failed: {_content_text(update) or 'no reason'}")

    async def _refuse_permission(self, params: Any) -> dict[str, Any]:
        # Unreachable while `unattended` is set; answered anyway so a turn can never hang here.
        return {"outcome": {"outcome": "selected", "optionId": "reject_once"}}


def _content_text(update: Mapping[str, Any]) -> str:
    texts = []
    for item in update.get("content") or []:
        inner = item.get("content") if isinstance(item, Mapping) else None
        if isinstance(inner, Mapping) and inner.get("type") == "text":
            texts.append(str(inner.get("text")))
    return " ".join(texts)[:500]


# -- what the runtime is given --------------------------------------------------------------------


@dataclass(frozen=True)
class _AskTool:
    name: str = ASK_TOOL
    description: str = (
        "Ask the sender of this task a question when you cannot go on without their answer. "
        "After calling it, stop: their answer arrives as the next message."
    )
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {"question": {"type": "string", "description": "what you need to know"}},
            "required": ["question"],
        }
    )
    kind: str = "think"


class _Tools:
    """The MCP tools it may use, plus `ask_caller`."""

    def __init__(self, tools: ToolProvider | None) -> None:
        self._tools = tools

    async def llm_tools(self) -> Sequence[ToolInfo]:
        tools: list[ToolInfo] = [_AskTool()]
        if self._tools is not None:
            tools.extend(await self._tools.llm_tools())
        return tools

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        on_progress: ProgressCallback | None = None,
        on_request: ClientRequestFn | None = None,
    ) -> dict[str, Any]:
        if name == ASK_TOOL:
            text = "The question has gone to the sender. Stop now; their answer comes next."
            return {"content": [{"type": "text", "text": text}]}
        if self._tools is None:
            text = f"{name} {NOT_ITS_TOOL}"
            return {"content": [{"type": "text", "text": text}], "isError": True}
        return await self._tools.call_tool(
            name, arguments, on_progress=on_progress, on_request=on_request
        )


class _Stamped:
    """The agents of the config in force, each task stamped with the hub path of the task
    that sends it (so a loop back through a hub it has passed is refused there)."""

    def __init__(self, agents: PoolDirectory, owner: SelfAgent) -> None:
        self._agents = agents
        self._owner = owner

    async def list_agents(self) -> Sequence[AgentInfo]:
        return await self._agents.list_agents()

    async def send_task(
        self,
        agent: str,
        message: str,
        *,
        on_progress: AgentProgress | None = None,
        on_input: AgentQuestion | None = None,
        session_id: str | None = None,
    ) -> str:
        metadata = {VIA_KEY: self._owner.via(session_id)}
        return await self._agents.send_task(
            agent, message, on_progress=on_progress, on_input=on_input, metadata=metadata
        )


__all__ = ["ASK_TOOL", "VIA_KEY", "SelfAgent"]
