"""Fake LLM servers for tests: real HTTP on loopback (Starlette under uvicorn), speaking the
OpenAI chat-completions, Ollama native and Anthropic Messages wire formats, with scripted
answers and switchable faults.

Usage::

    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="hi"), Reply(tool_calls=[Call("get_time", {"tz": "UTC"})])])
        backend = OpenAIBackend("local", server.url)   # server.url: http://127.0.0.1:PORT
        ...                                              # 1st chat request gets "hi", 2nd the call
        assert server.chat_requests[0].body["model"] == "m1"

Scripting:
- `server.script([...])` replaces the queue of answers; each chat request takes the next one.
  An entry is a `Reply` or a function `Received -> Reply` (to answer from the request). When the
  queue is empty, `server.default` answers (a Reply or a function; by default a fixed text).
- `Reply(text=, reasoning=, tool_calls=[Call(name, arguments, id=None)], finish_reason=,
  usage=(prompt, completion), chunk_size=, latency=, chunk_delay=, fault=)`. Text, reasoning and
  tool-call arguments are streamed in pieces of `chunk_size` characters, one event per piece,
  so tool-call arguments always arrive split across chunks. `finish_reason` is normalised
  ("stop", "length", "tool_calls", "content_filter"; default "tool_calls" when there are calls)
  and sent in each API's own words; `native_finish_reason` sends a raw value instead.
  `Call.arguments` is a dict (sent as JSON) or a str sent verbatim (e.g. invalid JSON).
- Faults: `Reply(fault=...)` for one request, or `server.fault(...)` for every request
  (chat, model list, probe) until `server.fault(None)`:
  `Fault.http(500)`, `Fault.rate_limit(retry_after="2")`, `Fault.hang()` (accept, read the
  request, never answer), `Fault.reset(after=2)` (TCP reset after 2 stream events),
  `Fault.truncate(after=2)` (end the response cleanly after 2 events, without the API's end
  marker), `Fault.malformed(after=1)` (an unparsable event/body), `Fault.stream_error(after=1,
  status=529)` (an error reported inside the stream), `Fault.wrong_content_type()` (200 text/html).
- Observing: `server.requests` (every request, `Received(method, path, headers, body, raw)`),
  `server.chat_requests`, `server.disconnects` (responses the client abandoned before their end:
  a cancelled stream, a timed-out hang) and `await server.wait_disconnect()`.
- Framing knobs: `server.crlf = True` (SSE lines end in CRLF), `server.comments = True`
  (a `: keep-alive` comment before every SSE event), `server.reasoning_field` (OpenAI:
  "reasoning_content" by default, or "reasoning"), `api_key=` on the context manager (requests
  without it get 401).

SSE and NDJSON are written by hand here, not with sse-starlette: faults need byte-exact control
(malformed events, cuts at a given event, CRLF framing).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.transports.servers import serve_app

FaultKind = Literal[
    "http", "hang", "reset", "truncate", "malformed", "stream_error", "wrong_content_type"
]
TRANSPORT_KEY = "fake_llm.transport"


@dataclass(frozen=True)
class Call:
    """A tool call the fake model makes. A str `arguments` is sent verbatim (may be invalid)."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def raw(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments))

    def value(self) -> Any:
        """The arguments as a JSON value (for APIs that send objects, not text)."""
        if isinstance(self.arguments, str):
            try:
                return json.loads(self.arguments)
            except ValueError:
                return self.arguments
        return dict(self.arguments)


@dataclass(frozen=True)
class Fault:
    """Something going wrong; build with the classmethods."""

    kind: FaultKind
    status: int = 500
    retry_after: str | None = None
    after: int = 1
    message: str = "injected fault"

    @classmethod
    def http(cls, status: int = 500, *, retry_after: str | None = None) -> Fault:
        """Answer with this error status (and Retry-After, if given) in the API's error shape."""
        return cls("http", status=status, retry_after=retry_after)

    @classmethod
    def rate_limit(cls, retry_after: str = "1") -> Fault:
        return cls("http", status=429, retry_after=retry_after, message="rate limited")

    @classmethod
    def hang(cls) -> Fault:
        """Read the request and never answer (until the client gives up)."""
        return cls("hang")

    @classmethod
    def reset(cls, after: int = 1) -> Fault:
        """Reset the TCP connection after `after` stream events (at once when not streaming)."""
        return cls("reset", after=after)

    @classmethod
    def truncate(cls, after: int = 1) -> Fault:
        """End the HTTP response cleanly after `after` events, without the end-of-stream marker."""
        return cls("truncate", after=after)

    @classmethod
    def malformed(cls, after: int = 1) -> Fault:
        """Send an unparsable event after `after` good ones (an unparsable body if not streaming)."""
        return cls("malformed", after=after)

    @classmethod
    def stream_error(cls, after: int = 1, status: int = 500) -> Fault:
        """Report an error inside the stream after `after` events (an error status if not)."""
        return cls("stream_error", status=status, after=after, message="upstream failed")

    @classmethod
    def wrong_content_type(cls) -> Fault:
        """200 with an HTML page, as a misconfigured reverse proxy would."""
        return cls("wrong_content_type")


