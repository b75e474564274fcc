"""OpenAI-compatible backends (vLLM, SGLang, llama.cpp server, LM Studio, LocalAI, OpenAI):
`/v1/chat/completions` streaming (SSE, `data: [DONE]`) and not, tool-call deltas, `/v1/models`,
plus `forward()`, the raw pass-through the OpenAI surface uses when no translation is needed."""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from router_core import tracing
from router_core.backends.base import (
    Backend,
    answer_error,
    check_answer_type,
    check_content_type,
    excerpt,
    http_error,
    iter_sse,
    load_json_event,
    map_client_error,
    map_exchange_error,
    read_json,
    shape_error,
)
from router_core.exchange import ExchangeError, Exchanges, get_exchanges
from router_core.http import get_session
from router_core.types import (
    BackendDisconnected,
    BackendHTTPError,
    BackendMalformedResponse,
    ChatRequest,
    ChatResult,
    Finish,
    FinishReason,
    Message,
    NamedToolChoice,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDone,
    ToolChoice,
    ToolDefinition,
    Usage,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "date",
        "server",
    }
)
"""Upstream response headers a relay must not copy (its own server sets them)."""


def openai_root(url: str) -> str:
    """The API root: `http://h:8000` and `http://h:8000/v1` both give `http://h:8000/v1`; any
    other path (`/openai/v1`, `/v1beta/openai`) is taken as given."""
    url = url.rstrip("/")
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


def map_finish(raw: object, has_tool_calls: bool) -> FinishReason:
    """OpenAI's finish_reason, normalised. Some servers say "stop" after tool calls (and OpenAI
    does when tool_choice names a function); a turn loop only cares that calls are waiting."""
    reason = _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"
    return "tool_calls" if has_tool_calls and reason == "stop" else reason


def parse_usage(doc: object) -> Usage | None:
    if not isinstance(doc, dict):
        return None
    prompt = doc.get("prompt_tokens") or 0
    completion = doc.get("completion_tokens") or 0
    total = doc.get("total_tokens") or (prompt + completion)
    if not all(isinstance(n, int) for n in (prompt, completion, total)):
        return None
    return Usage(prompt, completion, total)


# -- request translation ----------------------------------------------------------------------


def _content(message: Message) -> str | list[dict[str, Any]] | None:
    if message.content is None:
        return None if message.role == "assistant" else ""
    if isinstance(message.content, str):
        return message.content
    if message.role != "user" or all(isinstance(p, TextPart) for p in message.content):
        return message.text()  # plain text is what every server accepts
    return [
        {"type": "text", "text": p.text}
        if isinstance(p, TextPart)
        else {"type": "image_url", "image_url": {"url": p.url}}
        for p in message.content
    ]


def _message(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": _content(message)}
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id or ""
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.raw_arguments
                    if call.error is None and call.raw_arguments
                    else orjson.dumps(call.arguments).decode(),
                },
            }
            for call in message.tool_calls
        ]
    return out


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _tool_choice(choice: ToolChoice) -> Any:
    if isinstance(choice, NamedToolChoice):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def openai_body(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    """The `/v1/chat/completions` body for a normalised request (`extra` merged last)."""
    body: dict[str, Any] = {
        "model": request.model,
        "messages": [_message(m) for m in request.messages],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if request.tools:
        body["tools"] = [_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    body.update(request.extra)
    return body


_KNOWN_KEYS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "stream",
        "stream_options",
    }
)


def chat_request_from_openai(body: Mapping[str, Any]) -> ChatRequest:
    """A normalised request from an OpenAI `/v1/chat/completions` body (for translating to
    another backend type). Unknown top-level keys go to `extra`, verbatim. Raises ValueError
    (pydantic's ValidationError is one) naming what is wrong when the body is not OpenAI-shaped."""
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list):
        raise ValueError("'messages' must be a list")
    tools = []
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            raise ValueError(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}")
        tools.append(
            {
                "name": function.get("name"),
                "description": function.get("description") or "",
                "parameters": function.get("parameters") or {"type": "object", "properties": {}},
            }
        )
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise ValueError("tool_choice must name a function")
        choice = {"name": name}
    return ChatRequest.model_validate(
        {
            "model": body.get("model"),
            "messages": [_message_from_openai(i, m) for i, m in enumerate(raw_messages)],
            "tools": tools,
            "tool_choice": choice,
            "temperature": body.get("temperature"),
            "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
            "stream": bool(body.get("stream", False)),
            "extra": {k: v for k, v in body.items() if k not in _KNOWN_KEYS},
        }
    )


