"""The A2A hub: one JSON-RPC endpoint (1.0 and 0.3) that routes to registered agents.

The hub thinks in A2A 1.0 JSON and in its own task and context ids. A caller's request is lifted
to 1.0 (`compat`), routed (a continuation to the task's owner; else the agent named in metadata;
else one offering the skill, chosen by router_core among healthy agents), rewritten to the
agent's ids and sent in the agent's version. Answers and events come back the same way.

Each upstream stream is consumed by a `TaskRelay` that runs on its own: it records every event in
the store, queues webhooks, and fans events out to the streams watching the task, so a caller
that disconnects does not stop the recording, and `SubscribeToTask` joins the same relay.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from fnmatch import fnmatchcase
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from sse_starlette import EventSourceResponse
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from a2a import types
from a2a.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    TASK_NOT_CANCELABLE,
    TASK_NOT_FOUND,
    UNSUPPORTED_OPERATION,
    VERSION_NOT_SUPPORTED,
    A2aError,
    error_object,
    violations_from_pydantic,
)
from a2a.push import PushDispatcher
from a2a.redaction import redact_text, redact_url
from a2a.registry import WELL_KNOWN, CardError, RegisteredAgent, Registry
from a2a.settings import AgentSpec, HubSettings
from a2a.store import TaskRecord, TaskStore, decode_cursor
from a2a.upstream import AgentFailure, SessionFactory, _default_session
from a2a.versions import common
from a2a.versions.cards import with_v03_fields
from a2a.versions.jsonrpc03 import (
    METHODS_V03,
    event_to_rpc03,
    params_from_rpc03,
    result_to_rpc03,
)
from transports.dispatch import check_request

log = logging.getLogger(__name__)

Json = dict[str, Any]
Handler = Callable[[Any], Awaitable[Any]]

ROUTING_KEYS = ("agent", "skill", "tags")
"""Message (or request) metadata keys the hub routes on: `agent` names one agent, `skill` is a
skill id (plain, or `agent/skill` as on the hub's card), `tags` a list of skill tags."""

VIA = "junction/via"
"""Message metadata key: the ids of the hubs a message has passed through, oldest first."""

ANONYMOUS = "anonymous"
_SUBSCRIBER_BACKLOG = 1024
_END = object()


def new_id() -> str:
    """128 random bits, URL-safe: task and context ids nobody can guess.

    What `secrets.token_urlsafe(16)` makes (the same CSPRNG, `os.urandom`), without its
    `SystemRandom` detour: ids are made twice per routed task.
    """
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode("ascii")


def allowed_agents(request: Request) -> tuple[str, ...] | None:
    """The agent globs the auth middleware put in `scope["state"]["allowed_a2a_agents"]`, or
    None when the caller may use every agent."""
    state = request.scope.get("state") or {}
    globs = state.get("allowed_a2a_agents") if isinstance(state, dict) else None
    return None if globs is None else tuple(globs)


def may_use(allowed: tuple[str, ...] | None, agent: str) -> bool:
    """Whether a caller limited to `allowed` (`fnmatch` globs; None: no limit) may use `agent`."""
    return allowed is None or any(fnmatchcase(agent, glob) for glob in allowed)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is over `limit` bytes (the rest is not read).

    Read straight off `receive`: Starlette's `Request.body()` runs an async generator per
    request, which shows in the hub's per-request profile."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def default_principal(request: Request) -> str:
    """The caller set by the auth middleware (`scope["state"]["principal"]`), else anonymous."""
    state = request.scope.get("state") or {}
    principal = state.get("principal") if isinstance(state, dict) else None
    return str(principal) if principal else ANONYMOUS


@dataclass(slots=True)
class CallContext:
    version: str
    caller: str
    base: str | Callable[[], str]
    """The hub's base URL, or how to work it out (only card methods need it, so it is lazy)."""
    agent: str | None
    params: Json
    allowed: tuple[str, ...] | None = None
    """The agents this caller may use (globs), None for all: others are treated as unknown."""

    @property
    def base_url(self) -> str:
        if not isinstance(self.base, str):
            self.base = self.base()
        return self.base


_call: ContextVar[CallContext] = ContextVar("a2a_call")


@dataclass(slots=True)
class Binding:
    """How one task's ids map between the hub and the agent that owns it."""

    agent: str
    caller: str
    hub_id: str | None = None
    remote_id: str | None = None
    hub_context: str | None = None
    remote_context: str | None = None
    new_context: bool = False

    @classmethod
    def of(cls, record: TaskRecord) -> Binding:
        """The mapping of a task the store already knows."""
        return cls(
            record.agent,
            record.caller,
            record.id,
            record.remote_id,
            record.context_id,
            record.remote_context_id,
        )


# --------------------------------------------------------------------------- id rewriting


def _swap(obj: Json, key: str, mapping: dict[str, str]) -> None:
    value = obj.get(key)
    if isinstance(value, str) and value in mapping:
        obj[key] = mapping[value]


def _rewrite_message(message: Any, mapping: dict[str, str]) -> Any:
    if not isinstance(message, dict):
        return message
    out = dict(message)
    _swap(out, "taskId", mapping)
    _swap(out, "contextId", mapping)
    return out


def _rewrite_status(status: Any, mapping: dict[str, str]) -> Any:
    if isinstance(status, dict) and isinstance(status.get("message"), dict):
        status = dict(status)
        status["message"] = _rewrite_message(status["message"], mapping)
    return status


def rewrite_event(event: Json, mapping: dict[str, str]) -> Json:
    """A StreamResponse (or SendMessageResponse) with ids swapped per `mapping`."""
    if "task" in event:
        task = dict(event["task"])
        _swap(task, "id", mapping)
        _swap(task, "contextId", mapping)
        task["status"] = _rewrite_status(task.get("status"), mapping)
        if isinstance(task.get("history"), list):
            task["history"] = [_rewrite_message(m, mapping) for m in task["history"]]
        return {"task": task}
    if "message" in event:
        return {"message": _rewrite_message(event["message"], mapping)}
    key = "statusUpdate" if "statusUpdate" in event else "artifactUpdate"
    body = dict(event[key])
    _swap(body, "taskId", mapping)
    _swap(body, "contextId", mapping)
    if key == "statusUpdate":
        body["status"] = _rewrite_status(body.get("status"), mapping)
    return {key: body}


def apply_event(task: Json, event: Json) -> Json:
    """The task after `event` (hub ids on both): what GetTask shows and the store keeps."""
    if "task" in event:
        return dict(event["task"])
    if "statusUpdate" in event:
        status = event["statusUpdate"].get("status")
        out = dict(task)
        if isinstance(status, dict):
            out["status"] = status
            message = status.get("message")
            if isinstance(message, dict):
                history = list(out.get("history") or [])
                if not any(m.get("messageId") == message.get("messageId") for m in history):
                    history.append(message)
                out["history"] = history
        return out
    if "artifactUpdate" in event:
        update = event["artifactUpdate"]
        artifact = update.get("artifact")
        if not isinstance(artifact, dict):
            return task
        out = dict(task)
        artifacts = list(out.get("artifacts") or [])
        for i, existing in enumerate(artifacts):
            if existing.get("artifactId") == artifact.get("artifactId"):
                if update.get("append"):
                    merged = dict(existing)
                    merged["parts"] = list(existing.get("parts") or []) + list(
                        artifact.get("parts") or []
                    )
                    artifacts[i] = merged
                else:
                    artifacts[i] = artifact
                break
        else:
            artifacts.append(artifact)
        out["artifacts"] = artifacts
        return out
    return task


def event_state(event: Json) -> str | None:
    """The task state an event carries (a Task or a status update), else None."""
    if "task" in event:
        status = event["task"].get("status")
    elif "statusUpdate" in event:
        status = event["statusUpdate"].get("status")
    else:
        return None
    state = status.get("state") if isinstance(status, dict) else None
    return state if isinstance(state, str) else None


def _ends_stream(state: str | None) -> bool:
    return common.is_terminal(state) or state in (
        types.TaskState.INPUT_REQUIRED.value,
        types.TaskState.AUTH_REQUIRED.value,
    )


def trim_history(task: Json, length: int | None) -> Json:
    if length is None or "history" not in task:
        return task
    out = dict(task)
    if length == 0:
        out.pop("history", None)
    else:
        out["history"] = task["history"][-length:]
    return out


def _now_iso() -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        + f".{int(time.time() * 1000) % 1000:03d}Z"
    )


