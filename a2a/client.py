"""A small A2A client for Junction's ACP sessions: list agents and skills, send a message and
stream its events (cancellable), get and cancel tasks. Speaks 1.0 (or 0.3) JSON-RPC, or
HTTP+JSON to an endpoint that offers only that, over the process-wide aiohttp session; works
against the hub or any single agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from a2a.credentials import credentials_for
from a2a.paths import WELL_KNOWN
from a2a.registry import CardError, Registry, usable_card
from a2a.settings import AgentAuth, AgentSpec, HubSettings
from a2a.upstream import (
    AgentConnection,
    AgentTransport,
    RestConnection,
    SessionFactory,
    _default_session,
)
from a2a.versions.common import V03, V10, normalize_version

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """One agent reachable through the endpoint, with the skills it offers."""

    name: str
    description: str
    skills: list[dict[str, Any]] = field(default_factory=list)


class TaskStream:
    """The events of one SendStreamingMessage, as 1.0 StreamResponse dicts.

    `cancel()` asks the agent to cancel the task (once its id is known) and closes the stream;
    leaving the `async with`/`async for` early closes the connection without cancelling.
    """

    def __init__(self, client: A2aClient, events: AsyncIterator[dict[str, Any]]) -> None:
        self._client = client
        self._events = events
        self.task_id: str | None = None
        self.context_id: str | None = None

    def __aiter__(self) -> TaskStream:
        return self

    async def __anext__(self) -> dict[str, Any]:
        event = await self._events.__anext__()
        body = event.get("task") or event.get("statusUpdate") or event.get("artifactUpdate") or {}
        task_id = body.get("id") if "task" in event else body.get("taskId")
        if task_id and self.task_id is None:
            self.task_id = task_id
        if body.get("contextId") and self.context_id is None:
            self.context_id = body["contextId"]
        return event

    async def cancel(self) -> dict[str, Any] | None:
        """Cancel the remote task (if it has an id yet) and close the stream."""
        result = None
        if self.task_id is not None:
            result = await self._client.cancel_task(self.task_id)
        await self.aclose()
        return result

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._events.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> TaskStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class A2aClient:
    """Talks to one A2A endpoint (the hub, or an agent) found from its card."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        version: str = V10,
        session: SessionFactory = _default_session,
        timeout: float = 300.0,
        auth: AgentAuth | None = None,
        name: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = headers or {}
        self.auth = auth
        """The credentials the endpoint's card asks for (`forward_caller` finds no caller
        here: an ACP session's calls are Junction's own)."""
        self.name = name or self.url
        self.version = version
        self._session = session
        self._timeout = timeout
        self._card: dict[str, Any] | None = None
        self._connection: AgentTransport | None = None

    @classmethod
    def local(cls, card: dict[str, Any], connection: AgentTransport) -> A2aClient:
        """A client of an in-process agent (`Registry.add_local`): its card and transport are
        given, nothing is fetched."""
        client = cls("local:")
        client._card, client._connection = card, connection
        return client

    async def card(self, *, refresh: bool = False) -> dict[str, Any]:
        """The endpoint's card (1.0 shape), fetched once with the hub's limits and checked like
        the hub checks a card (CardError when it is unusable)."""
        if self._card is None or refresh:
            registry = Registry(HubSettings(), session=self._session)
            raw, _ = await registry.fetch_card(
                self.url + WELL_KNOWN, AgentSpec(url=self.url, headers=self.headers)
            )
            if raw is None:
                raise CardError("no card")
            self._card = usable_card(raw)
            self._connection = None
        return self._card

    async def _rpc(self) -> AgentTransport:
        if self._connection is None:
            card = await self.card()
            # JSON-RPC when the endpoint offers it, else HTTP+JSON; within a binding, prefer the
            # version asked for, but an endpoint that only speaks the other one still works (the
            # connection translates), which is what deployed 0.3 agents need.
            for binding in ("JSONRPC", "HTTP+JSON"):
                offered = {
                    normalize_version(str(interface.get("protocolVersion", ""))): interface["url"]
                    for interface in card.get("supportedInterfaces") or []
                    if interface.get("protocolBinding") == binding and interface.get("url")
                }
                version = (
                    self.version
                    if self.version in offered
                    else next((v for v in (V10, V03) if v in offered), None)
                )
                if version is not None:
                    break
            else:
                raise CardError(
                    "the endpoint offers no JSON-RPC or HTTP+JSON interface Junction speaks"
                )
            self.version = version
            kind = AgentConnection if binding == "JSONRPC" else RestConnection
            credentials, _ = credentials_for(
                self.name,
                self.auth,
                self.headers,
                card,
                agent_url=self.url,
                hub_issuer=None,
                session=self._session,
            )
            self._connection = kind(
                offered[version],
                version,
                headers=self.headers,
                session=self._session,
                request_timeout=self._timeout,
                idle_timeout=self._timeout,
                credentials=credentials,
                name=self.name,
            )
        return self._connection

    async def agents(self) -> list[AgentInfo]:
        """The agents behind the endpoint: grouped from the hub's `agent/skill` ids, or just one."""
        card = await self.card()
        grouped: dict[str, list[dict[str, Any]]] = {}
        plain: list[dict[str, Any]] = []
        for skill in card.get("skills") or []:
            owner, sep, bare = str(skill.get("id", "")).partition("/")
            if sep:
                grouped.setdefault(owner, []).append({**skill, "id": bare})
            else:
                plain.append(skill)
        if not grouped:
            return [AgentInfo(card.get("name", ""), card.get("description", ""), plain)]
        return [AgentInfo(name, "", skills) for name, skills in grouped.items()]

    async def skills(self) -> list[dict[str, Any]]:
        return list((await self.card()).get("skills") or [])

    @staticmethod
    def _request(  # noqa: PLR0917 (private; every caller passes all of them)
        text: str | None,
        message: dict[str, Any] | None,
        agent: str | None,
        skill: str | None,
        task_id: str | None,
        context_id: str | None,
        return_immediately: bool,
    ) -> dict[str, Any]:
        msg = dict(message or {"parts": [{"text": text or ""}]})
        msg.setdefault("messageId", str(uuid.uuid4()))
        msg.setdefault("role", "ROLE_USER")
        metadata = dict(msg.get("metadata") or {})
        if agent:
            metadata["agent"] = agent
        if skill:
            metadata["skill"] = skill
        if metadata:
            msg["metadata"] = metadata
        if task_id:
            msg["taskId"] = task_id
        if context_id:
            msg["contextId"] = context_id
        request: dict[str, Any] = {"message": msg}
        if return_immediately:
            request["configuration"] = {"returnImmediately": True}
        return request

    async def send(
        self,
        text: str | None = None,
        *,
        message: dict[str, Any] | None = None,
        agent: str | None = None,
        skill: str | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
        return_immediately: bool = False,
    ) -> dict[str, Any]:
        """SendMessage; the SendMessageResponse (`{"task": ...}` or `{"message": ...}`)."""
        request = self._request(
            text, message, agent, skill, task_id, context_id, return_immediately
        )
        result: dict[str, Any] = await (await self._rpc()).call("SendMessage", request)
        return result

    async def stream(
        self,
        text: str | None = None,
        *,
        message: dict[str, Any] | None = None,
        agent: str | None = None,
        skill: str | None = None,
        task_id: str | None = None,
        context_id: str | None = None,
    ) -> TaskStream:
        """SendStreamingMessage; iterate the returned stream, `cancel()` it to cancel the task."""
        request = self._request(text, message, agent, skill, task_id, context_id, False)
        connection = await self._rpc()
        return TaskStream(self, connection.stream("SendStreamingMessage", request))

    async def get_task(self, task_id: str, *, history_length: int | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"id": task_id}
        if history_length is not None:
            params["historyLength"] = history_length
        result: dict[str, Any] = await (await self._rpc()).call("GetTask", params)
        return result

    async def cancel_task(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await (await self._rpc()).call("CancelTask", {"id": task_id})
        return result


@dataclass(slots=True)
class TaskResult:
    """How one task ended, as `AgentPool.run_task` reports it.

    `state` is the final 1.0 state (`TASK_STATE_COMPLETED`, ... or `""` for a direct message
    reply); `artifacts` are the final artifacts (chunks appended), `note` the text of the last
    status message (a failure's reason, or what an `input-required` agent asks).
    """

    state: str = ""
    task_id: str | None = None
    context_id: str | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    message: dict[str, Any] | None = None
    """A direct reply (no task), or the task's last status message."""

    @property
    def failed(self) -> bool:
        return self.state in ("TASK_STATE_FAILED", "TASK_STATE_REJECTED", "TASK_STATE_CANCELED")

    @property
    def needs_input(self) -> bool:
        return self.state in ("TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED")

    def answer(self, agent: str) -> str:
        """The outcome as the text a model reads (a failure raises RuntimeError)."""
        if not self.state and self.message is not None:  # a direct reply, no task
            return _text(self.message)
        if self.failed:
            word = self.state.removeprefix("TASK_STATE_").lower()
            raise RuntimeError(f"the task {word}: {self.note or 'no reason given'}")
        if self.needs_input:
            return f"{agent} needs more input: {self.note or '(no question given)'}"
        answer = "".join(_text(artifact) for artifact in self.artifacts)
        return answer or self.note or f"{agent} finished without a text answer"


class AgentPool:
    """The configured agents as an ACP session sees them: each one a tool the model can call.

    It satisfies acp's `AgentDirectory` protocol: `list_agents` describes every agent whose card
    can be fetched (an unreachable one is left out, with a warning), `send_task` streams one task
    and returns the agent's answer as text, and cancelling the awaiting task cancels the remote
    task.
    """

    def __init__(
        self, specs: Mapping[str, AgentSpec], *, session: SessionFactory = _default_session
    ) -> None:
        self._clients = {
            name: A2aClient(
                spec.url, headers=dict(spec.headers), session=session, auth=spec.auth, name=name
            )
            for name, spec in specs.items()
        }
        self._waiting: dict[tuple[str, str], str] = {}
        """(agent, contextId) -> the id of that context's task waiting for input."""

    def add_local(self, name: str, card: dict[str, Any], connection: AgentTransport) -> None:
        """Offer an in-process agent too (Junction's own), reached through its transport."""
        self._clients[name] = A2aClient.local(card, connection)

    async def list_agents(self) -> list[AgentInfo]:
        described = await asyncio.gather(
            *(self._describe(name, client) for name, client in self._clients.items())
        )
        return [info for info in described if info is not None]

    async def _describe(self, name: str, client: A2aClient) -> AgentInfo | None:
        try:
            card = await client.card()
        except Exception as exc:
            log.warning("A2A agent %s is not offered to the model: %s", name, exc)
            return None
        skills = list(card.get("skills") or [])
        summary = ", ".join(str(s.get("name") or s.get("id")) for s in skills)
        description = str(card.get("description") or "")
        if summary:
            description = f"{description} Skills: {summary}.".strip()
        return AgentInfo(name, description, skills)

    async def run_task(
        self,
        agent: str,
        message: str,
        *,
        data: Mapping[str, Any] | None = None,
        context_id: str | None = None,
        on_progress: Callable[[str], Awaitable[None]] | None = None,
        note_end: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> TaskResult:
        """Stream one task to its end; the artifacts, state and ids (see `TaskResult`).

        `on_progress` gets each status message's text (followed by `note_end`) and each artifact
        chunk. With `context_id`, a task of that context left waiting for input is continued.
        `metadata` goes into the message's metadata (e.g. `junction/via`, so hubs can refuse a
        message that loops back to them).
        Cancelling the awaiting task cancels the remote task. Transport errors propagate.
        """
        client = self._clients.get(agent)
        if client is None:
            raise ValueError(f"no A2A agent named {agent!r}")
        parts: list[dict[str, Any]] = [{"text": message}]
        if data is not None:
            parts.append({"data": dict(data), "mediaType": "application/json"})
        task_id = self._waiting.pop((agent, context_id), None) if context_id else None
        out = TaskResult(context_id=context_id)
        artifacts: dict[str, dict[str, Any]] = {}
        outgoing: dict[str, Any] = {"parts": parts}
        if metadata:
            outgoing["metadata"] = dict(metadata)
        stream = await client.stream(message=outgoing, task_id=task_id, context_id=context_id)
        try:
            async for event in stream:
                if "message" in event:  # a direct reply: the whole answer, no task
                    out.message = event["message"]
                    out.context_id = out.message.get("contextId") or out.context_id
                    break
                body = event.get("task") or event.get("statusUpdate") or {}
                status = body.get("status") or {}
                if status:
                    out.state = str(status.get("state", out.state))
                    if status.get("message"):
                        out.message = status["message"]
                        out.note = _text(status["message"])
                        if out.note and on_progress is not None:
                            await on_progress(out.note + note_end)
                for artifact in body.get("artifacts") or []:
                    artifacts[str(artifact.get("artifactId", len(artifacts)))] = artifact
                update = event.get("artifactUpdate")
                if update:
                    artifact = update.get("artifact") or {}
                    key = str(artifact.get("artifactId", len(artifacts)))
                    if update.get("append") and key in artifacts:
                        prior = artifacts[key]
                        artifact = {
                            **prior,
                            "parts": [*prior.get("parts", []), *artifact.get("parts", [])],
                        }
                    artifacts[key] = artifact
                    chunk = _text(update.get("artifact") or {})
                    if chunk and on_progress is not None:
                        await on_progress(chunk)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(stream.cancel())
            raise
        finally:
            await stream.aclose()
        out.task_id = stream.task_id or out.task_id
        out.context_id = stream.context_id or out.context_id
        out.artifacts = list(artifacts.values())
        if out.needs_input and out.task_id and out.context_id:
            self._waiting[(agent, out.context_id)] = out.task_id
        return out

    async def send_task(
        self,
        agent: str,
        message: str,
        *,
        on_progress: Callable[[str], Awaitable[None]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """`run_task`, with the outcome as the text a model reads (a failure raises)."""
        result = await self.run_task(
            agent, message, on_progress=on_progress, note_end="\n", metadata=metadata
        )
        return result.answer(agent)


def _text(holder: Mapping[str, Any]) -> str:
    """The text parts of a message or artifact, joined."""
    return "".join(str(part["text"]) for part in holder.get("parts") or [] if "text" in part)