def _message_from_openai(index: int, raw: Any) -> Message:
    if not isinstance(raw, dict):
        raise ValueError(f"messages[{index}] must be an object")
    role = raw.get("role")
    content = raw.get("content")
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append({"type": "text", "text": part.get("text")})
            elif kind == "image_url":
                image = part.get("image_url")
                parts.append(
                    {"type": "image", "url": image.get("url") if isinstance(image, dict) else image}
                )
            else:
                raise ValueError(f"messages[{index}]: unsupported content part type {kind!r}")
        content = parts
    calls: list[ToolCall] = []
    for call in raw.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise ValueError(f"messages[{index}].tool_calls: each needs a 'function' object")
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        calls.append(
            ToolCall.parse(str(call.get("id") or ""), str(function.get("name") or ""), arguments)
        )
    return Message.model_validate(
        {
            "role": "system" if role == "developer" else role,
            "content": content,
            "tool_calls": calls,
            "tool_call_id": raw.get("tool_call_id"),
            "name": raw.get("name"),
            "reasoning": raw.get("reasoning_content") or raw.get("reasoning"),
        }
    )


# -- response translation ---------------------------------------------------------------------


def _stream_error(doc: Mapping[str, Any], backend: str) -> BackendHTTPError:
    """An error the upstream reported inside the stream (vLLM, OpenAI: `{"error": {...}}`)."""
    err = doc.get("error")
    message = err if isinstance(err, str) else ""
    status = 500
    if isinstance(err, dict):
        message = str(err.get("message") or err.get("type") or "error")
        code = err.get("code")
        if isinstance(code, int) and 400 <= code <= 599:
            status = code
    return BackendHTTPError(status, f"error inside the stream: {message}", backend=backend)