@dataclass(frozen=True)
class Reply:
    """One scripted answer; see the module docstring."""

    text: str = ""
    reasoning: str = ""
    tool_calls: Sequence[Call] = ()
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    usage: tuple[int, int] | None = (10, 5)
    chunk_size: int = 4
    latency: float = 0.0
    chunk_delay: float = 0.0
    fault: Fault | None = None
    signature: str = "fake-signature"
    """Anthropic: the thinking block's signature (sent when there is reasoning)."""

    @property
    def finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def pieces(self, text: str) -> list[str]:
        size = max(1, self.chunk_size)
        return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass
class Received:
    """A request the server got."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    client_port: int | None = None
    """The client's TCP port: equal ports mean a reused (pooled) connection."""


Responder = Reply | Callable[[Received], Reply]


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc)


class FakeLLMServer:
    """State and shared plumbing; the subclasses speak each API."""

    kind = ""
    chat_path = ""
    stream_media_type = "text/event-stream"

    def __init__(self, models: Sequence[str], api_key: str | None) -> None:
        self.url = ""
        self.models = list(models)
        self.api_key = api_key
        self.requests: list[Received] = []
        self.default: Responder = Reply(text="Hello from the fake model.")
        self.disconnects = 0
        self.crlf = False
        self.comments = False
        self._queue: list[Responder] = []
        self._fault: Fault | None = None
        self._disconnected = asyncio.Event()
        self._closing = asyncio.Event()
        self._ids = 0

    # -- the test-facing API ------------------------------------------------------------------

    def script(self, replies: Iterable[Responder]) -> None:
        """Replace the queue of answers; each chat request consumes one."""
        self._queue = list(replies)

    def fault(self, fault: Fault | None) -> None:
        """Apply `fault` to every request from now on (None: stop)."""
        self._fault = fault

    @property
    def chat_requests(self) -> list[Received]:
        return [r for r in self.requests if r.path == self.chat_path]

    @property
    def remaining(self) -> int:
        """Scripted answers not yet consumed."""
        return len(self._queue)

    async def wait_disconnect(self, timeout: float = 2.0) -> None:
        """Wait until some response was abandoned by its client (see `disconnects`)."""
        await asyncio.wait_for(self._disconnected.wait(), timeout)

    # -- plumbing ----------------------------------------------------------------------------

    def next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self._ids}"

    def app(self) -> ASGIApp:
        inner = Starlette(routes=self.routes())

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            # uvicorn's `send` is a method of the object that owns the connection's transport;
            # keep it so a reset fault can abort the connection (a real RST).
            owner = getattr(send, "__self__", None)
            scope[TRANSPORT_KEY] = getattr(owner, "transport", None)
            await inner(scope, receive, send)

        return app

    def routes(self) -> list[Route]:
        raise NotImplementedError

    async def record(self, request: Request) -> Received:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        received = Received(
            request.method,
            request.url.path,
            dict(request.headers.items()),
            body,
            raw,
            request.client.port if request.client else None,
        )
        self.requests.append(received)
        return received

    def authorized(self, request: Request) -> bool:
        return self.api_key is None or self.presented_key(request) == self.api_key

    def presented_key(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def next_reply(self, received: Received) -> Reply:
        responder = self._queue.pop(0) if self._queue else self.default
        return responder if isinstance(responder, Reply) else responder(received)

    def sse(self, event: str | None, doc: Any) -> bytes:
        """One SSE event (data given as a JSON value, or bytes sent as they are)."""
        data = doc if isinstance(doc, bytes) else _json(doc)
        text = (b"event: " + event.encode() + b"\n" if event else b"") + b"data: " + data + b"\n\n"
        if self.comments:
            text = b": keep-alive\n\n" + text
        return text.replace(b"\n", b"\r\n") if self.crlf else text

    # API specifics, per subclass.
    def error_body(self, fault: Fault) -> bytes:
        raise NotImplementedError

    def wants_stream(self, body: Any) -> bool:
        return bool(isinstance(body, dict) and body.get("stream"))

    def stream_events(self, reply: Reply, received: Received) -> list[bytes]:
        raise NotImplementedError

    def complete_body(self, reply: Reply, received: Received) -> bytes:
        raise NotImplementedError

    def stream_fault_events(self, fault: Fault) -> list[bytes]:
        """What a malformed / stream_error fault sends in place of the rest of the stream."""
        raise NotImplementedError

    # -- request handling ----------------------------------------------------------------------

    def error_response(self, fault: Fault) -> Response:
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        return Response(
            self.error_body(fault), fault.status, headers, media_type="application/json"
        )

    def unauthorized(self) -> Response:
        return self.error_response(Fault("http", status=401, message="invalid api key"))

    async def fault_response(self, request: Request, fault: Fault, stream: bool) -> Response | None:
        """The response for a fault that applies before any body is sent, else None."""
        if fault.kind == "http" or (fault.kind == "stream_error" and not stream):
            return self.error_response(fault)
        if fault.kind == "hang":
            return await self.hang(request)
        if fault.kind == "wrong_content_type":
            return HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>")
        if not stream and fault.kind == "reset":
            self.abort(request)
            return Response(status_code=204)  # never reaches anyone: the connection is gone
        if not stream and fault.kind in ("malformed", "truncate"):
            return Response(
                b'{"choices": [{"message": {"content": "cut', 200, media_type="application/json"
            )
        return None

    async def simple(self, request: Request, document: Callable[[], Any]) -> Response:
        """A GET endpoint (model list, version) that the sticky fault applies to."""
        await self.record(request)
        if not self.authorized(request):
            return self.unauthorized()
        if self._fault is not None:
            response = await self.fault_response(request, self._fault, stream=False)
            if response is not None:
                return response
        return Response(_json(document()), media_type="application/json")

    async def chat(self, request: Request) -> Response:
        received = await self.record(request)
        if not self.authorized(request):
            return self.unauthorized()
        # A sticky fault leaves the script alone: the answers are for requests that get through.
        reply = Reply() if self._fault is not None else self.next_reply(received)
        fault = self._fault or reply.fault
        if reply.latency:
            await asyncio.sleep(reply.latency)
        stream = self.wants_stream(received.body)
        if fault is not None:
            response = await self.fault_response(request, fault, stream)
            if response is not None:
                return response
        if not stream:
            return Response(self.complete_body(reply, received), media_type="application/json")
        events = self.stream_events(reply, received)
        return StreamingResponse(
            self.stream_body(request, events, reply, fault), media_type=self.stream_media_type
        )

    async def stream_body(
        self, request: Request, events: list[bytes], reply: Reply, fault: Fault | None
    ) -> AsyncIterator[bytes]:
        finished = False
        try:
            for i, event in enumerate(events):
                if fault is not None and i == fault.after:
                    if fault.kind == "reset":
                        finished = True  # our doing, not the client's
                        self.abort(request)
                        await asyncio.sleep(30)  # cancelled when uvicorn sees the connection go
                    elif fault.kind in ("malformed", "stream_error"):
                        for bad in self.stream_fault_events(fault):
                            yield bad
                    finished = True
                    return
                if i and reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                yield event
            finished = True
        finally:
            if not finished:
                self.note_disconnect()

    def note_disconnect(self) -> None:
        self.disconnects += 1
        self._disconnected.set()

    def abort(self, request: Request) -> None:
        transport = request.scope.get(TRANSPORT_KEY)
        if transport is None:
            raise RuntimeError("injected connection reset")  # uvicorn closes the connection
        transport.abort()

    async def hang(self, request: Request) -> Response:
        """Wait for the client to go away (or the server to close); never answer."""

        async def client_gone() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.ensure_future(client_gone())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({gone, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (gone, closing):
                task.cancel()
        if gone.done() and not gone.cancelled():
            self.note_disconnect()
        else:
            with contextlib.suppress(RuntimeError):
                self.abort(request)
        return Response(status_code=204)  # never reaches anyone: the connection is gone


def fake_vector(item: Any) -> list[float]:
    """A fake embedding that tells inputs apart: [length, first code point or token]."""
    first = (ord(item[0]) if item else 0) if isinstance(item, str) else (item[0] if item else 0)
    return [float(len(item)), float(first)]


# -- OpenAI -------------------------------------------------------------------------------------


_OPENAI_ERROR_TYPES = {401: "invalid_request_error", 429: "rate_limit_exceeded"}


class OpenAIServer(FakeLLMServer):
    """`POST /v1/chat/completions`, `GET /v1/models`."""

    kind = "openai"
    chat_path = "/v1/chat/completions"

    def __init__(self, models: Sequence[str], api_key: str | None) -> None:
        super().__init__(models, api_key)
        self.reasoning_field = "reasoning_content"

    def routes(self) -> list[Route]:
        return [
            Route(self.chat_path, self.chat, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
        ]

    async def embeddings(self, request: Request) -> Response:
        """OpenAI's embeddings: one small vector per input, derived from it (`fake_vector`)."""
        received = await self.record(request)
        if not self.authorized(request):
            return self.unauthorized()
        if self._fault is not None:
            response = await self.fault_response(request, self._fault, stream=False)
            if response is not None:
                return response
        raw = received.body["input"]
        inputs = [raw] if isinstance(raw, str) else raw
        data = [
            {"object": "embedding", "index": i, "embedding": fake_vector(item)}
            for i, item in enumerate(inputs)
        ]
        usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
        doc = {"object": "list", "data": data, "model": received.body["model"], "usage": usage}
        return Response(_json(doc), media_type="application/json")

    async def list_models(self, request: Request) -> Response:
        return await self.simple(
            request,
            lambda: {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                    for m in self.models
                ],
            },
        )

    def error_body(self, fault: Fault) -> bytes:
        kind = _OPENAI_ERROR_TYPES.get(fault.status, "server_error")
        return _json(
            {"error": {"message": fault.message, "type": kind, "param": None, "code": None}}
        )

    def _chunk(
        self, base: dict[str, Any], delta: dict[str, Any], finish: str | None = None
    ) -> bytes:
        doc = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return self.sse(None, doc)

    def stream_events(self, reply: Reply, received: Received) -> list[bytes]:
        body = received.body or {}
        base = {
            "id": self.next_id("chatcmpl"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", ""),
        }
        events = [self._chunk(base, {"role": "assistant", "content": ""})]
        events += [
            self._chunk(base, {self.reasoning_field: p}) for p in reply.pieces(reply.reasoning)
        ]
        events += [self._chunk(base, {"content": p}) for p in reply.pieces(reply.text)]
        for index, call in enumerate(reply.tool_calls):
            head = {
                "index": index,
                "id": call.id or self.next_id("call"),
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            events.append(self._chunk(base, {"tool_calls": [head]}))
            events += [
                self._chunk(base, {"tool_calls": [{"index": index, "function": {"arguments": p}}]})
                for p in reply.pieces(call.raw())
            ]
        events.append(self._chunk(base, {}, reply.native_finish_reason or reply.finish))
        if reply.usage is not None and (body.get("stream_options") or {}).get("include_usage"):
            prompt, completion = reply.usage
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            events.append(self.sse(None, {**base, "choices": [], "usage": usage}))
        events.append(self.sse(None, b"[DONE]"))
        return events

    def stream_fault_events(self, fault: Fault) -> list[bytes]:
        if fault.kind == "malformed":
            return [self.sse(None, b'{"choices": [{"delta": {"content": "oops"')]
        error = {"message": fault.message, "type": "server_error", "code": fault.status}
        return [self.sse(None, {"error": error}), self.sse(None, b"[DONE]")]

    def complete_body(self, reply: Reply, received: Received) -> bytes:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.reasoning:
            message[self.reasoning_field] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or self.next_id("call"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw()},
                }
                for call in reply.tool_calls
            ]
        doc: dict[str, Any] = {
            "id": self.next_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": (received.body or {}).get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": reply.native_finish_reason or reply.finish,
                }
            ],
        }
        if reply.usage is not None:
            prompt, completion = reply.usage
            doc["usage"] = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
        return _json(doc)


# -- Ollama -------------------------------------------------------------------------------------


_OLLAMA_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "stop",
    "content_filter": "stop",
}


