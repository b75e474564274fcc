"""The OpenAI-compatible chat surface over a Router: `POST /v1/chat/completions` (the other
model routes are assembled in `router_core.routes`).

`/v1/chat/completions` is a plain ASGI app rather than a Starlette endpoint: it is the hot path,
and skipping the Request/Response objects keeps Junction's added latency small. When the chosen
backend speaks OpenAI and nothing needs translating, the upstream's bytes are relayed as they
arrive (`OpenAIBackend.forward`), cut only at SSE event boundaries so an error event can always
be appended cleanly; other backends' normalised streams are encoded as OpenAI chunks.

Every chat response carries `x-junction-backend` (the backend that answered, or tried last;
`none` when none was) and `x-junction-overhead-ms` (time spent in Junction itself, i.e. not
waiting on a backend, until the response headers). Errors are OpenAI-shaped JSON; no stack trace
ever reaches a client (unexpected failures are logged and answered with a plain 500).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from router_core.access import OUTSIDE_MODEL_GLOBS, allowed_models, model_allowed
from router_core.audit import audit
from router_core.backends import ForwardResponse, OpenAIBackend, chat_request_from_openai
from router_core.model_spans import record_stream_bytes
from router_core.quota import CHARGE, QUOTA, LimitExceeded, admit, charge_estimate
from router_core.registry import BackendEntry
from router_core.router import (
    BackendFailed,
    Routed,
    Router,
    RouterError,
    RouterStream,
    adapt_request,
)
from router_core.types import (
    BackendDisconnected,
    BackendError,
    BackendHTTPError,
    BackendMalformedResponse,
    BackendTimeout,
    ChatRequest,
    ChatResult,
    Finish,
    ReasoningDelta,
    StreamError,
    StreamEvent,
    TextDelta,
    ToolCallDone,
    Usage,
)
from router_core.validation import check_chat_body

log = logging.getLogger(__name__)

AFFINITY_HEADER = b"x-junction-affinity"
"""A request header carrying the affinity key (e.g. a session id) for consistent_hash."""

_JSON = (b"content-type", b"application/json")
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_SKIPPED_UPSTREAM_HEADERS = frozenset({"set-cookie", "content-type"})
_BOUNDARY_FLUSH = 1024 * 1024
"""Relay a partial event anyway once this much is held back (an upstream without blank lines)."""

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class _BadRequest(Exception):
    """The request cannot be served as written (400), found while translating it."""


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> bytes:
    """An error as OpenAI's API gives it: `{"error": {"message", "type", "param", "code"}}`,
    the type following the status (what the official SDKs map to their exception classes)."""
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "upstream_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def _sse_error(status: int, message: str) -> bytes:
    """The OpenAI in-stream error event (the official SDKs raise on it); no [DONE] follows, so a
    client that waits for one cannot take the partial answer as complete."""
    kind = _ERROR_TYPES.get(status, "upstream_error")
    doc = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def _stream_error_status(error: BackendError | None) -> int:
    if isinstance(error, BackendTimeout):
        return 504
    return 502


def _event_boundary(data: bytes) -> int:
    """Length of the prefix of `data` that ends at an SSE event boundary (0: none)."""
    if data.endswith(b"\n\n"):
        return len(data)
    cut = data.rfind(b"\n\n")
    cut = cut + 2 if cut >= 0 else 0
    crlf = data.rfind(b"\r\n\r\n")
    if crlf >= 0 and crlf + 4 > cut:
        cut = crlf + 4
    if cut == 0 and len(data) >= _BOUNDARY_FLUSH:
        return len(data)
    return cut


# --------------------------------------------------------------------------- translation


def _tool_call_doc(event: ToolCallDone, index: int) -> dict[str, Any]:
    call = event.call
    arguments = (
        call.raw_arguments
        if call.raw_arguments and call.error is None
        else orjson.dumps(call.arguments).decode()
    )
    return {
        "index": index,
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _usage_doc(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion_doc(result: ChatResult, model: str) -> dict[str, Any]:
    """A `chat.completion` object for a normalised answer."""
    message: dict[str, Any] = {"role": "assistant", "content": result.text or None}
    if result.reasoning:
        message["reasoning_content"] = result.reasoning
    if result.tool_calls:
        message["tool_calls"] = [
            {k: v for k, v in _tool_call_doc(ToolCallDone(c), i).items() if k != "index"}
            for i, c in enumerate(result.tool_calls)
        ]
    doc: dict[str, Any] = {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason}],
    }
    if result.usage is not None:
        doc["usage"] = _usage_doc(result.usage)
    return doc


class ChunkEncoder:
    """Normalised stream events -> OpenAI `chat.completion.chunk` SSE events."""

    __slots__ = ("_base", "_include_usage", "_tool_index")

    def __init__(self, model: str, *, include_usage: bool) -> None:
        self._base = {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self._include_usage = include_usage
        self._tool_index = 0

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        doc = {**self._base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + orjson.dumps(doc) + b"\n\n"

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ReasoningDelta):
            return self._chunk({"reasoning_content": event.text}) if event.text else b""
        if isinstance(event, ToolCallDone):
            index, self._tool_index = self._tool_index, self._tool_index + 1
            return self._chunk({"tool_calls": [_tool_call_doc(event, index)]})
        if isinstance(event, Usage):
            if not self._include_usage:
                return b""
            doc = {**self._base, "choices": [], "usage": _usage_doc(event)}
            return b"data: " + orjson.dumps(doc) + b"\n\n"
        if isinstance(event, Finish):
            return self._chunk({}, event.reason) + b"data: [DONE]\n\n"
        return _sse_error(_stream_error_status(event.error), event.message)


# --------------------------------------------------------------------------- the hot endpoint


@dataclass(slots=True)
class _Primed:
    """A relayed upstream answer with its first chunk already in hand (failover is over)."""

    response: ForwardResponse
    first: bytes


class _Call:
    """One `/v1/chat/completions` request: what the attempt callback needs to send it anywhere."""

    __slots__ = ("body", "doc", "model", "request", "stream")

    def __init__(self, body: bytes, doc: dict[str, Any], model: str, stream: bool) -> None:
        self.body = body
        self.doc = doc
        self.model = model
        self.stream = stream
        self.request: ChatRequest | None = None

    def normalised(self) -> ChatRequest:
        """The request as a ChatRequest, built once and only for a backend that needs it."""
        if self.request is None:
            try:
                self.request = chat_request_from_openai(self.doc)
            except ValueError as exc:
                raise _BadRequest(validation_message(exc)) from None
        return self.request

    def prefix(self, limit: int) -> str:
        """The prompt prefix cache_aware hashes, read from the raw messages."""
        parts: list[str] = []
        size = 0
        for message in self.doc["messages"]:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                content = "".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and "text" in p
                )
            text = content if isinstance(content, str) else ""
            parts.append(text)
            size += len(text)
            if size >= limit:
                break
        return "\x1e".join(parts)[:limit]

    async def attempt(
        self, entry: BackendEntry, model: str
    ) -> ForwardResponse | _Primed | ChatResult | tuple[Any, StreamEvent]:
        backend = entry.backend
        if isinstance(backend, OpenAIBackend):
            body = self.body if model == self.model else orjson.dumps({**self.doc, "model": model})
            response = await backend.forward(body, self.stream)
            if not self.stream:
                return response
            try:
                first = await response.chunks.__anext__()
            except StopAsyncIteration:
                await response.aclose()
                raise BackendDisconnected(
                    "the stream ended before its first event", backend=entry.name
                ) from None
            except BaseException:
                await response.aclose()
                raise
            problem = _first_event_problem(first)
            if problem is not None:
                await response.aclose()
                raise BackendMalformedResponse(problem, backend=entry.name)
            return _Primed(response, first)
        request = adapt_request(self.normalised(), backend.kind, model)
        if not self.stream:
            return await backend.complete(request)
        gen = backend.stream(request)
        try:
            first_event = await gen.__anext__()
        except StopAsyncIteration:
            raise BackendDisconnected(
                "the stream ended without any event", backend=entry.name
            ) from None
        return gen, first_event


def _first_event_problem(chunk: bytes) -> str | None:
    """Why the first relayed event is not an OpenAI chunk (None: it is, or is not complete yet).

    Only the first event is checked: it is in hand before the response starts, so garbage there
    can still become a clean 502 (or fail over); parsing every relayed event would cost what
    pass-through saves."""
    start = chunk.find(b"data:")
    if start < 0:
        return None
    end = chunk.find(b"\n", start)
    if end < 0:
        return None
    data = chunk[start + 5 : end].strip()
    if data == b"[DONE]":
        return None
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return f"the first stream event is not valid JSON ({exc}): {data[:200]!r}"
    if not isinstance(doc, dict):
        return f"the first stream event is not a JSON object: {data[:200]!r}"
    return None


def validation_message(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        lines = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error["loc"]) or "body"
            lines.append(f"{where}: {error['msg']}")
        return "invalid request: " + "; ".join(lines)
    return f"invalid request: {exc}"


class _Watch:
    """Cancels the request's task when the client disconnects (uvicorn does not raise on a
    send to a closed connection, so without this an abandoned stream would run to its end)."""

    __slots__ = ("finishing", "gone", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.gone = False
        self.finishing = False

    async def run(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not self.finishing:
                    self.gone = True
                    self.task.cancel()
                return


class ChatCompletions:
    """`POST /v1/chat/completions` as an ASGI app."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.limit = router.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        task = asyncio.current_task()
        assert task is not None
        watch = _Watch(task)
        watcher: asyncio.Task[None] | None = None
        try:
            body, key, problem = await self._read(scope, receive)
            if problem is not None:
                status, message, code = problem
                await self._send_error(send, status, message, started, None, code=code)
                return
            watcher = asyncio.get_running_loop().create_task(watch.run(receive))
            await self._handle(send, body, key, started, watch, allowed=allowed_models(scope))
        except asyncio.CancelledError:
            if watch.gone:
                task.uncancel()
                log.debug("client went away; upstream request cancelled")
                return
            raise
        except Exception:
            log.exception("chat completion failed unexpectedly")
            if not watch.finishing:
                # the response may already have started; then the connection just ends
                with contextlib.suppress(Exception):
                    await self._send_error(send, 500, "internal error", started, None)
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _read(
        self, scope: Scope, receive: Receive
    ) -> tuple[bytes, str | None, tuple[int, str, str | None] | None]:
        """The body and affinity key, or the problem that stops the request first."""
        length: int | None = None
        key: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return b"", None, (400, "invalid Content-Length", None)
            elif name == AFFINITY_HEADER:
                key = value.decode("latin-1")
        limit = self.limit
        too_large = (
            413,
            f"request body is larger than the {limit}-byte limit",
            "request_too_large",
        )
        if length is not None and length > limit:
            return b"", None, too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message: AsgiMessage = await receive()
            if message["type"] == "http.disconnect":
                raise asyncio.CancelledError  # nobody to answer
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    return b"", None, too_large
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), key, None

    async def _handle(
        self,
        send: Send,
        body: bytes,
        key: str | None,
        started: float,
        watch: _Watch,
        *,
        allowed: tuple[str, ...] | None,
    ) -> None:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            await self._send_error(send, 400, f"request body is not valid JSON: {exc}", started)
            return
        if not isinstance(doc, dict):
            await self._send_error(send, 400, "request body must be a JSON object", started)
            return
        invalid = check_chat_body(doc)
        if invalid is not None:
            await self._send_error(
                send, 400, invalid.message, started, code=invalid.code, param=invalid.param
            )
            return
        model: str = doc["model"]
        if not model_allowed(allowed, model):
            audit("model", "deny", model=model, reason=OUTSIDE_MODEL_GLOBS, status=404)
            # The same answer as for a model that does not exist: a key learns nothing more.
            await self._send_error(
                send, 404, f"no model {model!r} for this API key", started, code="model_not_found"
            )
            return
        try:
            await admit(QUOTA.get(), "models", model)
        except LimitExceeded as exc:
            retry = [(b"retry-after", str(exc.retry_after).encode())]
            code = "rate_limit_exceeded"
            await self._send_error(send, 429, str(exc), started, code=code, extra=retry)
            return
        stream = doc.get("stream") is True
        if key is None:
            user = doc.get("user")
            key = user if isinstance(user, str) and user else None
        call = _Call(body, doc, model, stream)
        try:
            routed = await self.router.dispatch(
                model, call.attempt, key=key, streaming=stream, prompt=call.prefix
            )
        except RouterError as exc:
            await self._send_router_error(send, exc, started)
            return
        except _BadRequest as exc:
            await self._send_error(send, 400, str(exc), started)
            return
        value = routed.value
        if not stream:
            await self._send_complete(
                send, routed=routed, value=value, model=model, started=started, watch=watch
            )
        elif isinstance(value, _Primed):
            await self._relay(send, routed, value, started, watch, prompt_bytes=len(body))
        else:
            include = bool((doc.get("stream_options") or {}).get("include_usage"))
            await self._translate(
                send,
                routed=routed,
                model=model,
                include_usage=include,
                started=started,
                watch=watch,
            )

    # -- answers ---------------------------------------------------------------------------

    @staticmethod
    def _headers(backend: str | None, started: float, upstream: float) -> list[tuple[bytes, bytes]]:
        overhead = max(0.0, (time.perf_counter() - started - upstream) * 1000)
        return [
            (b"x-junction-backend", (backend or "none").encode()),
            (b"x-junction-overhead-ms", f"{overhead:.3f}".encode()),
        ]

    async def _send_complete(
        self,
        send: Send,
        *,
        routed: Routed[Any],
        value: object,
        model: str,
        started: float,
        watch: _Watch,
    ) -> None:
        headers = self._headers(routed.backend, started, routed.upstream_seconds)
        if isinstance(value, ForwardResponse):
            payload = value.body or b""
            content_type = value.headers.get("content-type", "application/json")
            headers.append((b"content-type", content_type.encode("latin-1")))
            for name, header in value.headers.items():
                if name not in _SKIPPED_UPSTREAM_HEADERS:
                    headers.append((name.encode("latin-1"), header.encode("latin-1")))
        else:
            assert isinstance(value, ChatResult)
            payload = orjson.dumps(completion_doc(value, model))
            headers.append(_JSON)
        # With its length the body goes out whole, not as a chunk and a terminating chunk.
        headers.append((b"content-length", b"%d" % len(payload)))
        watch.finishing = True
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _relay(
        self,
        send: Send,
        routed: Routed[Any],
        primed: _Primed,
        started: float,
        watch: _Watch,
        *,
        prompt_bytes: int,
    ) -> None:
        """Pass an upstream SSE stream through, whole events at a time. A rate-limited caller
        whose stream reports no usage is charged an estimate: a token per 4 bytes of request
        body, and one per event relayed (upstreams stream about a token per event)."""
        charge = CHARGE.get()
        events = 0
        response = primed.response
        lease = routed.lease
        headers = self._headers(routed.backend, started, routed.upstream_seconds)
        headers.extend(_SSE_HEADERS)
        chunks = response.chunks
        deadline_at = routed.deadline_at
        pending = b""
        data = primed.first
        tail = b""
        span = lease.span  # tracing: the model, usage and finish reason seen going by
        if span is not None:
            span.set_attribute("gen_ai.response.model", routed.model)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            while True:
                if pending:
                    data = pending + data
                cut = _event_boundary(data)
                if cut == len(data):
                    pending = b""
                    out = data
                else:
                    out, pending = data[:cut], data[cut:]
                if out:
                    if span is not None:
                        record_stream_bytes(span, out)
                    if charge is not None:
                        events += out.count(b"data:")
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                try:
                    if deadline_at is None:
                        data = await chunks.__anext__()
                    else:
                        async with asyncio.timeout_at(deadline_at):
                            data = await chunks.__anext__()
                except StopAsyncIteration:
                    break
            lease.succeed()
            tail = pending
            if charge is not None:
                charge_estimate(prompt_bytes // 4 + events)
        except BackendError as exc:
            lease.fail(exc)
            log.info("relayed stream from %s broke: %s", lease.backend, exc)
            tail = _sse_error(_stream_error_status(exc), str(exc))
        except TimeoutError:
            error = BackendTimeout("the request deadline passed mid-stream", backend=lease.backend)
            lease.fail(error)
            tail = _sse_error(504, str(error))
        finally:
            if not lease.settled:
                lease.abandon()
            await response.aclose()
        watch.finishing = True
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _translate(
        self,
        send: Send,
        *,
        routed: Routed[Any],
        model: str,
        include_usage: bool,
        started: float,
        watch: _Watch,
    ) -> None:
        """Encode a normalised stream (Ollama, Anthropic) as OpenAI chunks."""
        stream = RouterStream.attached(routed)
        encoder = ChunkEncoder(model, include_usage=include_usage)
        headers = self._headers(routed.backend, started, routed.upstream_seconds)
        headers.extend(_SSE_HEADERS)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": encoder.start(), "more_body": True})
            async for event in stream:
                data = encoder.encode(event)
                if isinstance(event, Finish | StreamError):
                    watch.finishing = True
                    await send({"type": "http.response.body", "body": data})
                    return
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            watch.finishing = True
            await send({"type": "http.response.body", "body": b""})
        finally:
            await stream.aclose()

    async def _send_router_error(self, send: Send, exc: RouterError, started: float) -> None:
        status = exc.status
        extra: list[tuple[bytes, bytes]] = []
        if exc.retry_after is not None and status in (429, 503):
            extra.append((b"retry-after", str(max(1, math.ceil(exc.retry_after))).encode()))
        if isinstance(exc, BackendFailed):
            error = exc.error
            entry = self.router.registry.get(exc.backend or "")
            if (
                isinstance(error, BackendHTTPError)
                and status == error.status
                and entry is not None
                and isinstance(entry.backend, OpenAIBackend)
                and error.content_type.startswith("application/json")
                and error.body
            ):
                # The upstream's own OpenAI error (param, code) is the most useful answer.
                headers = self._headers(exc.backend, started, 0.0)
                headers.append(_JSON)
                headers.extend(extra)
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": error.body})
                return
        code = "model_not_found" if status == 404 else None
        await self._send_error(send, status, str(exc), started, exc.backend, code=code, extra=extra)

    async def _send_error(
        self,
        send: Send,
        status: int,
        message: str,
        started: float,
        backend: str | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = self._headers(backend, started, 0.0)
        headers.append(_JSON)
        if extra:
            headers.extend(extra)
        body = error_body(status, message, code, param)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- models and admin


__all__ = ["ChatCompletions", "error_body"]