class _CallBuilder:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class OpenAIStreamDecoder:
    """Turns parsed `chat.completion.chunk` objects into normalised events: text and reasoning
    deltas as they come, tool calls assembled by index and emitted complete when the choice
    finishes, then Usage and Finish from `end()`."""

    __slots__ = ("_backend", "_calls", "_calls_emitted", "_finish", "_usage")

    def __init__(self, backend: str) -> None:
        self._backend = backend
        self._calls: dict[int, _CallBuilder] = {}
        self._calls_emitted = False
        self._finish: str | None = None
        self._usage: Usage | None = None

    def feed(self, doc: Mapping[str, Any]) -> list[StreamEvent]:
        if doc.get("error"):
            raise _stream_error(doc, self._backend)
        usage = doc.get("usage")
        if usage:
            self._usage = parse_usage(usage) or self._usage
        choices = doc.get("choices")
        if not choices:
            return []
        if not isinstance(choices, list):
            raise shape_error(self._backend, "stream chunk", doc)
        events: list[StreamEvent] = []
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # n > 1 is not supported; the first choice is the answer
            delta = choice.get("delta")
            if isinstance(delta, dict):
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning and isinstance(reasoning, str):
                    events.append(ReasoningDelta(reasoning))
                content = delta.get("content")
                if content and isinstance(content, str):
                    events.append(TextDelta(content))
                calls = delta.get("tool_calls")
                if calls:
                    self._add_calls(calls, doc)
            reason = choice.get("finish_reason")
            if reason:
                self._finish = reason
                events.extend(self._emit_calls())
        return events

    def _add_calls(self, calls: Any, doc: Mapping[str, Any]) -> None:
        if not isinstance(calls, list):
            raise shape_error(self._backend, "tool_calls delta", doc)
        for delta in calls:
            if not isinstance(delta, dict):
                raise shape_error(self._backend, "tool_calls delta", doc)
            index = delta.get("index")
            call_id = delta.get("id")
            if not isinstance(index, int):  # some servers leave index out
                known = {b.id: i for i, b in self._calls.items()}
                if call_id and call_id in known:
                    index = known[call_id]
                elif call_id or not self._calls:
                    index = len(self._calls)
                else:
                    index = max(self._calls)
            builder = self._calls.get(index)
            if builder is None:
                builder = self._calls[index] = _CallBuilder()
            if call_id and not builder.id:
                builder.id = call_id
            function = delta.get("function")
            if isinstance(function, dict):
                name = function.get("name")
                if name and not builder.name:
                    builder.name = name
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    builder.arguments.append(arguments)
                elif arguments is not None:
                    builder.arguments.append(orjson.dumps(arguments).decode())

    def _emit_calls(self) -> list[StreamEvent]:
        if self._calls_emitted:
            return []
        self._calls_emitted = True
        return [
            ToolCallDone(
                ToolCall.parse(b.id or f"call_{secrets.token_hex(8)}", b.name, "".join(b.arguments))
            )
            for _, b in sorted(self._calls.items())
        ]

    def end(self, *, saw_done: bool) -> list[StreamEvent]:
        """The closing events; a stream that stopped with neither `[DONE]` nor a finish reason
        was cut short and raises BackendDisconnected."""
        if not saw_done and self._finish is None:
            raise BackendDisconnected(
                "the stream ended before data: [DONE] and without a finish_reason",
                backend=self._backend,
            )
        events = self._emit_calls()
        if self._usage is not None:
            events.append(self._usage)
        events.append(Finish(map_finish(self._finish, bool(self._calls))))
        return events


def result_from_openai(doc: Any, backend: str) -> ChatResult:
    """A ChatResult from a non-streaming `chat.completion` object."""
    if not isinstance(doc, dict):
        raise shape_error(backend, "response", doc)
    if doc.get("error"):
        raise _stream_error(doc, backend)
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise shape_error(backend, "response (no choices)", doc)
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise shape_error(backend, "response (no message)", doc)
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    calls: list[ToolCall] = []
    for raw in message.get("tool_calls") or []:
        function = raw.get("function") if isinstance(raw, dict) else None
        if not isinstance(function, dict):
            raise shape_error(backend, "tool call", raw)
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        calls.append(
            ToolCall.parse(
                raw.get("id") or f"call_{secrets.token_hex(8)}",
                function.get("name") or "",
                arguments,
            )
        )
    return ChatResult(
        text=content if isinstance(content, str) else "",
        reasoning=reasoning if isinstance(reasoning, str) else "",
        tool_calls=calls,
        usage=parse_usage(doc.get("usage")),
        finish_reason=map_finish(choice.get("finish_reason"), bool(calls)),
    )


# -- pass-through -----------------------------------------------------------------------------


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


@dataclass(eq=False)
class ForwardResponse:
    """An upstream answer relayed as bytes. Iterate `chunks` (or `read()`), then or instead call
    `aclose()`: it closes the upstream connection if the body was not read to the end."""

    status: int
    headers: dict[str, str]
    """The upstream's response headers, names lower-cased, hop-by-hop ones removed."""
    chunks: AsyncGenerator[bytes, None]
    body: bytes | None = None
    """The whole body, for non-streaming requests (read before `forward()` returned)."""
    _response: aiohttp.ClientResponse | None = field(default=None, repr=False)

    async def read(self) -> bytes:
        if self.body is not None:
            return self.body
        return b"".join([chunk async for chunk in self.chunks])

    async def aclose(self) -> None:
        await self.chunks.aclose()
        if self._response is not None:
            self._response.close()


