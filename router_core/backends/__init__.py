"""LLM backend clients: OpenAI-compatible, Ollama (native API), Anthropic (Messages API).

Each turns a normalised `ChatRequest` into its upstream's wire format and the upstream's answer
into normalised stream events or a `ChatResult` (see `router_core.types`), over the shared
pooled aiohttp session (`router_core.http`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from router_core.backends.anthropic import AnthropicBackend
from router_core.backends.base import Backend, SseEvent, SseParser, Timeouts
from router_core.backends.ollama import OllamaBackend
from router_core.backends.openai import ForwardResponse, OpenAIBackend, chat_request_from_openai

BACKEND_TYPES: dict[str, type[Backend]] = {
    "openai": OpenAIBackend,
    "ollama": OllamaBackend,
    "anthropic": AnthropicBackend,
}
"""Config `type:` -> backend class."""


def create_backend(
    kind: str,
    name: str,
    url: str,
    *,
    api_key: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeouts: Timeouts | None = None,
    **options: Any,
) -> Backend:
    """Build a backend from its config entry; raises ValueError for an unknown type."""
    try:
        cls = BACKEND_TYPES[kind]
    except KeyError:
        known = ", ".join(sorted(BACKEND_TYPES))
        raise ValueError(f"unknown backend type {kind!r} (known: {known})") from None
    return cls(name, url, api_key=api_key, headers=headers, timeouts=timeouts, **options)


__all__ = [
    "BACKEND_TYPES",
    "AnthropicBackend",
    "Backend",
    "ForwardResponse",
    "OllamaBackend",
    "OpenAIBackend",
    "SseEvent",
    "SseParser",
    "Timeouts",
    "chat_request_from_openai",
    "create_backend",
]
