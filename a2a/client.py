"""A small A2A client for Junction's ACP sessions: list agents and skills, send a message and
stream its events (cancellable), get and cancel tasks. Speaks 1.0 (or 0.3) JSON-RPC over the
process-wide aiohttp session; works against the hub or any single agent.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from a2a import compat
from a2a.registry import WELL_KNOWN, CardError, Registry
from a2a.settings import AgentSpec, HubSettings
from a2a.upstream import AgentConnection, SessionFactory, _default_session


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
        version: str = compat.V10,
        session: SessionFactory = _default_session,
        timeout: float = 300.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = headers or {}
        self.version = version
        self._session = session
        self._timeout = timeout
        self._card: dict[str, Any] | None = None
        self._connection: AgentConnection | None = None

    async def card(self, *, refresh: bool = False) -> dict[str, Any]:
        """The endpoint's card (1.0 shape), fetched once with the hub's limits."""
        if self._card is None or refresh:
            registry = Registry(HubSettings(), session=self._session)
            raw, _ = await registry.fetch_card(
                self.url + WELL_KNOWN, AgentSpec(url=self.url, headers=self.headers)
            )
            if raw is None:
                raise CardError("no card")
            self._card = compat.card_to_v10(raw)
            self._connection = None
        return self._card

    async def _rpc(self) -> AgentConnection:
        if self._connection is None:
            card = await self.card()
            url = None
            for interface in card.get("supportedInterfaces") or []:
                if (
                    interface.get("protocolBinding") == "JSONRPC"
                    and compat.normalize_version(str(interface.get("protocolVersion", "")))
                    == self.version
                ):
                    url = interface["url"]
                    break
            if url is None:
                raise CardError(f"the endpoint offers no JSON-RPC {self.version} interface")
            self._connection = AgentConnection(
                url,
                self.version,
                headers=self.headers,
                session=self._session,
                request_timeout=self._timeout,
                idle_timeout=self._timeout,
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