class OllamaServer(FakeLLMServer):
    """`POST /api/chat` (NDJSON), `GET /api/tags`, `GET /api/version`."""

    kind = "ollama"
    chat_path = "/api/chat"
    stream_media_type = "application/x-ndjson"

    def routes(self) -> list[Route]:
        return [
            Route(self.chat_path, self.chat, methods=["POST"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/version", self.version, methods=["GET"]),
            Route("/api/embed", self.embed, methods=["POST"]),
        ]

    async def embed(self, request: Request) -> Response:
        """Ollama's `/api/embed`: `{"embeddings": [[...], ...], "prompt_eval_count": n}`."""
        received = await self.record(request)
        raw = received.body["input"]
        inputs = [raw] if isinstance(raw, str) else raw
        doc = {
            "model": received.body["model"],
            "embeddings": [fake_vector(item) for item in inputs],
            "prompt_eval_count": 3 * len(inputs),
        }
        return Response(_json(doc), media_type="application/json")

    async def tags(self, request: Request) -> Response:
        return await self.simple(
            request,
            lambda: {
                "models": [
                    {
                        "name": m,
                        "model": m,
                        "modified_at": "2025-01-01T00:00:00Z",
                        "size": 1,
                        "digest": "0" * 64,
                    }
                    for m in self.models
                ]
            },
        )

    async def version(self, request: Request) -> Response:
        return await self.simple(request, lambda: {"version": "0.0.0-fake"})

    def wants_stream(self, body: Any) -> bool:
        return bool(not isinstance(body, dict) or body.get("stream", True))  # Ollama's default

    def error_body(self, fault: Fault) -> bytes:
        return _json({"error": fault.message})

    @staticmethod
    def _line(doc: Any) -> bytes:
        return _json(doc) + b"\n"

    def _message(self, model: str, message: dict[str, Any]) -> bytes:
        return self._line(
            {
                "model": model,
                "created_at": "2025-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": "", **message},
                "done": False,
            }
        )

    def _calls(self, reply: Reply) -> list[dict[str, Any]]:
        calls = []
        for call in reply.tool_calls:
            raw: dict[str, Any] = {"function": {"name": call.name, "arguments": call.value()}}
            if call.id:
                raw["id"] = call.id
            calls.append(raw)
        return calls

    def _final(self, reply: Reply, model: str, message: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "model": model,
            "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "", **message},
            "done": True,
            "done_reason": reply.native_finish_reason or _OLLAMA_FINISH.get(reply.finish, "stop"),
            "total_duration": 1000,
        }
        if reply.usage is not None:
            doc["prompt_eval_count"], doc["eval_count"] = reply.usage
        return doc

    def stream_events(self, reply: Reply, received: Received) -> list[bytes]:
        model = (received.body or {}).get("model", "")
        events = [self._message(model, {"thinking": p}) for p in reply.pieces(reply.reasoning)]
        events += [self._message(model, {"content": p}) for p in reply.pieces(reply.text)]
        if reply.tool_calls:
            events.append(self._message(model, {"tool_calls": self._calls(reply)}))
        events.append(self._line(self._final(reply, model, {})))
        return events

    def stream_fault_events(self, fault: Fault) -> list[bytes]:
        if fault.kind == "malformed":
            return [b'{"message": {"content": "oops"\n']
        return [self._line({"error": fault.message})]

    def complete_body(self, reply: Reply, received: Received) -> bytes:
        message: dict[str, Any] = {"content": reply.text}
        if reply.reasoning:
            message["thinking"] = reply.reasoning
        if reply.tool_calls:
            message["tool_calls"] = self._calls(reply)
        return _json(self._final(reply, (received.body or {}).get("model", ""), message))


# -- Anthropic ----------------------------------------------------------------------------------


_ANTHROPIC_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class AnthropicServer(FakeLLMServer):
    """`POST /v1/messages` (SSE events), `GET /v1/models`."""

    kind = "anthropic"
    chat_path = "/v1/messages"

    def routes(self) -> list[Route]:
        return [
            Route(self.chat_path, self.chat, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
        ]

    def presented_key(self, request: Request) -> str | None:
        return request.headers.get("x-api-key")

    async def list_models(self, request: Request) -> Response:
        def document() -> dict[str, Any]:
            limit = int(request.query_params.get("limit", "20"))
            after = request.query_params.get("after_id")
            start = self.models.index(after) + 1 if after in self.models else 0
            page = self.models[start : start + limit]
            return {
                "data": [
                    {
                        "type": "model",
                        "id": m,
                        "display_name": m,
                        "created_at": "2025-01-01T00:00:00Z",
                    }
                    for m in page
                ],
                "has_more": start + limit < len(self.models),
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            }

        return await self.simple(request, document)

    def _error_doc(self, fault: Fault) -> dict[str, Any]:
        kind = _ANTHROPIC_ERROR_TYPES.get(fault.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": fault.message}}

    def error_body(self, fault: Fault) -> bytes:
        return _json(self._error_doc(fault))

    def _event(self, doc: dict[str, Any]) -> bytes:
        return self.sse(doc["type"], doc)

    def stream_events(self, reply: Reply, received: Received) -> list[bytes]:
        body = received.body or {}
        prompt, completion = reply.usage or (0, 0)
        events = [
            self._event(
                {
                    "type": "message_start",
                    "message": {
                        "id": self.next_id("msg"),
                        "type": "message",
                        "role": "assistant",
                        "model": body.get("model", ""),
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": prompt, "output_tokens": 1},
                    },
                }
            ),
            self._event({"type": "ping"}),
        ]
        index = 0

        def block(start: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
            nonlocal index
            events.append(
                self._event({"type": "content_block_start", "index": index, "content_block": start})
            )
            events.extend(
                self._event({"type": "content_block_delta", "index": index, "delta": d})
                for d in deltas
            )
            events.append(self._event({"type": "content_block_stop", "index": index}))
            index += 1

        if reply.reasoning:
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in reply.pieces(reply.reasoning)
            ]
            deltas.append({"type": "signature_delta", "signature": reply.signature})
            block({"type": "thinking", "thinking": ""}, deltas)
        if reply.text:
            block(
                {"type": "text", "text": ""},
                [{"type": "text_delta", "text": p} for p in reply.pieces(reply.text)],
            )
        for call in reply.tool_calls:
            block(
                {
                    "type": "tool_use",
                    "id": call.id or self.next_id("toolu"),
                    "name": call.name,
                    "input": {},
                },
                [{"type": "input_json_delta", "partial_json": p} for p in reply.pieces(call.raw())],
            )
        stop = reply.native_finish_reason or _ANTHROPIC_FINISH.get(reply.finish, "end_turn")
        delta_usage = {"output_tokens": completion} if reply.usage is not None else {}
        events.append(
            self._event(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": delta_usage,
                }
            )
        )
        events.append(self._event({"type": "message_stop"}))
        return events

    def stream_fault_events(self, fault: Fault) -> list[bytes]:
        if fault.kind == "malformed":
            return [self.sse("content_block_delta", b'{"type": "content_block_delta", "ind')]
        return [self.sse("error", self._error_doc(fault))]

    def complete_body(self, reply: Reply, received: Received) -> bytes:
        content: list[dict[str, Any]] = []
        if reply.reasoning:
            content.append(
                {"type": "thinking", "thinking": reply.reasoning, "signature": reply.signature}
            )
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for call in reply.tool_calls:
            content.append(
                {
                    "type": "tool_use",
                    "id": call.id or self.next_id("toolu"),
                    "name": call.name,
                    "input": call.value(),
                }
            )
        prompt, completion = reply.usage or (0, 0)
        doc = {
            "id": self.next_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": (received.body or {}).get("model", ""),
            "content": content,
            "stop_reason": reply.native_finish_reason
            or _ANTHROPIC_FINISH.get(reply.finish, "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }
        return _json(doc)


# -- running them -------------------------------------------------------------------------------


S = TypeVar("S", bound=FakeLLMServer)


@asynccontextmanager
async def serve(server: S) -> AsyncIterator[S]:
    """Run `server` under uvicorn on a free loopback port until the block ends."""
    async with serve_app(server.app()) as url:
        server.url = url
        try:
            yield server
        finally:
            server._closing.set()  # releases hung handlers before uvicorn waits for them


def openai_server(
    models: Sequence[str] = ("fake-model",), *, api_key: str | None = None
) -> contextlib.AbstractAsyncContextManager[OpenAIServer]:
    """An OpenAI-compatible server (`server.url` is the root; backends add `/v1`)."""
    return serve(OpenAIServer(models, api_key))


def ollama_server(
    models: Sequence[str] = ("fake-model",), *, api_key: str | None = None
) -> contextlib.AbstractAsyncContextManager[OllamaServer]:
    """An Ollama-shaped server."""
    return serve(OllamaServer(models, api_key))


def anthropic_server(
    models: Sequence[str] = ("fake-model",), *, api_key: str | None = None
) -> contextlib.AbstractAsyncContextManager[AnthropicServer]:
    """An Anthropic-shaped server (checks `x-api-key` when `api_key` is given)."""
    return serve(AnthropicServer(models, api_key))


SERVERS: dict[str, Callable[..., contextlib.AbstractAsyncContextManager[Any]]] = {
    "openai": openai_server,
    "ollama": ollama_server,
    "anthropic": anthropic_server,
}
"""Backend type -> context manager, for tests parametrised over the three APIs."""
