"""Anthropic's Messages API over the Router: `POST /v1/messages`, streaming and tools, so clients
that speak Anthropic's API (its SDKs, Claude Code pointed at `ANTHROPIC_BASE_URL`) reach every
backend the router has, whatever API that backend speaks.

A request is translated to the normalised `ChatRequest` (system prompt, text and image blocks,
`tool_use` / `tool_result` turns, thinking with its signature, tools and tool choice), routed
like any chat turn (strategy, retries, failover, fallbacks), and the normalised answer or stream
is written back as Anthropic's message or its SSE events. Errors are Anthropic's shape
(`{"type": "error", "error": {"type", "message"}}`).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from router_core.access import OUTSIDE_MODEL_GLOBS, allowed_models, model_allowed
from router_core.audit import audit
from router_core.bodies import read_limited
from router_core.quota import QUOTA, LimitExceeded, admit
from router_core.router import Router, RouterError
from router_core.types import (
    ChatRequest,
    ChatResult,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    NamedToolChoice,
    ReasoningDelta,
    StreamError,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDone,
    ToolChoice,
    ToolDefinition,
    Usage,
)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}
_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


class _Invalid(Exception):
    """The request is not a Messages API request we can carry (400)."""


def error_body(status: int, message: str) -> bytes:
    """An error as Anthropic's API gives it."""
    kind = _ERROR_TYPES.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def _error(status: int, message: str) -> Response:
    return Response(error_body(status, message), status, media_type="application/json")


# -- request ---------------------------------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    """A `system` prompt or a `tool_result`'s content: a string, or text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for block in content:
            if not isinstance(block, Mapping) or block.get("type") != "text":
                raise _Invalid(f"{where}: only text blocks are supported here")
            texts.append(str(block.get("text", "")))
        return "\n".join(texts)
    if content is None:
        return ""
    raise _Invalid(f"{where} must be a string or an array of text blocks")


def _image(block: Mapping[str, Any], where: str) -> ImagePart:
    source = block.get("source")
    if isinstance(source, Mapping) and source.get("type") == "base64":
        return ImagePart.from_base64(str(source.get("data", "")), str(source.get("media_type")))
    if isinstance(source, Mapping) and source.get("type") == "url":
        return ImagePart(url=str(source.get("url", "")))
    raise _Invalid(f"{where}.source must be a base64 or url image source")


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise _Invalid("messages: must be a non-empty array")
    out: list[Message] = []
    for i, message in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(message, Mapping) or message.get("role") not in ("user", "assistant"):
            raise _Invalid(f"{where}.role must be 'user' or 'assistant'")
        role = message["role"]
        content = message.get("content")
        if isinstance(content, str):
            out.append(Message(role=role, content=content))
            continue
        if not isinstance(content, list):
            raise _Invalid(f"{where}.content must be a string or an array of content blocks")
        parts: list[TextPart | ImagePart] = []
        calls: list[ToolCall] = []
        results: list[Message] = []
        reasoning: list[str] = []
        signature: str | None = None
        for j, block in enumerate(content):
            at = f"{where}.content.{j}"
            kind = block.get("type") if isinstance(block, Mapping) else None
            if kind == "text":
                parts.append(TextPart(text=str(block.get("text", ""))))
            elif kind == "image" and role == "user":
                parts.append(_image(block, at))
            elif kind == "tool_use" and role == "assistant":
                arguments = block.get("input")
                if not isinstance(arguments, Mapping):
                    raise _Invalid(f"{at}.input must be an object")
                calls.append(
                    ToolCall.from_arguments(str(block.get("id")), str(block.get("name")), arguments)
                )
            elif kind == "tool_result" and role == "user":
                text = _text_of(block.get("content"), f"{at}.content")
                if block.get("is_error") is True:
                    text = f"Error: {text}"
                results.append(
                    Message(role="tool", tool_call_id=str(block.get("tool_use_id")), content=text)
                )
            elif kind == "thinking" and role == "assistant":
                reasoning.append(str(block.get("thinking", "")))
                signature = block.get("signature") or signature
            elif kind == "redacted_thinking":
                continue  # opaque to every other backend
            else:
                raise _Invalid(f"{at}.type {kind!r} is not supported in a {role} message")
        out.extend(results)  # tool results answer the previous turn's calls, before new text
        if parts or calls or reasoning or not results:
            out.append(
                Message(
                    role=role,
                    content=parts or None,
                    tool_calls=calls,
                    reasoning="".join(reasoning) or None,
                    reasoning_signature=signature,
                )
            )
    return out


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(raw.get("name"), str):
        return NamedToolChoice(name=raw["name"])
    raise _Invalid("tool_choice.type must be 'auto', 'any', 'tool' (with a name) or 'none'")


