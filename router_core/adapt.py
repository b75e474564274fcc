"""A request as each backend kind takes it: OpenAI-dialect options mapped to Ollama's and
Anthropic's where an equivalent exists, and the prompt prefix `cache_aware` hashes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from router_core.types import ChatRequest, Message

__all__ = ["adapt_request", "prompt_prefix"]

_OLLAMA_KEYS = frozenset({"format", "options", "keep_alive", "think"})
_OLLAMA_OPTIONS = frozenset(
    {
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "repeat_penalty",
        "num_ctx",
    }
)
_ANTHROPIC_KEYS = frozenset({"top_p", "top_k", "stop_sequences", "thinking", "service_tier"})


def _extra_for(kind: str, extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` as a backend of `kind` understands it: OpenAI-dialect options mapped where an
    equivalent exists, the rest dropped (an unknown top-level key is a 400 upstream)."""
    if kind == "openai" or not extra:
        return extra
    out: dict[str, Any] = {}
    if kind == "ollama":
        options: dict[str, Any] = {}
        for key, value in extra.items():
            if key in _OLLAMA_KEYS:
                out[key] = value
            elif key in _OLLAMA_OPTIONS:
                options[key] = value
            elif key == "response_format" and isinstance(value, dict):
                if value.get("type") == "json_object":
                    out["format"] = "json"
                elif value.get("type") == "json_schema":
                    schema = value.get("json_schema")
                    if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
                        out["format"] = schema["schema"]
        if options:
            given = out.get("options")
            out["options"] = {**options, **given} if isinstance(given, dict) else options
        return out
    for key, value in extra.items():
        if key in _ANTHROPIC_KEYS:
            out[key] = value
        elif key == "stop" and value:
            out["stop_sequences"] = [value] if isinstance(value, str) else value
    return out


def adapt_request(request: ChatRequest, kind: str, model: str) -> ChatRequest:
    """The request as sent to a backend of `kind` for `model` (copied only when it changes)."""
    extra = _extra_for(kind, request.extra)
    if model == request.model and extra is request.extra:
        return request
    return request.model_copy(update={"model": model, "extra": extra})


def prompt_prefix(messages: Iterable[Message], limit: int) -> str:
    """The start of the prompt (system and first messages), the key `cache_aware` hashes."""
    parts: list[str] = []
    size = 0
    for message in messages:
        text = message.text()
        parts.append(text)
        size += len(text)
        if size >= limit:
            break
    return "\x1e".join(parts)[:limit]
