"""The span of one model call (one attempt on one backend), in OpenTelemetry's GenAI semantic
conventions: `{operation} {model}`, kind client, with the requested and answering model, the
provider, the token usage, the finish reason and, for a stream, the time to its first chunk.

Only called when tracing is on (`tracing.enabled()`); the lease carries the span and ends it
when it settles, so a stream's span lasts until its last event, whichever relay reads it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson

from router_core import tracing
from router_core.registry import BackendEntry
from router_core.types import ChatResult, Usage

__all__ = ["record_result", "record_stream_bytes", "record_usage", "start_model_span"]


def start_model_span(
    entry: BackendEntry, model: str, *, operation: str, streaming: bool
) -> tracing.LiveSpan | None:
    """A client span for one attempt of `operation` (chat, embeddings) on `entry`."""
    backend = entry.backend
    provider = backend.kind  # the API spoken: openai (any OpenAI-compatible server), ollama, ...
    attributes: dict[str, str | int | bool] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": model,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,  # its name before semantic conventions 1.37, still read
        "gen_ai.request.stream": streaming,
        "junction.backend": entry.name,
    }
    url = getattr(backend, "url", None)
    if isinstance(url, str):
        parts = urlsplit(url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
            attributes["server.port"] = port
    return tracing.start_span(f"{operation} {model}", "client", attributes)


def record_usage(span: tracing.Span, usage: Usage) -> None:
    span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)


def _record_doc(span: tracing.Span, doc: Any) -> None:
    """Usage, model, id and finish reasons from an OpenAI-shaped answer or final chunk."""
    if not isinstance(doc, dict):
        return
    model = doc.get("model")
    if isinstance(model, str) and model:
        span.set_attribute("gen_ai.response.model", model)
    ident = doc.get("id")
    if isinstance(ident, str) and ident:
        span.set_attribute("gen_ai.response.id", ident)
    usage = doc.get("usage")
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            span.set_attribute("gen_ai.usage.input_tokens", prompt)
        if isinstance(completion, int):
            span.set_attribute("gen_ai.usage.output_tokens", completion)
    choices = doc.get("choices")
    if isinstance(choices, list):
        reasons = [
            str(c["finish_reason"])
            for c in choices
            if isinstance(c, dict) and c.get("finish_reason") is not None
        ]
        if reasons:
            span.set_attribute("gen_ai.response.finish_reasons", reasons)


def record_result(span: tracing.Span, value: Any, model: str) -> None:
    """What a whole (non-streamed) answer tells: normalised, a relayed OpenAI body, or a
    JSON document (embeddings)."""
    if isinstance(value, ChatResult):
        span.set_attribute("gen_ai.response.model", model)
        span.set_attribute("gen_ai.response.finish_reasons", [value.finish_reason])
        if value.usage is not None:
            record_usage(span, value.usage)
        return
    body = getattr(value, "body", None)
    if isinstance(body, bytes):
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
    _record_doc(span, value)


def record_stream_bytes(span: tracing.Span, data: bytes) -> None:
    """The model, usage and finish reason in relayed OpenAI SSE bytes (`data: {...}` events);
    the relay calls this only while tracing. Only events that can carry them are parsed."""
    if not (b'"usage":' in data or b'"finish_reason":"' in data or b'"finish_reason": "' in data):
        return
    for line in data.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload.startswith(b"{"):
            continue
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            continue
        _record_doc(span, doc)
