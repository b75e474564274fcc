"""Ollama's native API: `/api/chat` (NDJSON streaming, complete tool calls, `thinking`),
`/api/tags` for discovery, `/api/version` as the health probe.

The native API rather than Ollama's OpenAI-compatible one because it reports thinking and
token counts in every version, and takes images as bare base64 as Ollama stores them."""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import orjson

from router_core.backends.base import (
    Backend,
    check_content_type,
    iter_ndjson,
    read_json,
    shape_error,
)
from router_core.types import (
    BackendDisconnected,
    BackendHTTPError,
    BackendUnsupported,
    ChatRequest,
    ChatResult,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDone,
    Usage,
)


def ollama_root(url: str) -> str:
    """`http://h:11434` and `http://h:11434/api` both give `http://h:11434`."""
    url = url.rstrip("/")
    return url.removesuffix("/api")


def map_finish(raw: object, has_tool_calls: bool) -> FinishReason:
    """Ollama's done_reason ("stop", "length", "load", ...), normalised; Ollama says "stop"
    after tool calls too."""
    if has_tool_calls:
        return "tool_calls"
    return "length" if raw == "length" else "stop"


# -- request translation ----------------------------------------------------------------------


def _images(message: Message, backend: str) -> list[str]:
    images: list[str] = []
    for part in message.parts():
        if isinstance(part, ImagePart):
            inline = part.inline()
            if inline is None:
                raise BackendUnsupported(
                    "Ollama takes images inline only (a data: URL), not by remote URL",
                    backend=backend,
                )
            images.append(inline[1])
    return images


def ollama_body(request: ChatRequest, *, stream: bool, backend: str = "ollama") -> dict[str, Any]:
    """The `/api/chat` body for a normalised request. `extra` is merged last; its `options`
    are merged into ours rather than replacing them."""
    tool_names = {
        call.id: call.name
        for m in request.messages
        for call in m.tool_calls
        if m.role == "assistant"
    }
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        out: dict[str, Any] = {"role": message.role, "content": message.text()}
        images = _images(message, backend)
        if images:
            out["images"] = images
        if message.role == "assistant":
            if message.reasoning:
                out["thinking"] = message.reasoning
            if message.tool_calls:
                out["tool_calls"] = [
                    {"function": {"name": c.name, "arguments": c.arguments}}
                    for c in message.tool_calls
                ]
        elif message.role == "tool":
            name = message.name or tool_names.get(message.tool_call_id or "")
            if name:
                out["tool_name"] = name
        messages.append(out)
    body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": stream}
    if request.tools and request.tool_choice != "none":
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    options: dict[str, Any] = {}
    if request.temperature is not None:
        options["temperature"] = request.temperature
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    extra = dict(request.extra)
    extra_options = extra.pop("options", None)
    if isinstance(extra_options, Mapping):
        options.update(extra_options)
    if options:
        body["options"] = options
    body.update(extra)
    return body


# -- response translation ---------------------------------------------------------------------


def _tool_call(raw: Any, backend: str) -> ToolCall:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise shape_error(backend, "tool call", raw)
    call_id = raw.get("id") or f"call_{secrets.token_hex(8)}"
    arguments = function.get("arguments")
    if isinstance(arguments, dict):
        return ToolCall.from_arguments(call_id, function["name"], arguments)
    if arguments is None:
        return ToolCall.parse(call_id, function["name"], "")
    raw_text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    return ToolCall.parse(call_id, function["name"], raw_text)


def _usage(doc: Mapping[str, Any]) -> Usage | None:
    prompt = doc.get("prompt_eval_count")
    completion = doc.get("eval_count")
    if not isinstance(prompt, int) and not isinstance(completion, int):
        return None
    prompt = prompt if isinstance(prompt, int) else 0
    completion = completion if isinstance(completion, int) else 0
    return Usage.of(prompt, completion)


def _error(doc: Mapping[str, Any], backend: str) -> BackendHTTPError:
    return BackendHTTPError(500, f"error inside the stream: {doc.get('error')}", backend=backend)


