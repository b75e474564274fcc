"""Anthropic's Messages API: `/v1/messages` with its SSE event stream (text, thinking and
tool_use content blocks), `/v1/models` for discovery and as the health probe."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import orjson

from router_core.backends.base import (
    Backend,
    check_content_type,
    iter_sse,
    load_json_event,
    read_json,
    shape_error,
)
from router_core.types import (
    BackendDisconnected,
    BackendHTTPError,
    ChatRequest,
    ChatResult,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    NamedToolChoice,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDone,
    Usage,
)

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires max_tokens; this is sent when the request does not say."""

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""Status for an `error` event inside a stream, as the same error would have as a response."""


def anthropic_root(url: str) -> str:
    """`https://api.anthropic.com` and `https://api.anthropic.com/v1` both give the latter."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def map_finish(raw: object) -> FinishReason:
    return _FINISH.get(raw, "stop") if isinstance(raw, str) else "stop"


# -- request translation ----------------------------------------------------------------------


def _image(part: ImagePart) -> dict[str, Any]:
    inline = part.inline()
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    media_type, data = inline
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _content_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in message.parts():
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        else:
            blocks.append(_image(part))
    return blocks


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        content = _content_blocks(message)
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        if content:
            result["content"] = content
        return [result]
    blocks: list[dict[str, Any]] = []
    if message.role == "assistant" and message.reasoning and message.reasoning_signature:
        blocks.append(
            {
                "type": "thinking",
                "thinking": message.reasoning,
                "signature": message.reasoning_signature,
            }
        )
    blocks.extend(_content_blocks(message))
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks


