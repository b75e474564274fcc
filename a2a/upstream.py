"""JSON-RPC calls and SSE streams to one remote agent, in the version that agent speaks.

Callers pass and get 1.0 JSON; a 0.3 agent's traffic is translated here. Every failure of the
agent (unreachable, HTTP error, malformed JSON or events, silence) surfaces as `AgentFailure`,
which the hub counts against the agent's breaker; an A2A error the agent answered with is an
`A2aError` (the agent is fine, the request was not).
"""

from __future__ import annotations

import asyncio
import codecs
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import orjson
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from a2a import compat
from a2a.errors import from_error_member

log = logging.getLogger(__name__)

_ids = itertools.count(1)

SessionFactory = Callable[[], aiohttp.ClientSession]


class AgentFailure(Exception):
    """The agent did not answer properly: unreachable, HTTP error, malformed answer, timeout."""


def _default_session() -> aiohttp.ClientSession:
    from router_core.http import get_session

    return get_session()


class AgentConnection:
    """Where and how to reach one agent's JSON-RPC interface."""

    def __init__(
        self,
        url: str,
        version: str,
        *,
        headers: dict[str, str] | None = None,
        session: SessionFactory = _default_session,
        request_timeout: float = 300.0,
        idle_timeout: float = 300.0,
        max_event_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.version = version
        self.headers = {
            "Content-Type": "application/json",
            "A2A-Version": version,
            **(headers or {}),
        }
        self._session = session
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.max_event_bytes = max_event_bytes

    def _body(self, method_v10: str, params: dict[str, Any]) -> bytes:
        method = method_v10
        if self.version == compat.V03:
            method = compat.METHODS_V10_TO_V03[method_v10]
            params = compat.params_to_v03(method_v10, params)
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
        )

    async def call(self, method_v10: str, params: dict[str, Any]) -> Any:
        """One request/response; returns the 1.0 result."""
        body = self._body(method_v10, params)
        try:
            async with asyncio.timeout(self.request_timeout):
                async with self._session().post(
                    self.url, data=body, headers=self.headers, allow_redirects=False
                ) as response:
                    if response.status != 200:
                        raise AgentFailure(f"agent answered HTTP {response.status}")
                    raw = await response.read()
        except TimeoutError:
            raise AgentFailure(f"agent did not answer within {self.request_timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise AgentFailure(f"agent unreachable: {exc}") from None
        return self._result(method_v10, raw)

    def _result(self, method_v10: str, raw: bytes) -> Any:
        try:
            reply = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise AgentFailure("agent answered with malformed JSON") from None
        if not isinstance(reply, dict):
            raise AgentFailure("agent answered with a non-object")
        if "error" in reply:
            raise from_error_member(reply["error"])
        if "result" not in reply:
            raise AgentFailure("agent reply has neither result nor error")
        result = reply["result"]
        if self.version == compat.V03:
            result = compat.result_to_v10(method_v10, result)
            if method_v10 == "SendMessage" and result is None:
                raise AgentFailure("agent answered message/send with neither a task nor a message")
        return result

    async def stream(
        self, method_v10: str, params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """The agent's events as 1.0 StreamResponse dicts, each yielded as soon as it is parsed.

        Raises `A2aError` when the agent refuses up front, `AgentFailure` when the stream breaks
        (connection lost, malformed event, silence beyond `idle_timeout`).
        """
        body = self._body(method_v10, params)
        headers = {**self.headers, "Accept": "text/event-stream"}
        try:
            async with asyncio.timeout(self.request_timeout):
                response = await self._session().post(
                    self.url, data=body, headers=headers, allow_redirects=False
                )
        except TimeoutError:
            raise AgentFailure(f"agent did not answer within {self.request_timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise AgentFailure(f"agent unreachable: {exc}") from None
        try:
            if response.status != 200:
                raise AgentFailure(f"agent answered HTTP {response.status}")
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                # An up-front JSON-RPC answer: an error, or a result from an agent that does not stream.
                raw = await response.read()
                result = self._result(
                    "SendMessage" if method_v10 != "SubscribeToTask" else "GetTask", raw
                )
                yield {"task": result} if method_v10 == "SubscribeToTask" else result
                return
            async for data in self._events(response):
                yield self._event(data)
        finally:
            response.release()

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[str]:
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lines, events = SSELineDecoder(), SSEDecoder()
        pending = 0
        while True:
            try:
                async with asyncio.timeout(self.idle_timeout):
                    chunk = await response.content.readany()
            except TimeoutError:
                raise AgentFailure(f"agent stream silent for {self.idle_timeout:g} s") from None
            except aiohttp.ClientError as exc:
                raise AgentFailure(f"agent stream broke: {exc}") from None
            if not chunk:
                return
            pending += len(chunk)
            if pending > self.max_event_bytes:
                raise AgentFailure("agent sent an oversized event")
            for line in lines.decode(text.decode(chunk)):
                event = events.decode(line)
                if event is not None:
                    pending = 0
                    if event.data:
                        yield event.data

    def _event(self, data: str) -> dict[str, Any]:
        try:
            message = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise AgentFailure("agent sent a malformed event (not JSON)") from None
        if not isinstance(message, dict):
            raise AgentFailure("agent sent a malformed event (not an object)")
        if "error" in message:
            raise from_error_member(message["error"])
        result = message.get("result")
        if self.version == compat.V03:
            converted = compat.event_to_v10(result)
        else:
            converted = result if isinstance(result, dict) else None
            if (
                converted is not None
                and len(converted.keys() & {"task", "message", "statusUpdate", "artifactUpdate"})
                != 1
            ):
                converted = None
        if converted is None:
            raise AgentFailure("agent sent a malformed event (not a stream response)")
        return converted