def chat_request_from_anthropic(doc: Any) -> ChatRequest:
    """A Messages API request body as a normalised `ChatRequest`; raises _Invalid."""
    if not isinstance(doc, Mapping):
        raise _Invalid("the request body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise _Invalid("model: must be a non-empty string")
    max_tokens = doc.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _Invalid("max_tokens: must be a positive integer")
    messages = _messages(doc.get("messages"))
    system = _text_of(doc.get("system"), "system")
    if system:
        messages.insert(0, Message(role="system", content=system))
    tools = []
    for i, tool in enumerate(doc.get("tools") or []):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            raise _Invalid(f"tools.{i}: a tool needs a name (server tools are not supported)")
        schema = tool.get("input_schema")
        tools.append(
            ToolDefinition(
                name=tool["name"],
                description=str(tool.get("description") or ""),
                parameters=dict(schema) if isinstance(schema, Mapping) else {"type": "object"},
            )
        )
    temperature = doc.get("temperature")
    if temperature is not None and not isinstance(temperature, int | float):
        raise _Invalid("temperature: must be a number")
    extra: dict[str, Any] = {}
    for name in ("top_p", "top_k"):
        if isinstance(doc.get(name), int | float):
            extra[name] = doc[name]
    try:
        return ChatRequest(
            model=model,
            messages=messages,
            tools=tools,
            tool_choice=_tool_choice(doc.get("tool_choice")),
            temperature=temperature,
            max_tokens=max_tokens,
            stream=doc.get("stream") is True,
            extra=extra,
        )
    except ValidationError as exc:
        raise _Invalid(str(exc.errors(include_url=False)[0]["msg"])) from None


# -- answer ----------------------------------------------------------------------------------------


def _message_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


def _usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}


def message_from_result(result: ChatResult, model: str) -> dict[str, Any]:
    """A whole answer as Anthropic's `message` object."""
    content: list[dict[str, Any]] = []
    if result.reasoning:
        thinking: dict[str, Any] = {"type": "thinking", "thinking": result.reasoning}
        thinking["signature"] = result.reasoning_signature or ""
        content.append(thinking)
    if result.text:
        content.append({"type": "text", "text": result.text})
    for call in result.tool_calls:
        content.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return {
        "id": _message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_REASONS.get(result.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": _usage(result.usage),
    }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class _StreamWriter:
    """Normalised stream events as Anthropic's SSE events: content blocks opened and closed as
    the kind of output changes (thinking, text, each tool call)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.index = -1
        self.open: str | None = None
        self.usage: Usage | None = None

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": _message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"message": message})

    def _switch(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.open = kind
        return out + _event("content_block_start", {"index": self.index, "content_block": block})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        self.open = None
        return _event("content_block_stop", {"index": self.index})

    def feed(self, event: Any) -> bytes:
        if isinstance(event, TextDelta):
            out = b"" if self.open == "text" else self._switch("text", {"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": event.text}
            return out + _event("content_block_delta", {"index": self.index, "delta": delta})
        if isinstance(event, ReasoningDelta):
            out = b""
            if self.open != "thinking":
                out = self._switch("thinking", {"type": "thinking", "thinking": ""})
            if event.signature:
                delta = {"type": "signature_delta", "signature": event.signature}
            else:
                delta = {"type": "thinking_delta", "thinking": event.text}
            return out + _event("content_block_delta", {"index": self.index, "delta": delta})
        if isinstance(event, ToolCallDone):
            call = event.call
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            out = self._switch("tool_use", block)
            delta = {
                "type": "input_json_delta",
                "partial_json": orjson.dumps(call.arguments).decode(),
            }
            return out + _event("content_block_delta", {"index": self.index, "delta": delta})
        if isinstance(event, Usage):
            self.usage = event
            return b""
        if isinstance(event, Finish):
            stop = _STOP_REASONS.get(event.reason, "end_turn")
            ending: dict[str, Any] = {"stop_reason": stop, "stop_sequence": None}
            usage = {"output_tokens": self.usage.completion_tokens if self.usage else 0}
            return (
                self._close()
                + _event("message_delta", {"delta": ending, "usage": usage})
                + _event("message_stop", {})
            )
        if isinstance(event, StreamError):
            # No message_stop follows: the SDKs raise on an error event.
            error = {
                "type": _ERROR_TYPES.get(event.status or 0, "api_error"),
                "message": event.message,
            }
            return self._close() + _event("error", {"error": error})
        return b""


# -- the route ---------------------------------------------------------------------------------------


def messages_endpoint(router: Router) -> Any:
    """The `POST /v1/messages` handler for `router`."""

    async def messages(request: Request) -> Response:
        limit = router.settings.max_body_bytes
        body = await read_limited(request, limit)
        if body is None:
            return _error(413, f"request body is larger than the {limit}-byte limit")
        try:
            chat = chat_request_from_anthropic(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            return _error(400, f"request body is not valid JSON: {exc}")
        except _Invalid as exc:
            return _error(400, str(exc))
        if not model_allowed(allowed_models(request.scope), chat.model):
            audit("model", "deny", model=chat.model, reason=OUTSIDE_MODEL_GLOBS, status=404)
            return _error(404, f"model: {chat.model}")
        try:
            await admit(QUOTA.get(), "models", chat.model)
        except LimitExceeded as exc:
            refused = _error(429, str(exc))
            refused.headers["Retry-After"] = str(exc.retry_after)
            return refused
        key = request.headers.get("x-junction-affinity")
        if not chat.stream:
            try:
                routed = await router.complete(chat, key=key)
            except RouterError as exc:
                return _error(exc.status, str(exc))
            doc = message_from_result(routed.result, chat.model)
            return Response(
                orjson.dumps(doc),
                media_type="application/json",
                headers={"x-junction-backend": routed.backend},
            )
        stream = router.stream(chat, key=key)
        try:
            await stream.open()  # failover happens before the first byte
        except RouterError as exc:
            await stream.aclose()
            return _error(exc.status, str(exc))

        async def events() -> AsyncIterator[bytes]:
            writer = _StreamWriter(chat.model)
            try:
                yield writer.start()
                async for event in stream:
                    chunk = writer.feed(event)
                    if chunk:
                        yield chunk
            finally:
                await stream.aclose()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-junction-backend": stream.backend or "none"},
        )

    return messages


__all__ = ["chat_request_from_anthropic", "error_body", "message_from_result", "messages_endpoint"]