def anthropic_body(
    request: ChatRequest, *, stream: bool, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict[str, Any]:
    """The `/v1/messages` body for a normalised request: system messages become `system`, tool
    results become `tool_result` blocks in a user turn, consecutive turns of one role are
    merged (the API wants them alternating). `extra` is merged last (e.g. `thinking`)."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            if text := message.text():
                system.append(text)
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens or default_max_tokens,
        "messages": messages,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
        choice = request.tool_choice
        if isinstance(choice, NamedToolChoice):
            body["tool_choice"] = {"type": "tool", "name": choice.name}
        elif choice is not None:
            body["tool_choice"] = {
                "type": {"auto": "auto", "required": "any", "none": "none"}[choice]
            }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if stream:
        body["stream"] = True
    body.update(request.extra)
    return body


# -- response translation ---------------------------------------------------------------------


def parse_usage(doc: object, into: dict[str, int]) -> None:
    """Fold an Anthropic usage object into running counts (message_delta repeats them)."""
    if not isinstance(doc, dict):
        return
    for key in (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ):
        value = doc.get(key)
        if isinstance(value, int):
            into[key] = value


def _usage(counts: Mapping[str, int]) -> Usage | None:
    if not counts:
        return None
    prompt = (
        counts.get("input_tokens", 0)
        + counts.get("cache_creation_input_tokens", 0)
        + counts.get("cache_read_input_tokens", 0)
    )
    return Usage.of(prompt, counts.get("output_tokens", 0))


def _error(doc: Mapping[str, Any], backend: str) -> BackendHTTPError:
    err = doc.get("error")
    kind = err.get("type") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else err
    status = _ERROR_STATUS.get(kind, 500) if isinstance(kind, str) else 500
    return BackendHTTPError(status, f"error inside the stream: {kind}: {message}", backend=backend)


class _Block:
    __slots__ = ("id", "input", "json", "name", "type")

    def __init__(self, block: Mapping[str, Any]) -> None:
        self.type = block.get("type")
        self.id = str(block.get("id") or "")
        self.name = str(block.get("name") or "")
        self.input = block.get("input")
        self.json: list[str] = []


class AnthropicStreamDecoder:
    """Turns Messages API stream events into normalised events."""

    __slots__ = ("_backend", "_blocks", "_has_calls", "_stop", "_stopped", "_usage")

    def __init__(self, backend: str) -> None:
        self._backend = backend
        self._blocks: dict[int, _Block] = {}
        self._usage: dict[str, int] = {}
        self._stop: object = None
        self._stopped = False
        self._has_calls = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def feed(self, kind: str, doc: Mapping[str, Any]) -> list[StreamEvent]:
        if kind == "content_block_delta":
            delta = doc.get("delta")
            if not isinstance(delta, dict):
                raise shape_error(self._backend, "content_block_delta", doc)
            dtype = delta.get("type")
            if dtype == "text_delta":
                text = delta.get("text")
                return [TextDelta(text)] if text and isinstance(text, str) else []
            if dtype == "thinking_delta":
                thinking = delta.get("thinking")
                return [ReasoningDelta(thinking)] if thinking and isinstance(thinking, str) else []
            if dtype == "signature_delta":
                signature = delta.get("signature")
                return [ReasoningDelta("", signature)] if isinstance(signature, str) else []
            if dtype == "input_json_delta":
                block = self._blocks.get(doc.get("index"))  # type: ignore[arg-type]
                partial = delta.get("partial_json")
                if block is not None and isinstance(partial, str):
                    block.json.append(partial)
            return []
        if kind == "content_block_start":
            raw = doc.get("content_block")
            index = doc.get("index")
            if not isinstance(raw, dict) or not isinstance(index, int):
                raise shape_error(self._backend, "content_block_start", doc)
            self._blocks[index] = _Block(raw)
            text = raw.get("text") if raw.get("type") == "text" else None
            if text and isinstance(text, str):
                return [TextDelta(text)]
            thinking = raw.get("thinking") if raw.get("type") == "thinking" else None
            if thinking and isinstance(thinking, str):
                return [ReasoningDelta(thinking)]
            return []
        if kind == "content_block_stop":
            block = self._blocks.pop(doc.get("index"), None)  # type: ignore[arg-type]
            if block is None or block.type != "tool_use":
                return []
            self._has_calls = True
            raw_json = "".join(block.json)
            if not raw_json and block.input:
                raw_json = orjson.dumps(block.input).decode()
            return [ToolCallDone(ToolCall.parse(block.id, block.name, raw_json))]
        if kind == "message_start":
            message = doc.get("message")
            if isinstance(message, dict):
                parse_usage(message.get("usage"), self._usage)
            return []
        if kind == "message_delta":
            delta = doc.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason"):
                self._stop = delta["stop_reason"]
            parse_usage(doc.get("usage"), self._usage)
            return []
        if kind == "message_stop":
            self._stopped = True
            return []
        if kind == "error":
            raise _error(doc, self._backend)
        return []  # ping, and event types added after this was written

    def end(self) -> list[StreamEvent]:
        if not self._stopped:
            raise BackendDisconnected("the stream ended before message_stop", backend=self._backend)
        events: list[StreamEvent] = []
        usage = _usage(self._usage)
        if usage is not None:
            events.append(usage)
        reason = map_finish(self._stop)
        if self._has_calls and reason == "stop":
            reason = "tool_calls"
        events.append(Finish(reason))
        return events


def result_from_anthropic(doc: Any, backend: str) -> ChatResult:
    """A ChatResult from a non-streaming Messages API answer."""
    if not isinstance(doc, dict):
        raise shape_error(backend, "response", doc)
    if doc.get("type") == "error":
        raise _error(doc, backend)
    content = doc.get("content")
    if not isinstance(content, list):
        raise shape_error(backend, "response (no content)", doc)
    text: list[str] = []
    reasoning: list[str] = []
    signature: str | None = None
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif kind == "thinking":
            if isinstance(block.get("thinking"), str):
                reasoning.append(block["thinking"])
            if isinstance(block.get("signature"), str):
                signature = block["signature"]
        elif kind == "tool_use":
            arguments = block.get("input")
            call_id, name = str(block.get("id") or ""), str(block.get("name") or "")
            if isinstance(arguments, dict):
                calls.append(ToolCall.from_arguments(call_id, name, arguments))
            else:
                calls.append(ToolCall.parse(call_id, name, orjson.dumps(arguments).decode()))
    counts: dict[str, int] = {}
    parse_usage(doc.get("usage"), counts)
    reason = map_finish(doc.get("stop_reason"))
    return ChatResult(
        text="".join(text),
        reasoning="".join(reasoning),
        tool_calls=calls,
        usage=_usage(counts),
        finish_reason="tool_calls" if calls and reason == "stop" else reason,
        reasoning_signature=signature,
    )


class AnthropicBackend(Backend):
    """Anthropic's Messages API (or a server that speaks it)."""

    kind = "anthropic"

    def __init__(
        self, name: str, url: str, *, default_max_tokens: int = DEFAULT_MAX_TOKENS, **options: Any
    ) -> None:
        super().__init__(name, url, **options)
        if not any(k.lower() == "anthropic-version" for k in self.headers):
            self.headers["anthropic-version"] = API_VERSION
        self.default_max_tokens = default_max_tokens
        self.root = anthropic_root(self.url)
        self.messages_url = f"{self.root}/messages"

    def auth_headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key} if self.api_key else {}

    def _body(self, request: ChatRequest, stream: bool) -> bytes:
        return orjson.dumps(
            anthropic_body(request, stream=stream, default_max_tokens=self.default_max_tokens)
        )

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        decoder = AnthropicStreamDecoder(self.name)
        async with self.open("POST", self.messages_url, body=self._body(request, True)) as response:
            check_content_type(response, self.name, "text/event-stream")
            async with aclosing(iter_sse(response, self.name)) as events:
                async for event in events:
                    doc = load_json_event(event.data, self.name, "a stream event")
                    kind = doc.get("type")
                    for item in decoder.feed(kind if isinstance(kind, str) else event.event, doc):
                        yield item
                    if decoder.stopped:
                        break
        for item in decoder.end():
            if isinstance(item, Usage):
                self.count_usage(item)
            yield item

    async def complete(self, request: ChatRequest) -> ChatResult:
        async with self.open(
            "POST", self.messages_url, body=self._body(request, False)
        ) as response:
            doc = await read_json(response, self.name)
        result = result_from_anthropic(doc, self.name)
        self.count_usage(result.usage)
        return result

    async def list_models(self) -> list[str]:
        names: list[str] = []
        url = f"{self.root}/models?limit=1000"
        for _ in range(20):  # pages; a bound so a looping upstream cannot keep us here
            doc = await self.get_json(url)
            data = doc.get("data") if isinstance(doc, dict) else None
            if not isinstance(data, list):
                raise shape_error(self.name, "model list", doc)
            names.extend(
                m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)
            )
            last = doc.get("last_id")
            if not doc.get("has_more") or not isinstance(last, str):
                break
            url = f"{self.root}/models?limit=1000&after_id={quote(last, safe='')}"
        return names

    async def probe(self) -> None:
        doc = await self.get_json(f"{self.root}/models?limit=1", timeout=self._probe_timeout)
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise shape_error(self.name, "model list", doc)


__all__ = [
    "API_VERSION",
    "AnthropicBackend",
    "AnthropicStreamDecoder",
    "anthropic_body",
    "anthropic_root",
    "map_finish",
    "result_from_anthropic",
]