# --------------------------------------------------------------------------- relay


@dataclass(eq=False)
class TaskRelay:
    """One upstream stream for one task: recorded, pushed and fanned out as events arrive."""

    hub: Hub
    agent: RegisteredAgent
    binding: Binding
    record: TaskRecord | None = None
    subscribers: list[asyncio.Queue[Any]] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None
    done: bool = False
    pending_push: tuple[Json | None, str] | None = None
    """A push config sent with the message, saved once the task id is known."""

    def subscribe(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue(_SUBSCRIBER_BACKLOG)
        self.subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(queue)

    def _publish(self, item: Any) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning(
                    "a subscriber of task %s fell behind; closing its stream", self.binding.hub_id
                )
                self.unsubscribe(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(_END)

    async def run(self, events: AsyncIterator[Json]) -> None:
        hub, agent = self.hub, self.agent
        stats, breaker = agent.endpoint.stats, agent.endpoint.breaker
        started = time.perf_counter()
        first = True
        verdict: str | None = None
        try:
            async for raw in events:
                if first:
                    stats.observe_ttft(time.perf_counter() - started)
                    first = False
                event = await hub._adopt(self, raw)
                self._publish(event)
                await hub._record(self, event)
                if _ends_stream(event_state(event)) or "message" in event:
                    break
            verdict = "ok"
        except A2aError as exc:
            verdict = "ok"  # the agent answered; the request was refused
            self._publish(exc)
        except AgentFailure as exc:
            verdict = str(exc)
            log.warning("agent %s: %s", agent.name, exc)
            await self._fail(str(exc))
        except asyncio.CancelledError:
            verdict = None
            raise
        except Exception as exc:
            verdict = f"{type(exc).__name__}: {exc}"
            log.exception("relay for agent %s failed", agent.name)
            await self._fail("internal error while relaying the agent's stream")
        finally:
            if verdict == "ok":
                stats.succeed()
                breaker.record_success()
            elif verdict is not None:
                stats.fail(verdict)
                breaker.record_failure()
            else:
                stats.abandon()
                breaker.release()
            self.done = True
            self._publish(_END)
            if self.binding.hub_id and hub._relays.get(self.binding.hub_id) is self:
                del hub._relays[self.binding.hub_id]

    async def _fail(self, reason: str) -> None:
        """The agent broke off: the task ends failed (so no caller waits forever)."""
        binding = self.binding
        if binding.hub_id is None or self.record is None:
            self._publish(A2aError(INTERNAL_ERROR, f"agent {self.agent.name} failed: {reason}"))
            return
        message = {
            "messageId": str(uuid.uuid4()),
            "role": "ROLE_AGENT",
            "taskId": binding.hub_id,
            "contextId": binding.hub_context,
            "parts": [{"text": f"agent {self.agent.name} failed: {reason}"}],
        }
        event = {
            "statusUpdate": {
                "taskId": binding.hub_id,
                "contextId": binding.hub_context,
                "status": {
                    "state": "TASK_STATE_FAILED",
                    "message": message,
                    "timestamp": _now_iso(),
                },
                "metadata": {"junction": {"agent": self.agent.name, "reason": reason}},
            }
        }
        self._publish(event)
        await self.hub._record(self, event)


# --------------------------------------------------------------------------- the hub


class Hub:
    """Registry + store + push + the JSON-RPC endpoint; mount `routes()` in a Starlette app."""

    def __init__(
        self,
        store: TaskStore,
        settings: HubSettings | None = None,
        *,
        session: SessionFactory = _default_session,
        principal: Callable[[Request], str] = default_principal,
    ) -> None:
        self.settings = settings or HubSettings()
        self.hub_id = self.settings.hub_id or os.urandom(8).hex()
        """This hub's entry in `junction/via` (loop detection)."""
        self.store = store
        self.registry = Registry(self.settings, session=session, on_change=self._card_changed)
        self.push = PushDispatcher(self.settings.push)
        self.principal = principal
        self._relays: dict[str, TaskRelay] = {}
        self._followers: set[asyncio.Task[None]] = set()
        self._push_cache: dict[str, list[Json]] = {}
        self._card_cache: dict[str, tuple[bytes, str]] = {}
        self._methods: dict[str, tuple[Handler, type[BaseModel]]] = self._method_table()

    # -- lifecycle

    async def start(self, agents: dict[str, AgentSpec] | None = None) -> None:
        """Open the store, register configured agents (a bad card is logged, not fatal)."""
        await self.store.open()
        for name, spec in (agents or {}).items():
            await self.registry.add(name, spec, source="config", strict=False)
        self.registry.start()

    async def close(self) -> None:
        await self.registry.stop()
        tasks = [r.runner for r in self._relays.values() if r.runner] + list(self._followers)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.push.close()
        await self.store.close()

    def end_streams(self, reason: str) -> None:
        """A server shutdown: end every open client stream with one last status event.

        The upstream task is left running at its agent (the hub only relays it) and the event
        keeps the task's current state, with `reason` as its message and
        `metadata.junction.shutdown: true`; after a restart the caller follows the task with
        GetTask or SubscribeToTask. Nothing is recorded: the stored task is the agent's last
        word. `close()` then stops the relays."""
        for relay in list(self._relays.values()):
            record = relay.record
            if relay.done or not relay.subscribers or record is None:
                continue
            state = (record.task.get("status") or {}).get("state", "TASK_STATE_WORKING")
            text = (
                f"{reason}: this stream ends here; the task continues at agent "
                f"{relay.agent.name} (follow it with GetTask or SubscribeToTask)"
            )
            relay._publish(
                {
                    "statusUpdate": {
                        "taskId": record.id,
                        "contextId": record.context_id,
                        "status": {
                            "state": state,
                            "message": {
                                "messageId": str(uuid.uuid4()),
                                "role": "ROLE_AGENT",
                                "taskId": record.id,
                                "contextId": record.context_id,
                                "parts": [{"text": text}],
                            },
                            "timestamp": _now_iso(),
                        },
                        "metadata": {"junction": {"shutdown": True, "reason": reason}},
                    }
                }
            )
            relay._publish(_END)
            relay.subscribers.clear()

    def _card_changed(self) -> None:
        self._card_cache.clear()

    def task_state_counts(self) -> dict[str, int]:
        """Recorded tasks by current 1.0 state (kept by the store as it writes: no query)."""
        return self.store.state_counts()

    # -- HTTP surface

    def routes(self, *, admin: bool = True) -> list[BaseRoute]:
        """`/.well-known/agent-card.json`, `POST /a2a`, `/a2a/agents/{name}[...]`, the HTTP+JSON
        routes under both (`a2a.rest`), admin routes."""
        routes: list[BaseRoute] = [
            Route(WELL_KNOWN, self._hub_card, methods=["GET"]),
            Route("/a2a", AsgiEndpoint(self._rpc_hub), methods=["POST"]),
            Route("/a2a" + WELL_KNOWN, self._hub_card, methods=["GET"]),
            Route("/a2a/agents/{name}", AsgiEndpoint(self._rpc_agent), methods=["POST"]),
            Route("/a2a/agents/{name}" + WELL_KNOWN, self._agent_card, methods=["GET"]),
        ]
        from a2a.rest import rest_routes  # a2a.rest builds on this module

        routes += rest_routes(self)
        if admin:
            routes += [
                Route("/admin/a2a/agents", self._admin_list, methods=["GET"]),
                Route("/admin/a2a/agents", self._admin_register, methods=["POST"]),
                Route("/admin/a2a/agents/{name}", self._admin_remove, methods=["DELETE"]),
            ]
        return routes

    def base_url(self, request: Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    # -- cards

    def hub_card(self, base_url: str, allowed: tuple[str, ...] | None = None) -> Json:
        """The hub's own card: the skills of every agent the caller may use, attributed to
        their agent."""
        skills: list[Json] = []
        inputs: list[str] = []
        outputs: list[str] = []
        for agent in self.registry.all():
            if not may_use(allowed, agent.name):
                continue
            agent_card = agent.card or {}
            for mode in agent_card.get("defaultInputModes") or []:
                if mode not in inputs:
                    inputs.append(mode)
            for mode in agent_card.get("defaultOutputModes") or []:
                if mode not in outputs:
                    outputs.append(mode)
            for skill in agent.skills:
                entry = dict(skill)
                entry["id"] = f"{agent.name}/{skill.get('id')}"
                entry["tags"] = [*(skill.get("tags") or []), f"agent:{agent.name}"]
                entry["description"] = (
                    f"{skill.get('description', '')} (agent: {agent.name})".strip()
                )
                skills.append(entry)
        url = f"{base_url}/a2a"
        card: Json = {
            "name": self.settings.name,
            "description": self.settings.description,
            "version": self.settings.version,
            "supportedInterfaces": interfaces(url),
            "capabilities": {
                "streaming": True,
                "pushNotifications": True,
                "extendedAgentCard": True,
            },
            "defaultInputModes": inputs or ["text/plain"],
            "defaultOutputModes": outputs or ["text/plain"],
            "skills": skills,
        }
        return with_v03_fields(card)

    def proxied_card(self, agent: RegisteredAgent, base_url: str) -> Json:
        """The agent's card with its interfaces pointing at the hub's proxy for it.

        Rule for signed cards: URLs are rewritten (the hub must stay in the path), so the
        signatures no longer hold. They are removed from the top level, never left to fail
        silently, and the card is marked: a `capabilities.extensions` entry
        (`urn:junction:a2a:proxied-card`) carries the original signatures and the upstream card
        URL, where the unaltered, verifiable card can be fetched. Unsigned cards get the same
        mark without signatures.
        """
        card = dict(agent.card or {})
        url = f"{base_url}/a2a/agents/{agent.name}"
        card["supportedInterfaces"] = interfaces(url)
        capabilities = dict(card.get("capabilities") or {})
        params: Json = {"agent": agent.name}
        if agent.card_url is not None:  # a local agent has no card elsewhere
            params["upstreamCardUrl"] = redact_url(agent.card_url)
        signatures = card.pop("signatures", None)
        if signatures:
            params["originalSignatures"] = signatures
        mark = {
            "uri": "urn:junction:a2a:proxied-card",
            "description": "Interface URLs rewritten by the Junction hub"
            + ("; original signatures moved to params" if signatures else ""),
            "required": False,
            "params": params,
        }
        capabilities["extensions"] = [*(capabilities.get("extensions") or []), mark]
        card["capabilities"] = capabilities
        return with_v03_fields(card)

    def _card_response(
        self, request: Request, key: str, build: Callable[[], Json], modified: float
    ) -> Response:
        cached = self._card_cache.get(key)
        if cached is None:
            body = orjson.dumps(build())
            cached = (body, f'W/"{hashlib.sha256(body).hexdigest()[:32]}"')
            self._card_cache[key] = cached
        body, etag = cached
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(int(modified), usegmt=True),
            "Cache-Control": f"public, max-age={self.settings.card_cache_seconds}",
            "Vary": "Authorization",  # a key limited to some agents sees only theirs
        }
        inm = request.headers.get("if-none-match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            if "*" in tags or etag.removeprefix("W/") in tags:
                return Response(status_code=304, headers=headers)
        else:
            ims = request.headers.get("if-modified-since")
            if ims:
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    if int(modified) <= parsedate_to_datetime(ims).timestamp():
                        return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    async def _hub_card(self, request: Request) -> Response:
        base = self.base_url(request)
        allowed = allowed_agents(request)
        return self._card_response(
            request,
            f"hub|{base}|{allowed}",
            lambda: self.hub_card(base, allowed),
            self.registry.changed_at,
        )

    def visible(self, request: Request, name: str) -> RegisteredAgent | None:
        """The agent `name` if it is registered and the caller may use it (else, to the caller,
        it does not exist)."""
        agent = self.registry.get(name)
        return agent if agent is not None and may_use(allowed_agents(request), name) else None

    async def _agent_card(self, request: Request) -> Response:
        name = request.path_params["name"]
        agent = self.visible(request, name)
        if agent is None or agent.card is None:
            return JSONResponse({"error": f"no agent {name!r} with a card"}, status_code=404)
        base = self.base_url(request)
        return self._card_response(
            request,
            f"agent|{name}|{base}|{agent.etag}|{agent.fetched_at}",
            lambda: self.proxied_card(agent, base),
            agent.fetched_at or self.registry.changed_at,
        )

    # -- admin

    async def _admin_list(self, request: Request) -> Response:
        return JSONResponse({"agents": [a.summary() for a in self.registry.all()]})

    async def _admin_register(self, request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            name = body.pop("name")
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError("name must be a non-empty string without '/'")
            spec = AgentSpec.model_validate(body)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            return JSONResponse({"error": f"bad registration: {exc}"}, status_code=400)
        if (problem := self._builtin(name)) is not None:
            return problem
        try:
            agent = await self.registry.add(name, spec, source="admin", strict=True)
        except CardError as exc:
            error = redact_text(str(exc), spec.headers.values())
            return JSONResponse({"error": error}, status_code=422)
        return JSONResponse(agent.summary(), status_code=201)

    def _builtin(self, name: str) -> Response | None:
        """409 for a local (in-process) agent: it belongs to the program, not to the admin API."""
        agent = self.registry.get(name)
        if agent is None or agent.source != "local":
            return None
        return JSONResponse(
            {
                "error": f"agent {name!r} is built into this process; it cannot be replaced or removed"
            },
            status_code=409,
        )

    async def _admin_remove(self, request: Request) -> Response:
        name = request.path_params["name"]
        if (problem := self._builtin(name)) is not None:
            return problem
        if await self.registry.remove(name):
            return Response(status_code=204)
        return JSONResponse({"error": "no such agent"}, status_code=404)

    # -- JSON-RPC endpoint

    async def _rpc_hub(self, request: Request) -> Response:
        return await self.handle(request, None)

    async def _rpc_agent(self, request: Request) -> Response:
        name = request.path_params["name"]
        if self.visible(request, name) is None:
            return JSONResponse({"error": f"no agent {name!r}"}, status_code=404)
        return await self.handle(request, name)

    async def handle(self, request: Request, agent: str | None) -> Response:
        """Answer one JSON-RPC POST: a JSON reply, or an SSE stream for the streaming methods."""
        header = request.headers.get("a2a-version")
        try:
            version = common.protocol_version(header)
        except A2aError as exc:
            return _json(_error_reply(None, exc, common.V10))
        body = await read_body(request, self.settings.max_body_bytes)
        if body is None:
            return _json(
                _error_reply(None, A2aError(INVALID_REQUEST, "request body too large"), version)
            )
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _json(_error_reply(None, A2aError(PARSE_ERROR, f"Parse error: {exc}"), version))
        if isinstance(message, list):
            return _json(
                _error_reply(
                    None, A2aError(INVALID_REQUEST, "batch requests are not supported"), version
                )
            )
        problem = check_request(message)
        if problem is not None:
            error = problem["error"]
            return _json(
                _error_reply(problem["id"], A2aError(error["code"], error["message"]), version)
            )
        request_id = message.get("id")
        method = message["method"]
        params = message.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return _json(
                _error_reply(
                    request_id, A2aError(INVALID_PARAMS, "params must be an object"), version
                )
            )
        if version == common.V03:
            if method in METHODS_V03:
                method10 = METHODS_V03[method]
                params = params_from_rpc03(method, params)
            elif method in common.METHODS_V10:
                return _json(_error_reply(request_id, _version_mismatch(method, version), version))
            else:
                return _json(
                    _error_reply(
                        request_id, A2aError(METHOD_NOT_FOUND, "Method not found"), version
                    )
                )
        elif method in common.METHODS_V10:
            method10 = method
        elif method in METHODS_V03:
            return _json(_error_reply(request_id, _version_mismatch(method, version), version))
        else:
            return _json(
                _error_reply(request_id, A2aError(METHOD_NOT_FOUND, "Method not found"), version)
            )
        base = functools.partial(self.base_url, request)
        ctx = CallContext(
            version, self.principal(request), base, agent, params, allowed_agents(request)
        )
        if method10 in common.STREAMING_METHODS:
            return await self._streaming(request_id, method10, ctx)
        try:
            result = await self.invoke(method10, ctx)
        except A2aError as exc:
            if "id" not in message:
                return Response(status_code=204)
            return _json(_error_reply(request_id, exc, version))
        if "id" not in message:
            return Response(status_code=204)
        if version == common.V03:
            result = result_to_rpc03(method10, result)
        return _json({"jsonrpc": "2.0", "id": request_id, "result": result})

    async def invoke(self, method: str, ctx: CallContext) -> Any:
        """Run one non-streaming 1.0 method for either binding (JSON-RPC or HTTP+JSON).

        Both call the same handler after the same pydantic validation, so params errors and
        error codes are the same whichever binding the caller used; a failure is raised as
        `A2aError`. The bindings have already checked their envelopes, so no JSON-RPC dispatcher
        sits in between (jsonrpcserver's cost ~25 us of a SendMessage's ~180 here).
        """
        entry = self._methods.get(method)
        if entry is None:
            raise A2aError(METHOD_NOT_FOUND, "Method not found")
        handler, model = entry
        try:
            params = model.model_validate(ctx.params)
        except ValidationError as exc:
            raise _invalid(exc) from None
        token = _call.set(ctx)
        try:
            return await handler(params)
        except A2aError:
            raise
        except Exception:
            log.exception("A2A handler for %s failed", method)
            raise A2aError(INTERNAL_ERROR, "Internal error") from None
        finally:
            _call.reset(token)

    # -- streaming

    async def _streaming(self, request_id: Any, method: str, ctx: CallContext) -> Response:
        try:
            relay, queue, first = await self.open_stream(method, ctx)
        except A2aError as exc:
            return _json(_error_reply(request_id, exc, ctx.version))
        return EventSourceResponse(
            self._sse(request_id, ctx.version, self.stream_events(relay, queue, first)),
            ping=15,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def open_stream(
        self, method: str, ctx: CallContext
    ) -> tuple[TaskRelay, asyncio.Queue[Any], Any]:
        """Start a streaming method for either binding, up to its first event.

        Everything that can fail before an event exists (bad params, unknown task, routing, an
        agent refusing) is raised here as `A2aError`, so the binding can still answer with a
        plain error instead of a stream.
        """
        model = (
            types.SendMessageRequest
            if method == "SendStreamingMessage"
            else types.SubscribeToTaskRequest
        )
        try:
            validated = model.model_validate(ctx.params)
        except ValidationError as exc:
            raise _invalid(exc) from None
        if method == "SendStreamingMessage":
            assert isinstance(validated, types.SendMessageRequest)
            relay, queue, snapshot = await self._start_send_stream(ctx, validated)
        else:
            assert isinstance(validated, types.SubscribeToTaskRequest)
            relay, queue, snapshot = await self._start_subscribe(ctx, validated)
        first = snapshot if snapshot is not None else await queue.get()
        if isinstance(first, A2aError):
            relay.unsubscribe(queue)
            raise first
        if first is _END:
            relay.unsubscribe(queue)
            raise A2aError(INTERNAL_ERROR, "the agent sent no events")
        return relay, queue, first

    async def stream_events(
        self, relay: TaskRelay, queue: asyncio.Queue[Any], first: Any
    ) -> AsyncGenerator[Json | A2aError, None]:
        """A caller's events (1.0 StreamResponses) as the relay delivers them, in order.

        Ends after a message, a terminal or interrupted state, or an `A2aError` (yielded, for
        the binding to frame); closing it unsubscribes the caller from the relay.
        """
        item = first
        try:
            while item is not _END:
                yield item
                if isinstance(item, A2aError) or "message" in item:
                    return
                if _ends_stream(event_state(item)):
                    return
                item = await queue.get()
        finally:
            relay.unsubscribe(queue)

    async def _sse(
        self, request_id: Any, version: str, events: AsyncGenerator[Json | A2aError, None]
    ) -> AsyncIterator[dict[str, str]]:
        async with contextlib.aclosing(events):
            async for item in events:
                if isinstance(item, A2aError):
                    reply = _error_reply(request_id, item, version)
                    yield (
                        {"event": "error", "data": orjson.dumps(reply).decode()}
                        if version == common.V10
                        else {"data": orjson.dumps(reply).decode()}
                    )
                    return
                result = item if version == common.V10 else event_to_rpc03(item)
                yield {
                    "data": orjson.dumps(
                        {"jsonrpc": "2.0", "id": request_id, "result": result}
                    ).decode()
                }

    async def _start_send_stream(
        self, ctx: CallContext, request: types.SendMessageRequest
    ) -> tuple[TaskRelay, asyncio.Queue[Any], Any]:
        agent, binding, record = await self._route(ctx, request)
        upstream = self._upstream_params(ctx.params, binding)
        connection = self._usable(agent)
        if not agent.streaming:
            result = await self._send_blocking(agent, binding, record, upstream, ctx)
            relay = TaskRelay(self, agent, binding, record)
            relay.done = True
            queue: asyncio.Queue[Any] = asyncio.Queue()
            queue.put_nowait(_END)
            return relay, queue, result
        self._claim(agent)
        relay = TaskRelay(self, agent, binding, record)
        queue = relay.subscribe()
        push = (ctx.params.get("configuration") or {}).get("taskPushNotificationConfig")
        relay_push = push if isinstance(push, dict) else None
        if relay_push is not None:
            await self.push.validate(str(relay_push.get("url")))
        relay.pending_push = (relay_push, ctx.version)
        agent.endpoint.stats.begin()
        relay.runner = asyncio.get_running_loop().create_task(
            relay.run(connection.stream("SendStreamingMessage", upstream)), name="a2a-relay"
        )
        if binding.hub_id:
            self._relays[binding.hub_id] = relay
        return relay, queue, None

    async def _start_subscribe(
        self, ctx: CallContext, request: types.SubscribeToTaskRequest
    ) -> tuple[TaskRelay, asyncio.Queue[Any], Any]:
        record = await self._owned(ctx, request.id)
        if common.is_terminal(record.state):
            raise A2aError(
                UNSUPPORTED_OPERATION,
                f"task is in a terminal state ({record.state}); use GetTask",
                {"taskId": record.id},
            )
        live = self._relays.get(record.id)
        if live is not None and not live.done:
            queue = live.subscribe()
            snapshot = {"task": live.record.task if live.record else record.task}
            return live, queue, snapshot
        agent = self._owner(record)
        connection = self._usable(agent)
        if not agent.streaming:
            raise A2aError(UNSUPPORTED_OPERATION, f"agent {agent.name} does not stream")
        relay = self._follow(agent, record)
        queue = relay.subscribe()
        del connection
        return relay, queue, {"task": record.task}

    def _follow(self, agent: RegisteredAgent, record: TaskRecord) -> TaskRelay:
        """Watch a task upstream (SubscribeToTask) so the store and webhooks stay current."""
        existing = self._relays.get(record.id)
        if existing is not None and not existing.done:
            return existing
        binding = Binding.of(record)
        relay = TaskRelay(self, agent, binding, record)
        self._relays[record.id] = relay
        connection = agent.connection
        assert connection is not None
        agent.endpoint.stats.begin()
        relay.runner = asyncio.get_running_loop().create_task(
            relay.run(connection.stream("SubscribeToTask", {"id": record.remote_id})),
            name="a2a-follow",
        )
        return relay

    # -- relay callbacks

    async def _adopt(self, relay: TaskRelay, raw: Json) -> Json:
        """Map an agent's event to hub ids, binding a new task on its first event."""
        binding = relay.binding
        if binding.remote_id is None:
            remote_id: str | None = None
            remote_ctx: str | None = None
            if "task" in raw:
                remote_id, remote_ctx = raw["task"].get("id"), raw["task"].get("contextId")
            elif "statusUpdate" in raw or "artifactUpdate" in raw:
                body = raw.get("statusUpdate") or raw.get("artifactUpdate") or {}
                remote_id, remote_ctx = body.get("taskId"), body.get("contextId")
            elif "message" in raw:
                remote_ctx = raw["message"].get("contextId")
            await self._bind_context(binding, remote_ctx)
            if remote_id:
                binding.remote_id = remote_id
                binding.hub_id = new_id()
                self._relays[binding.hub_id] = relay
        event = rewrite_event(raw, _mapping(binding))
        if binding.hub_id and relay.record is None:
            relay.record = TaskRecord(
                id=binding.hub_id,
                caller=binding.caller,
                agent=binding.agent,
                remote_id=binding.remote_id or "",
                context_id=binding.hub_context or "",
                remote_context_id=binding.remote_context or "",
                task={
                    "id": binding.hub_id,
                    "contextId": binding.hub_context,
                    "status": {"state": "TASK_STATE_SUBMITTED"},
                },
            )
        return event

    async def _record(self, relay: TaskRelay, event: Json) -> None:
        record = relay.record
        if record is None:
            if "message" in event and relay.binding.new_context and relay.binding.hub_context:
                b = relay.binding
                await self.store.save_context(
                    b.caller, b.hub_context or "", b.agent, b.remote_context or ""
                )
            return
        record.task = apply_event(record.task, event)
        record.updated = time.time()
        await self.store.save_task(record, with_context=relay.binding.new_context)
        relay.binding.new_context = False
        pending = relay.pending_push
        if pending is not None and pending[0] is not None:
            relay.pending_push = None
            await self._save_push(record.caller, record.id, pending[0], pending[1])
        self._notify(record, event)

    def _notify(self, record: TaskRecord, event: Json) -> None:
        configs = self._push_cache.get(record.id)
        if configs:
            self.push.notify(record.id, configs, event, record.task)

    async def _bind_context(self, binding: Binding, remote_ctx: str | None) -> None:
        if binding.hub_context is not None or not remote_ctx:
            if binding.remote_context is None:
                binding.remote_context = remote_ctx
            return
        binding.remote_context = remote_ctx
        binding.hub_context = new_id()
        binding.new_context = True

    # -- routing

    async def _route(
        self, ctx: CallContext, request: types.SendMessageRequest
    ) -> tuple[RegisteredAgent, Binding, TaskRecord | None]:
        message = request.message
        self._check_hops(message.metadata)
        if message.task_id:
            record = await self._owned(ctx, message.task_id)
            if message.context_id and message.context_id != record.context_id:
                raise A2aError(
                    INVALID_PARAMS,
                    "contextId does not match the task's context",
                    {"taskId": record.id},
                )
            agent = self._owner(record)
            binding = Binding.of(record)
            return agent, binding, record
        if message.context_id:
            known = await self.store.get_context(ctx.caller, message.context_id)
            if (
                known is not None
                and (ctx.agent is None or known[0] == ctx.agent)
                and may_use(ctx.allowed, known[0])
            ):
                owner = self.registry.get(known[0])
                if owner is None:
                    raise A2aError(
                        UNSUPPORTED_OPERATION,
                        f"agent {known[0]} of this context is no longer registered",
                    )
                return (
                    owner,
                    Binding(
                        owner.name,
                        ctx.caller,
                        hub_context=message.context_id,
                        remote_context=known[1],
                    ),
                    None,
                )
        agent = self._choose(ctx, request)
        binding = Binding(agent.name, ctx.caller)
        if message.context_id:  # a context id the caller made up: keep it, learn the agent's
            binding.hub_context = message.context_id
            binding.remote_context = message.context_id
            binding.new_context = True
        return agent, binding, None

    def _check_hops(self, metadata: Json | None) -> None:
        """Refuse a message that has been through this hub already, or through too many."""
        via = (metadata or {}).get(VIA)
        if via is None:
            return
        if not isinstance(via, list) or not all(isinstance(hop, str) for hop in via):
            raise A2aError(INVALID_PARAMS, f"message metadata {VIA!r} must be a list of hub ids")
        if self.hub_id in via:
            raise A2aError(
                INVALID_PARAMS,
                "routing loop: this message has already passed through this hub"
                f" (via {' -> '.join(via)})",
                {"hubId": self.hub_id, "via": ",".join(via)},
            )
        if len(via) >= self.settings.max_hops:
            raise A2aError(
                INVALID_PARAMS,
                f"too many hops ({len(via)} >= max_hops {self.settings.max_hops})",
                {"via": ",".join(via)},
            )

    def _choose(self, ctx: CallContext, request: types.SendMessageRequest) -> RegisteredAgent:
        allowed = ctx.allowed
        if ctx.agent is not None:
            agent = self.registry.get(ctx.agent)
            if agent is None or not may_use(allowed, ctx.agent):
                raise A2aError(INVALID_PARAMS, f"no agent {ctx.agent!r}")
            return agent
        hints: Json = {}
        for source in (request.metadata or {}, request.message.metadata or {}):
            for key in ROUTING_KEYS:
                if key in source:
                    hints[key] = source[key]
        name = hints.get("agent")
        if isinstance(name, str):
            agent = self.registry.get(name)
            if agent is None or not may_use(allowed, name):
                raise A2aError(INVALID_PARAMS, f"no agent {name!r}", {"agent": name})
            return agent
        skill = hints.get("skill")
        tags = hints.get("tags") or []
        if isinstance(tags, str):
            tags = [tags]
        if isinstance(skill, str) and "/" in skill:
            owner, _, bare = skill.partition("/")
            pinned = self.registry.get(owner)
            if (
                pinned is not None
                and may_use(allowed, owner)
                and any(s.get("id") == bare for s in pinned.skills)
            ):
                return pinned
        if skill or tags:
            candidates = [
                agent
                for agent in self.registry.candidates(
                    skill if isinstance(skill, str) else None, list(tags)
                )
                if may_use(allowed, agent.name)
            ]
            picked = self.registry.pick(candidates, key=request.message.context_id) or (
                self._fallback(allowed)
            )
            if picked is None:
                raise A2aError(
                    UNSUPPORTED_OPERATION,
                    f"no healthy agent offers skill {skill!r} / tags {list(tags)}",
                    {"skill": str(skill), "tags": ",".join(tags)},
                )
            return picked
        agents = [agent for agent in self.registry.all() if may_use(allowed, agent.name)]
        if len(agents) == 1:
            return agents[0]
        fallback = self._fallback(allowed)
        if fallback is not None:
            return fallback
        raise A2aError(
            INVALID_PARAMS,
            "say which agent: message metadata `agent` (a name) or `skill`/`tags`",
            {"agents": ",".join(a.name for a in agents)},
        )

    def _fallback(self, allowed: tuple[str, ...] | None) -> RegisteredAgent | None:
        """`fallback_agent`, when it is set, registered, and the caller may use it."""
        name = self.settings.fallback_agent
        if name is None or not may_use(allowed, name):
            return None
        return self.registry.get(name)

    def _owner(self, record: TaskRecord) -> RegisteredAgent:
        agent = self.registry.get(record.agent)
        if agent is None:
            raise A2aError(
                UNSUPPORTED_OPERATION, f"agent {record.agent} of this task is no longer registered"
            )
        return agent

    def _usable(self, agent: RegisteredAgent) -> Any:
        if agent.connection is None:
            raise A2aError(
                UNSUPPORTED_OPERATION, f"agent {agent.name} is unavailable: {agent.state()}"
            )
        return agent.connection

    def _claim(self, agent: RegisteredAgent) -> None:
        health = agent.endpoint.health
        if health is not None and not health.healthy:
            raise A2aError(
                UNSUPPORTED_OPERATION, f"agent {agent.name} is unavailable: {agent.state()}"
            )
        if not agent.endpoint.breaker.allow():
            raise A2aError(
                UNSUPPORTED_OPERATION, f"agent {agent.name} is unavailable: {agent.state()}"
            )

    async def _owned(self, ctx: CallContext, task_id: str) -> TaskRecord:
        record = await self.store.get_task(task_id, ctx.caller)
        if (
            record is None
            or (ctx.agent is not None and record.agent != ctx.agent)
            or not may_use(ctx.allowed, record.agent)
        ):
            raise A2aError(TASK_NOT_FOUND, "Task not found", {"taskId": task_id})
        return record

    def _upstream_params(self, params: Json, binding: Binding) -> Json:
        out = dict(params)
        message = dict(out["message"])
        metadata = dict(message.get("metadata") or {})
        via = metadata.get(VIA)
        metadata[VIA] = [*(via if isinstance(via, list) else []), self.hub_id]
        message["metadata"] = metadata
        if binding.remote_id:
            message["taskId"] = binding.remote_id
        if binding.remote_context:
            message["contextId"] = binding.remote_context
        elif "contextId" in message and binding.hub_context is None:
            message.pop("contextId")
        out["message"] = message
        config = out.get("configuration")
        if isinstance(config, dict) and "taskPushNotificationConfig" in config:
            out["configuration"] = {
                k: v for k, v in config.items() if k != "taskPushNotificationConfig"
            }
        return out

    # -- non-streaming methods

    def _method_table(self) -> dict[str, tuple[Handler, type[BaseModel]]]:
        """The non-streaming 1.0 methods: each one's handler and its params model."""
        return {
            "SendMessage": (self._send_message, types.SendMessageRequest),
            "GetTask": (self._get_task, types.GetTaskRequest),
            "ListTasks": (self._list_tasks, types.ListTasksRequest),
            "CancelTask": (self._cancel_task, types.CancelTaskRequest),
            "CreateTaskPushNotificationConfig": (
                self._push_create,
                types.TaskPushNotificationConfig,
            ),
            "GetTaskPushNotificationConfig": (
                self._push_get,
                types.GetTaskPushNotificationConfigRequest,
            ),
            "ListTaskPushNotificationConfigs": (
                self._push_list,
                types.ListTaskPushNotificationConfigsRequest,
            ),
            "DeleteTaskPushNotificationConfig": (
                self._push_delete,
                types.GetTaskPushNotificationConfigRequest,
            ),
            "GetExtendedAgentCard": (self._extended_card, types.GetExtendedAgentCardRequest),
        }

    async def _send_message(self, request: types.SendMessageRequest) -> Json:
        ctx = _call.get()
        agent, binding, record = await self._route(ctx, request)
        self._usable(agent)
        push = (
            request.configuration.task_push_notification_config if request.configuration else None
        )
        if push is not None:
            await self.push.validate(push.url)
        upstream = self._upstream_params(ctx.params, binding)
        result = await self._send_blocking(agent, binding, record, upstream, ctx)
        history = request.configuration.history_length if request.configuration else None
        if "task" in result:
            task_id = result["task"]["id"]
            if push is not None:
                raw_push = (ctx.params.get("configuration") or {}).get("taskPushNotificationConfig")
                await self._save_push(ctx.caller, task_id, raw_push, ctx.version)
                self._notify_current(task_id, result)
            return {"task": trim_history(result["task"], history)}
        return result

    async def _send_blocking(
        self,
        agent: RegisteredAgent,
        binding: Binding,
        record: TaskRecord | None,
        upstream: Json,
        ctx: CallContext,
    ) -> Json:
        connection = self._usable(agent)
        self._claim(agent)
        stats = agent.endpoint.stats
        stats.begin()
        started = time.perf_counter()
        try:
            raw = await connection.call("SendMessage", upstream)
        except A2aError:
            stats.succeed(time.perf_counter() - started)
            agent.endpoint.breaker.record_success()
            raise
        except AgentFailure as exc:
            stats.fail(str(exc))
            agent.endpoint.breaker.record_failure()
            raise A2aError(
                INTERNAL_ERROR, f"agent {agent.name} failed: {exc}", {"agent": agent.name}
            ) from None
        except asyncio.CancelledError:
            stats.abandon()
            agent.endpoint.breaker.release()
            raise
        stats.succeed(time.perf_counter() - started)
        agent.endpoint.breaker.record_success()
        if not isinstance(raw, dict) or len(raw.keys() & {"task", "message"}) != 1:
            raise A2aError(
                INTERNAL_ERROR,
                f"agent {agent.name} answered SendMessage with neither a task nor a message",
            )
        relay = TaskRelay(self, agent, binding, record)
        event = await self._adopt(relay, raw)
        relay.done = True  # a one-shot answer: nothing to subscribe to
        if binding.hub_id and self._relays.get(binding.hub_id) is relay:
            del self._relays[binding.hub_id]
        await self._record(relay, event)
        if "task" in event and relay.record is not None:
            state = event_state(event)
            if not _ends_stream(state) and agent.streaming:
                self._follow(agent, relay.record)
        return event

    def _notify_current(self, task_id: str, result: Json) -> None:
        configs = self._push_cache.get(task_id)
        if configs:
            self.push.notify(task_id, configs, result, result.get("task", {}))

    async def _get_task(self, request: types.GetTaskRequest) -> Json:
        ctx = _call.get()
        record = await self._owned(ctx, request.id)
        live = self._relays.get(record.id)
        if live is not None and live.record is not None:
            record = live.record
        elif not _ends_stream(record.state):
            record = await self._refresh(record)
        return trim_history(record.task, request.history_length)

    async def _refresh(self, record: TaskRecord) -> TaskRecord:
        """A non-terminal task nobody is watching: ask its agent (keep the stored one on failure)."""
        agent = self.registry.get(record.agent)
        if agent is None or agent.connection is None or not agent.endpoint.available():
            return record
        try:
            raw = await agent.connection.call("GetTask", {"id": record.remote_id})
        except (A2aError, AgentFailure) as exc:
            log.info("refreshing task %s from %s failed: %s", record.id, agent.name, exc)
            return record
        binding = Binding.of(record)
        event = rewrite_event({"task": raw}, _mapping(binding))
        record.task = event["task"]
        record.updated = time.time()
        await self.store.save_task(record)
        return record

    async def _list_tasks(self, request: types.ListTasksRequest) -> Json:
        ctx = _call.get()
        after = None
        if request.status_timestamp_after:
            try:
                from datetime import datetime

                after = datetime.fromisoformat(
                    request.status_timestamp_after.replace("Z", "+00:00")
                ).timestamp()
            except ValueError:
                raise A2aError(
                    INVALID_PARAMS, "statusTimestampAfter is not an ISO 8601 timestamp"
                ) from None
        if request.page_token:
            try:
                decode_cursor(request.page_token)
            except ValueError:
                raise A2aError(INVALID_PARAMS, "invalid pageToken") from None
        size = request.page_size or 50
        page = await self.store.list_tasks(
            ctx.caller,
            context_id=request.context_id,
            state=request.status.value if request.status else None,
            updated_after=after,
            page_size=size,
            cursor=request.page_token,
        )
        tasks = []
        for record in page.records:
            if (ctx.agent is not None and record.agent != ctx.agent) or not may_use(
                ctx.allowed, record.agent
            ):
                continue
            task = trim_history(record.task, request.history_length)
            if not request.include_artifacts:
                task = {k: v for k, v in task.items() if k != "artifacts"}
            tasks.append(task)
        return {
            "tasks": tasks,
            "nextPageToken": page.next_cursor,
            "pageSize": size,
            "totalSize": page.total,
        }

    async def _cancel_task(self, request: types.CancelTaskRequest) -> Json:
        ctx = _call.get()
        record = await self._owned(ctx, request.id)
        if common.is_terminal(record.state):
            raise A2aError(
                TASK_NOT_CANCELABLE, f"task is already {record.state}", {"taskId": record.id}
            )
        agent = self._owner(record)
        connection = self._usable(agent)
        params: Json = {"id": record.remote_id}
        if request.metadata:
            params["metadata"] = request.metadata
        try:
            raw = await connection.call("CancelTask", params)
        except AgentFailure as exc:
            raise A2aError(INTERNAL_ERROR, f"agent {agent.name} failed: {exc}") from None
        binding = Binding.of(record)
        event = rewrite_event({"task": raw}, _mapping(binding))
        live = self._relays.get(record.id)
        target = live.record if live is not None and live.record is not None else record
        target.task = event["task"]
        target.updated = time.time()
        await self.store.save_task(target)
        self._notify(target, event)
        return target.task

    async def _save_push(self, caller: str, task_id: str, raw: Any, version: str) -> Json:
        config = {k: v for k, v in dict(raw or {}).items() if k not in ("tenant",)}
        config["taskId"] = task_id
        config.setdefault("id", str(uuid.uuid4()))
        if not config.get("id"):
            config["id"] = str(uuid.uuid4())
        stored = {**config, "_version": version}
        await self.store.save_push(caller, task_id, stored)
        self._push_cache[task_id] = await self.store.list_push(task_id)
        return config

    async def _push_create(self, request: types.TaskPushNotificationConfig) -> Json:
        ctx = _call.get()
        if not request.task_id:
            raise A2aError(INVALID_PARAMS, "taskId is required")
        record = await self._owned(ctx, request.task_id)
        await self.push.validate(request.url)
        return await self._save_push(ctx.caller, record.id, ctx.params, ctx.version)

    async def _push_get(self, request: types.GetTaskPushNotificationConfigRequest) -> Json:
        ctx = _call.get()
        await self._owned(ctx, request.task_id)
        config = await self.store.get_push(ctx.caller, request.task_id, request.id)
        if config is None:
            raise A2aError(
                TASK_NOT_FOUND,
                "push notification config not found",
                {"taskId": request.task_id, "id": request.id},
            )
        return _public_push(config)

    async def _push_list(self, request: types.ListTaskPushNotificationConfigsRequest) -> Json:
        ctx = _call.get()
        await self._owned(ctx, request.task_id)
        configs = await self.store.list_push(request.task_id, ctx.caller)
        return {"configs": [_public_push(c) for c in configs], "nextPageToken": ""}

    async def _push_delete(self, request: types.GetTaskPushNotificationConfigRequest) -> None:
        ctx = _call.get()
        await self._owned(ctx, request.task_id)
        await self.store.delete_push(ctx.caller, request.task_id, request.id)
        self._push_cache[request.task_id] = await self.store.list_push(request.task_id)
        self.push.forget(request.task_id, request.id)

    async def _extended_card(self, request: types.GetExtendedAgentCardRequest) -> Json:
        ctx = _call.get()
        if ctx.agent is not None:
            agent = self.registry.get(ctx.agent)
            if agent is None or agent.card is None:
                raise A2aError(UNSUPPORTED_OPERATION, "the agent's card is not available")
            return self.proxied_card(agent, ctx.base_url)
        return self.hub_card(ctx.base_url, ctx.allowed)


# --------------------------------------------------------------------------- helpers


def _mapping(binding: Binding) -> dict[str, str]:
    mapping: dict[str, str] = {}
    if binding.remote_id and binding.hub_id:
        mapping[binding.remote_id] = binding.hub_id
    if binding.remote_context and binding.hub_context:
        mapping[binding.remote_context] = binding.hub_context
    return mapping


def interfaces(url: str) -> list[Json]:
    """The interfaces the hub serves at `url`: JSON-RPC and HTTP+JSON, each in 1.0 and 0.3.

    JSON-RPC comes first in each version, so a 0.3 card's `url`/`preferredTransport` (see
    `with_v03_fields`) stays JSON-RPC and HTTP+JSON is an `additionalInterfaces` entry.
    """
    return [
        {"url": url, "protocolBinding": binding, "protocolVersion": version}
        for version in (common.V10, common.V03)
        for binding in ("JSONRPC", "HTTP+JSON")
    ]


def _public_push(config: Json) -> Json:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _version_mismatch(method: str, version: str) -> A2aError:
    return A2aError(
        VERSION_NOT_SUPPORTED,
        f"method {method!r} does not belong to A2A version {version} (the A2A-Version header)",
        {"requestedVersion": version, "method": method},
    )


def _invalid(exc: ValidationError) -> A2aError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    violations = violations_from_pydantic(list(errors))
    return A2aError(INVALID_PARAMS, "Invalid params", violations=violations)


def _error_reply(request_id: Any, exc: A2aError, version: str) -> Json:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": error_object(
            exc.code, exc.message, version, exc.metadata, violations=exc.violations
        ),
    }


class _JsonReply(Response):
    """A JSON-RPC reply with its two headers built directly (Response's general header
    handling shows up in the hub's per-request profile)."""

    def __init__(self, body: bytes) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("ascii")),
        ]


def _json(reply: Json) -> Response:
    return _JsonReply(orjson.dumps(reply))


class AsgiEndpoint:
    """A JSON-RPC route as a bare ASGI app: Starlette wraps function endpoints in a per-call
    request/response adapter (its own exception-handler layer), which the hot path skips;
    exceptions still reach the application's handlers."""

    def __init__(self, endpoint: Callable[[Request], Awaitable[Response]]) -> None:
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)


__all__ = [
    "ROUTING_KEYS",
    "VIA",
    "AsgiEndpoint",
    "Hub",
    "TaskRelay",
    "allowed_agents",
    "default_principal",
    "may_use",
    "new_id",
    "read_body",
]
