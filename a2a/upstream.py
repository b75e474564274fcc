"""JSON-RPC calls and SSE streams to one remote agent, in the version that agent speaks.

Callers pass and get 1.0 JSON; a 0.3 agent's traffic is translated here. Two bindings:
JSON-RPC (`AgentConnection`, preferred) and HTTP+JSON (`RestConnection`); both satisfy
`AgentTransport`, which is all the hub uses, so an in-process agent can stand in for them.

Every failure of the agent (unreachable, HTTP error, malformed JSON or events, silence)
surfaces as `AgentFailure`, which the hub counts against the agent's breaker; an A2A error the
agent answered with is an `A2aError` (the agent is fine, the request was not).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson

from a2a.credentials import Credentials, credential_error
from a2a.errors import UNSUPPORTED_OPERATION, A2aError, error_from_body, from_error_member
from a2a.versions.common import V03
from a2a.versions.jsonrpc03 import (
    METHODS_V10_TO_V03,
    event_from_rpc03,
    params_to_rpc03,
    result_from_rpc03,
)
from a2a.versions.rest03 import send_params_to_rest03, stream_response_from_rest03, task_from_rest03
from router_core import SseParser, tracing
from router_core.exchange import ExchangeError, ExchangeTimeout, get_exchanges
from router_core.http import get_session

log = logging.getLogger(__name__)

_ids = itertools.count(1)

SessionFactory = Callable[[], aiohttp.ClientSession]

MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""A whole (non-streamed) answer's bound: far above any task or message a hub relays, low
enough that a runaway agent cannot exhaust Junction's memory."""


class AgentFailure(Exception):
    """The agent did not answer properly: unreachable, HTTP error, malformed answer, timeout."""


def _default_session() -> aiohttp.ClientSession:
    return get_session()


class AgentTransport(Protocol):
    """How the hub reaches one agent, whatever the wire: JSON-RPC, HTTP+JSON, or in-process.

    Callers pass 1.0 params and get 1.0 results. The hub uses `SendMessage`,
    `SendStreamingMessage`, `GetTask`, `CancelTask` and `SubscribeToTask`. An A2A error answer
    is raised as `A2aError` (the agent is fine); a broken agent as `AgentFailure` (its breaker
    counts it).
    """

    version: str

    async def call(self, method_v10: str, params: dict[str, Any]) -> Any: ...

    def stream(self, method_v10: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]: ...