def result_from_ollama(doc: Any, backend: str) -> ChatResult:
    """A ChatResult from a non-streaming `/api/chat` answer."""
    if not isinstance(doc, dict):
        raise shape_error(backend, "response", doc)
    if doc.get("error"):
        raise _error(doc, backend)
    message = doc.get("message")
    if not isinstance(message, dict):
        raise shape_error(backend, "response (no message)", doc)
    calls = [_tool_call(c, backend) for c in message.get("tool_calls") or []]
    content = message.get("content")
    thinking = message.get("thinking")
    return ChatResult(
        text=content if isinstance(content, str) else "",
        reasoning=thinking if isinstance(thinking, str) else "",
        tool_calls=calls,
        usage=_usage(doc),
        finish_reason=map_finish(doc.get("done_reason"), bool(calls)),
    )


class OllamaBackend(Backend):
    """An Ollama server, through its native API."""

    kind = "ollama"

    def __init__(self, name: str, url: str, **options: Any) -> None:
        super().__init__(name, url, **options)
        self.root = ollama_root(self.url)
        self.chat_url = f"{self.root}/api/chat"

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        body = orjson.dumps(ollama_body(request, stream=True, backend=self.name))
        has_calls = False
        final: dict[str, Any] | None = None
        async with self.open("POST", self.chat_url, body=body) as response:
            check_content_type(response, self.name, "application/x-ndjson", "application/json")
            async with aclosing(iter_ndjson(response, self.name)) as lines:
                async for doc in lines:
                    if doc.get("error"):
                        raise _error(doc, self.name)
                    message = doc.get("message")
                    if isinstance(message, dict):
                        thinking = message.get("thinking")
                        if thinking and isinstance(thinking, str):
                            yield ReasoningDelta(thinking)
                        content = message.get("content")
                        if content and isinstance(content, str):
                            yield TextDelta(content)
                        for raw in message.get("tool_calls") or []:
                            has_calls = True
                            yield ToolCallDone(_tool_call(raw, self.name))
                    if doc.get("done"):
                        final = doc
                        break
        if final is None:
            raise BackendDisconnected(
                "the stream ended before its final (done) line", backend=self.name
            )
        usage = _usage(final)
        if usage is not None:
            self.count_usage(usage)
            yield usage
        yield Finish(map_finish(final.get("done_reason"), has_calls))

    async def complete(self, request: ChatRequest) -> ChatResult:
        body = orjson.dumps(ollama_body(request, stream=False, backend=self.name))
        async with self.open("POST", self.chat_url, body=body) as response:
            doc = await read_json(response, self.name)
        result = result_from_ollama(doc, self.name)
        self.count_usage(result.usage)
        return result

    async def embed(self, model: str, inputs: list[Any], extra: Mapping[str, Any]) -> Any:
        """Ollama's `/api/embed`, answered in OpenAI's shape (text inputs only: Ollama takes no
        token arrays)."""
        if not all(isinstance(item, str) for item in inputs):
            raise BackendUnsupported(f"backend {self.name!r} (ollama) embeds text, not tokens")
        request: dict[str, Any] = {"model": model, "input": inputs}
        if isinstance(extra.get("dimensions"), int):
            request["dimensions"] = extra["dimensions"]
        async with self.open("POST", f"{self.root}/api/embed", body=orjson.dumps(request)) as got:
            doc = await read_json(got, self.name)
        vectors = doc.get("embeddings") if isinstance(doc, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(inputs):
            raise shape_error(self.name, "embeddings answer", doc)
        tokens = (
            doc.get("prompt_eval_count") if isinstance(doc.get("prompt_eval_count"), int) else 0
        )
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(vectors)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def list_models(self) -> list[str]:
        doc = await self.get_json(f"{self.root}/api/tags")
        models = doc.get("models") if isinstance(doc, dict) else None
        if not isinstance(models, list):
            raise shape_error(self.name, "model list", doc)
        names: list[str] = []
        for m in models:
            if isinstance(m, dict):
                name = m.get("name") or m.get("model")
                if isinstance(name, str):
                    names.append(name)
        return names

    async def probe(self) -> None:
        doc = await self.get_json(f"{self.root}/api/version", timeout=self._probe_timeout)
        if not isinstance(doc, dict):
            raise shape_error(self.name, "version", doc)


__all__ = ["OllamaBackend", "map_finish", "ollama_body", "ollama_root", "result_from_ollama"]