class OpenAIBackend(Backend):
    """An OpenAI-compatible server."""

    kind = "openai"

    def __init__(self, name: str, url: str, **options: Any) -> None:
        super().__init__(name, url, **options)
        self.root = openai_root(self.url)
        self.chat_url = f"{self.root}/chat/completions"
        self.models_url = f"{self.root}/models"
        self.embeddings_url = f"{self.root}/embeddings"
        # Relayed streams must arrive as the upstream wrote them, uncompressed.
        self._forward_headers = {**self.headers, "Accept-Encoding": "identity"}

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = orjson.dumps(openai_body(request, stream=True))
        decoder = OpenAIStreamDecoder(self.name)
        saw_done = False
        async with self.open("POST", self.chat_url, body=body) as response:
            check_content_type(response, self.name, "text/event-stream")
            async with aclosing(iter_sse(response, self.name)) as events:
                async for event in events:
                    if event.data == b"[DONE]":
                        saw_done = True
                        break
                    doc = load_json_event(event.data, self.name, "a stream event")
                    if event.event == "error" and "error" not in doc:
                        doc = {"error": doc}
                    for item in decoder.feed(doc):
                        yield item
        for item in decoder.end(saw_done=saw_done):
            if isinstance(item, Usage):
                self.count_usage(item)
            yield item

    async def complete(self, request: ChatRequest) -> ChatResult:
        body = orjson.dumps(openai_body(request, stream=False))
        async with self.open("POST", self.chat_url, body=body) as response:
            doc = await read_json(response, self.name)
        result = result_from_openai(doc, self.name)
        self.count_usage(result.usage)
        return result

    async def embed(self, model: str, inputs: list[Any], extra: Mapping[str, Any]) -> Any:
        body = orjson.dumps({**extra, "model": model, "input": inputs})
        async with self.open("POST", self.embeddings_url, body=body) as response:
            doc = await read_json(response, self.name)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise shape_error(self.name, "embeddings answer", doc)
        return doc

    async def list_models(self) -> list[str]:
        doc = await self.get_json(self.models_url)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise shape_error(self.name, "model list", doc)
        return [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]

    async def probe(self) -> None:
        doc = await self.get_json(self.models_url, timeout=self._probe_timeout)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise shape_error(self.name, "model list", doc)

    async def forward(self, body: bytes, stream: bool) -> ForwardResponse:
        """POST an OpenAI request body as-is to `/chat/completions` and relay the answer as bytes.

        Everything that can go wrong before the first byte raises BackendError (so the caller may
        fail over): connect errors, error statuses (BackendHTTPError carries the upstream's body
        and content type, to relay a 4xx verbatim), a content type that does not match `stream`,
        and for non-streaming requests a body that is not JSON. A stream that breaks later raises
        from `chunks`: BackendDisconnected, also when it ends without `data: [DONE]`."""
        headers = self._forward_headers
        trace = tracing.current()
        if trace is not None:
            headers = {**headers, **trace.headers()}
        if not stream:
            exchanges = get_exchanges()
            if exchanges.usable(self.chat_url):
                return await self._forward_whole(exchanges, body, headers)
        session = get_session()
        try:
            response = await session.post(
                self.chat_url, data=body, headers=headers, timeout=self._timeout
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise map_client_error(exc, self.name, "waiting for the response") from exc
        try:
            if response.status >= 400:
                raise await http_error(response, self.name)
            headers = {}
            for raw_name, value in response.headers.items():  # one pass, no generator
                name = raw_name.lower()
                if name not in _HOP_BY_HOP:
                    headers[name] = value
            if stream:
                check_content_type(response, self.name, "text/event-stream")
                return ForwardResponse(
                    response.status, headers, self._relay(response), _response=response
                )
            check_content_type(response, self.name, "application/json")
            data = await response.read()
            self._count_whole(data)
            response.release()
            return ForwardResponse(response.status, headers, _once(data), body=data)
        except BaseException as exc:
            response.close()
            if isinstance(exc, aiohttp.ClientError | TimeoutError):
                raise map_client_error(exc, self.name, "reading the response") from exc
            raise

    async def _forward_whole(
        self, exchanges: Exchanges, body: bytes, headers: Mapping[str, str]
    ) -> ForwardResponse:
        """`forward` of a whole answer over `router_core.exchange` (a bare keep-alive
        exchange: ~130-200 us of CPU less than aiohttp's per-request machinery), with the same
        errors: a 4xx/5xx as BackendHTTPError, a wrong type or bad JSON as malformed."""
        timeouts = self.timeouts
        # A whole answer's head comes after the whole generation: `read` bounds that silence.
        limit = timeouts.total
        if limit is None and timeouts.read is not None:
            limit = timeouts.read + (timeouts.connect or 0.0)
        try:
            answer = await exchanges.send(
                "POST",
                self.chat_url,
                headers,
                body,
                timeout=limit,
                connect_timeout=timeouts.connect,
                max_body=MAX_WHOLE_ANSWER_BYTES,
            )
        except ExchangeError as exc:
            raise map_exchange_error(exc, self.name) from exc
        if answer.status >= 400:
            raise answer_error(answer, self.name)
        check_answer_type(answer, self.name, "application/json")
        self._count_whole(answer.body)
        relayed = {name: value for name, value in answer.headers.items() if name not in _HOP_BY_HOP}
        return ForwardResponse(answer.status, relayed, _once(answer.body), body=answer.body)

    def _count_whole(self, data: bytes) -> None:
        """A whole answer is relayed as sent, but must be JSON; its usage is counted."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BackendMalformedResponse(
                f"response body is not valid JSON ({exc}): {excerpt(data)}", backend=self.name
            ) from exc
        if isinstance(doc, dict):
            self.count_usage(parse_usage(doc.get("usage")))

    async def _relay(self, response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
        completed = False
        tail = b""
        recent: deque[bytes] = deque(maxlen=_USAGE_CHUNKS)
        try:
            async for chunk in response.content.iter_any():
                tail = (tail + chunk[-64:])[-64:]
                recent.append(chunk)
                yield chunk
            if b"[DONE]" not in tail:
                raise BackendDisconnected("the stream ended before data: [DONE]", backend=self.name)
            completed = True
            self.count_usage(_streamed_usage(b"".join(recent)))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise map_client_error(exc, self.name, "reading the stream") from exc
        finally:
            if completed:
                response.release()
            else:
                response.close()


MAX_WHOLE_ANSWER_BYTES = 64 * 1024 * 1024
"""A whole (non-streamed) completion larger than this is refused as malformed."""

_USAGE_CHUNKS = 4
"""Relayed chunks kept to find the usage event, which upstreams send just before `[DONE]`."""


def _streamed_usage(tail: bytes) -> Usage | None:
    """The usage in the last `data:` event that has one (sent when the client asked for
    `stream_options.include_usage`); the relay passes bytes through, so it is found here."""
    at = tail.rfind(b'"usage"')
    if at < 0:
        return None
    start = tail.rfind(b"data:", 0, at)
    end = tail.find(b"\n", at)
    if start < 0 or end < 0:
        return None
    try:
        doc = orjson.loads(tail[start + 5 : end])
    except orjson.JSONDecodeError:
        return None
    return parse_usage(doc.get("usage")) if isinstance(doc, dict) else None


__all__ = [
    "ForwardResponse",
    "OpenAIBackend",
    "OpenAIStreamDecoder",
    "chat_request_from_openai",
    "map_finish",
    "openai_body",
    "openai_root",
    "result_from_openai",
]