class _HttpAgent:
    """What both HTTP bindings share: headers, limits, the pooled session, SSE reading."""

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
        credentials: Credentials | None = None,
        name: str | None = None,
    ) -> None:
        self.url = url
        self.version = version
        self.credentials = credentials
        """What the agent's card asks for (`a2a.credentials`), added to every request."""
        self.name = name or url
        self.headers = {
            "Content-Type": "application/json",
            "A2A-Version": version,
            **(headers or {}),
        }
        self._session = session
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.max_event_bytes = max_event_bytes

    async def _headers(self, *, stream: bool = False) -> dict[str, str]:
        """Per request: the trace context of the request being served and the agent's
        credentials join the fixed headers."""
        extra = tracing.headers()
        if stream:
            extra["Accept"] = "text/event-stream"
        if self.credentials is not None:
            extra.update(await self.credentials.headers())
        return {**self.headers, **extra} if extra else self.headers

    def _retry(self, status: int, attempt: int) -> bool:
        """A first 401 with credentials that can be renewed (a token the agent no longer
        takes) is tried once more with a fresh one; the agent did not act on it."""
        return (
            status == 401
            and attempt == 0
            and self.credentials is not None
            and self.credentials.renew()
        )

    def _unauthorized(self, status: int, challenge: str | None) -> A2aError:
        """The agent refused Junction's credentials: a clear error, not a broken agent."""
        detail = f"; WWW-Authenticate: {challenge[:300]}" if challenge else ""
        what = "no credentials" if self.credentials is None else "Junction's credentials"
        return credential_error(self.name, f"the agent refused {what} (HTTP {status}{detail})")

    async def _open(self, verb: str, url: str, body: bytes | None, *, stream: bool) -> Any:
        """Send one request and wait for its head; the caller releases the response."""
        for attempt in (0, 1):
            headers = await self._headers(stream=stream)
            try:
                async with asyncio.timeout(self.request_timeout):
                    response = await self._session().request(
                        verb, url, data=body, headers=headers, allow_redirects=False
                    )
            except TimeoutError:
                raise AgentFailure(
                    f"agent did not answer within {self.request_timeout:g} s"
                ) from None
            except aiohttp.ClientError as exc:
                raise AgentFailure(f"agent unreachable: {exc}") from None
            if response.status in (401, 403):
                response.release()
                if self._retry(response.status, attempt):
                    continue
                raise self._unauthorized(response.status, response.headers.get("WWW-Authenticate"))
            return response
        raise AssertionError("unreachable")

    async def _exchange(self, verb: str, url: str, body: bytes | None) -> tuple[int, bytes]:
        """One whole request/response within `request_timeout`: the status and the body."""
        for attempt in (0, 1):
            headers = await self._headers()
            status, raw, challenge = await self._once(verb, url, body, headers)
            if status in (401, 403):
                if self._retry(status, attempt):
                    continue
                raise self._unauthorized(status, challenge)
            return status, raw
        raise AssertionError("unreachable")

    async def _once(
        self, verb: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes, str | None]:
        """Status, body and WWW-Authenticate of one exchange: on `router_core.exchange` (a
        bare keep-alive exchange, ~130-200 us of CPU a call less than aiohttp's, see
        docs/performance.md) unless a session was injected or a proxy applies to the URL."""
        exchanges = get_exchanges() if self._session is _default_session else None
        if exchanges is not None and exchanges.usable(url):
            try:
                answer = await exchanges.send(
                    verb,
                    url,
                    headers,
                    body,
                    timeout=self.request_timeout,
                    max_body=MAX_ANSWER_BYTES,
                )
            except ExchangeTimeout:
                raise AgentFailure(
                    f"agent did not answer within {self.request_timeout:g} s"
                ) from None
            except ExchangeError as exc:
                raise AgentFailure(f"agent unreachable: {exc}") from None
            return answer.status, answer.body, answer.headers.get("www-authenticate")
        try:
            async with asyncio.timeout(self.request_timeout):
                async with self._session().request(
                    verb, url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    raw = await response.read()
                    return response.status, raw, response.headers.get("WWW-Authenticate")
        except TimeoutError:
            raise AgentFailure(f"agent did not answer within {self.request_timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise AgentFailure(f"agent unreachable: {exc}") from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """A whole answer to a stream request that came back as plain JSON, under the same
        limits as an event: `request_timeout` and `max_event_bytes`."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.request_timeout):
                while chunk := await response.content.read(65536):
                    size += len(chunk)
                    if size > self.max_event_bytes:
                        raise AgentFailure("agent sent an oversized answer")
                    chunks.append(chunk)
        except TimeoutError:
            raise AgentFailure(f"agent did not answer within {self.request_timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise AgentFailure(f"agent unreachable: {exc}") from None
        return b"".join(chunks)

    async def _events(self, response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
        """(event type, data) of each SSE event with data, as soon as it is complete."""
        parser = SseParser()
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
            try:
                events = parser.feed(chunk)
            except ValueError:  # a line beyond the parser's own limit
                raise AgentFailure("agent sent an oversized event") from None
            if events:
                pending = 0
            for event in events:
                yield event.event, event.data.decode("utf-8", "replace")


def _json(data: bytes | str, what: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise AgentFailure(f"agent sent a malformed {what} (not JSON)") from None


class AgentConnection(_HttpAgent):
    """One agent's JSON-RPC interface."""

    def _body(self, method_v10: str, params: dict[str, Any]) -> bytes:
        method = method_v10
        if self.version == V03:
            method = METHODS_V10_TO_V03[method_v10]
            params = params_to_rpc03(method_v10, params)
        return orjson.dumps(
            {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}
        )

    async def call(self, method_v10: str, params: dict[str, Any]) -> Any:
        """One request/response; returns the 1.0 result."""
        status, raw = await self._exchange("POST", self.url, self._body(method_v10, params))
        if status != 200:
            raise AgentFailure(f"agent answered HTTP {status}")
        return self._result(method_v10, raw)

    def _result(self, method_v10: str, raw: bytes) -> Any:
        reply = _json(raw, "answer")
        if not isinstance(reply, dict):
            raise AgentFailure("agent answered with a non-object")
        if "error" in reply:
            raise from_error_member(reply["error"])
        if "result" not in reply:
            raise AgentFailure("agent reply has neither result nor error")
        result = reply["result"]
        if self.version == V03:
            result = result_from_rpc03(method_v10, result)
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
        response = await self._open("POST", self.url, self._body(method_v10, params), stream=True)
        try:
            if response.status != 200:
                raise AgentFailure(f"agent answered HTTP {response.status}")
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                # An up-front JSON-RPC answer: an error, or a result from an agent that does not stream.
                raw = await self._read(response)
                result = self._result(
                    "SendMessage" if method_v10 != "SubscribeToTask" else "GetTask", raw
                )
                yield {"task": result} if method_v10 == "SubscribeToTask" else result
                return
            async for _, data in self._events(response):
                yield self._event(data)
        finally:
            response.release()

    def _event(self, data: str) -> dict[str, Any]:
        message = _json(data, "event")
        if not isinstance(message, dict):
            raise AgentFailure("agent sent a malformed event (not an object)")
        if "error" in message:
            raise from_error_member(message["error"])
        result = message.get("result")
        if self.version == V03:
            converted = event_from_rpc03(result)
        else:
            converted = result if isinstance(result, dict) else None
            if converted is not None and len(converted.keys() & _PAYLOADS) != 1:
                converted = None
        if converted is None:
            raise AgentFailure("agent sent a malformed event (not a stream response)")
        return converted


_PAYLOADS = frozenset({"task", "message", "statusUpdate", "artifactUpdate"})


class RestConnection(_HttpAgent):
    """One agent's HTTP+JSON (REST) interface: 1.0 at `{url}/...`, 0.3 at `{url}/v1/...`.

    For agents whose card offers no JSON-RPC interface. 0.3 bodies are the 0.3 proto's JSON
    (`content` parts, `TASK_STATE_CANCELLED`), translated here both ways.
    """

    def __init__(self, url: str, version: str, **options: Any) -> None:
        super().__init__(url, version, **options)
        self.base = url.rstrip("/") + ("/v1" if version == V03 else "")

    def _route(self, method_v10: str, params: dict[str, Any]) -> tuple[str, str, bytes | None]:
        """The verb, URL and body of one 1.0 method call."""
        legacy = self.version == V03
        if method_v10 in ("SendMessage", "SendStreamingMessage"):
            body = send_params_to_rest03(params) if legacy else params
            action = "send" if method_v10 == "SendMessage" else "stream"
            return "POST", f"{self.base}/message:{action}", orjson.dumps(body)
        task = quote(str(params.get("id", "")), safe="")
        if method_v10 == "GetTask":
            query = ""
            if params.get("historyLength") is not None:
                query = f"?historyLength={int(params['historyLength'])}"
            return "GET", f"{self.base}/tasks/{task}{query}", None
        if method_v10 == "CancelTask":
            extra = {} if legacy else {k: v for k, v in params.items() if k == "metadata"}
            return "POST", f"{self.base}/tasks/{task}:cancel", orjson.dumps(extra)
        if method_v10 == "SubscribeToTask":
            return "POST", f"{self.base}/tasks/{task}:subscribe", None
        raise A2aError(UNSUPPORTED_OPERATION, f"{method_v10} is not relayed to HTTP+JSON agents")

    def _refusal(self, status: int, raw: bytes) -> Exception:
        """A non-200 answer: the agent's A2A error if it sent one, else a broken agent."""
        with contextlib.suppress(orjson.JSONDecodeError):
            error = error_from_body(orjson.loads(raw))
            if error is not None:
                return error
        return AgentFailure(f"agent answered HTTP {status}")

    def _payload(self, value: Any) -> dict[str, Any] | None:
        """A StreamResponse / SendMessageResponse in 1.0 shape, or None if it is not one."""
        if self.version == V03:
            return stream_response_from_rest03(value)
        if isinstance(value, dict) and len(value.keys() & _PAYLOADS) == 1:
            return value
        return None

    def _converted(self, method_v10: str, value: Any) -> Any:
        if method_v10 == "SendMessage":
            result = self._payload(value)
            if result is None or len(result.keys() & {"task", "message"}) != 1:
                raise AgentFailure("agent answered message:send with neither a task nor a message")
            return result
        if not isinstance(value, dict):
            raise AgentFailure("agent answered with a non-object")
        return task_from_rest03(value) if self.version == V03 else value

    async def call(self, method_v10: str, params: dict[str, Any]) -> Any:
        """One request/response; returns the 1.0 result."""
        verb, url, body = self._route(method_v10, params)
        status, raw = await self._exchange(verb, url, body)
        if status != 200:
            raise self._refusal(status, raw)
        return self._converted(method_v10, _json(raw, "answer"))

    async def stream(
        self, method_v10: str, params: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        """The agent's events as 1.0 StreamResponse dicts (see `AgentConnection.stream`)."""
        verb, url, body = self._route(method_v10, params)
        response = await self._open(verb, url, body, stream=True)
        try:
            if response.status != 200:
                raise self._refusal(response.status, await self._read(response))
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                raw = _json(await self._read(response), "answer")
                if method_v10 == "SubscribeToTask":
                    yield {"task": self._converted("GetTask", raw)}
                else:
                    yield self._converted("SendMessage", raw)
                return
            async for kind, data in self._events(response):
                value = _json(data, "event")
                if kind == "error":
                    raise error_from_body(value) or AgentFailure(
                        "agent sent a malformed error event"
                    )
                event = self._payload(value)
                if event is None:
                    raise AgentFailure("agent sent a malformed event (not a stream response)")
                yield event
        finally:
            response.release()
