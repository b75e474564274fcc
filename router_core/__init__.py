"""LLM backends and the backend-selection core: selection strategies, health, circuit breakers,
the model router and its OpenAI-compatible surface (`router_core.openai_api`, imported on use:
it needs Starlette).

Decisions:
- Upstream HTTP is aiohttp's client, one pooled session a process (`router_core.http`), not
  httpx: on the design brief's 2-core box the client alone does ~5,900 req/s against httpx's
  ~530 (~3,100 with the httpx-aiohttp transport), and a minimal pass-through proxy adds 0.48 ms
  at p50 and keeps 0.63 of direct throughput with aiohttp against 1.03 ms and 0.36 with httpx
  (/work/shared/design.md). aiohttp is still ~82 of Junction's ~250 µs CPU a relayed request
  (docs/performance.md); none of the alternatives measured is cheaper.
- The SSE decoder (`router_core.sse`) is hand-written: aiohttp has none, and httpx-sse decodes
  text lines of httpx responses. Parsing bytes keeps an event's `data` the upstream's own bytes,
  so the OpenAI relay forwards them without a decode/encode round trip per chunk (no separate
  figure: it is what makes the pass-through possible at all). It is the project's one decoder.
- `/v1/chat/completions` is a hand-written ASGI app, and an OpenAI backend's answer is relayed
  as bytes (`OpenAIBackend.forward`) rather than parsed into objects and re-encoded: Junction's
  own path costs ~44 µs a request in-process, and Starlette's routing and middleware around a
  route would add ~10-16 µs more (docs/performance.md, "Where Junction's time goes").
- pydantic where input arrives from outside (settings, `ChatRequest`: clear validation errors),
  slotted dataclasses for stream events and results (one per chunk, only from our own backends)
  and plain dicts for relayed bodies on the hot path.
- Exports are lazy (lazy_loader, as in `transports`): `import router_core` costs ~4 ms before
  ACP's `initialize` is answered; aiohttp and Starlette load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from router_core.backends import (
        BACKEND_TYPES,
        AnthropicBackend,
        Backend,
        ForwardResponse,
        OllamaBackend,
        OpenAIBackend,
        Timeouts,
        chat_request_from_openai,
        create_backend,
    )
    from router_core.errors import (
        Attempt,
        BackendFailed,
        DeadlineExceeded,
        ModelNotFound,
        NoBackendAvailable,
        RouterError,
    )
    from router_core.health import (
        BreakerSettings,
        BreakerState,
        CircuitBreaker,
        EndpointStats,
        HealthChecker,
        HealthCheckSettings,
    )
    from router_core.http import (
        close_session,
        get_session,
    )
    from router_core.lease import Lease, Routed, RoutedResult
    from router_core.redaction import redact_url, redact_urls
    from router_core.registry import (
        BackendEntry,
        Registry,
        RegistryError,
    )
    from router_core.router import Router
    from router_core.selection import (
        STRATEGY_NAMES,
        Endpoint,
        EndpointLike,
        Strategy,
        StrategyName,
        make_strategy,
    )
    from router_core.settings import (
        BackendSpec,
        ModelRouting,
        RetrySettings,
        RouterSettings,
        TimeoutSettings,
    )
    from router_core.sse import SseEvent, SseParser
    from router_core.stream import RouterStream
    from router_core.types import (
        BackendConnectError,
        BackendDisconnected,
        BackendError,
        BackendHTTPError,
        BackendMalformedResponse,
        BackendTimeout,
        BackendUnsupported,
        ChatRequest,
        ChatResult,
        Finish,
        FinishReason,
        ImagePart,
        Message,
        NamedToolChoice,
        ReasoningDelta,
        StreamAccumulator,
        StreamError,
        StreamEvent,
        TextDelta,
        TextPart,
        ToolCall,
        ToolCallDone,
        ToolDefinition,
        Usage,
        accumulate,
    )

# Backends pull in aiohttp (~0.15 s); configuration only needs the settings models, and ACP's
# `initialize` must not wait for either. Names load on first use.
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "backends": [
            "AnthropicBackend",
            "BACKEND_TYPES",
            "Backend",
            "ForwardResponse",
            "OllamaBackend",
            "OpenAIBackend",
            "Timeouts",
            "chat_request_from_openai",
            "create_backend",
        ],
        "errors": [
            "Attempt",
            "BackendFailed",
            "DeadlineExceeded",
            "ModelNotFound",
            "NoBackendAvailable",
            "RouterError",
        ],
        "health": [
            "BreakerSettings",
            "BreakerState",
            "CircuitBreaker",
            "EndpointStats",
            "HealthCheckSettings",
            "HealthChecker",
        ],
        "http": ["close_session", "get_session"],
        "lease": ["Lease", "Routed", "RoutedResult"],
        "redaction": ["redact_url", "redact_urls"],
        "registry": ["BackendEntry", "Registry", "RegistryError"],
        "router": ["Router"],
        "selection": [
            "Endpoint",
            "EndpointLike",
            "STRATEGY_NAMES",
            "Strategy",
            "StrategyName",
            "make_strategy",
        ],
        "settings": [
            "BackendSpec",
            "ModelRouting",
            "RetrySettings",
            "RouterSettings",
            "TimeoutSettings",
        ],
        "sse": ["SseEvent", "SseParser"],
        "stream": ["RouterStream"],
        "types": [
            "BackendConnectError",
            "BackendDisconnected",
            "BackendError",
            "BackendHTTPError",
            "BackendMalformedResponse",
            "BackendTimeout",
            "BackendUnsupported",
            "ChatRequest",
            "ChatResult",
            "Finish",
            "FinishReason",
            "ImagePart",
            "Message",
            "NamedToolChoice",
            "ReasoningDelta",
            "StreamAccumulator",
            "StreamError",
            "StreamEvent",
            "TextDelta",
            "TextPart",
            "ToolCall",
            "ToolCallDone",
            "ToolDefinition",
            "Usage",
            "accumulate",
        ],
    },
)


__all__ = [
    "BACKEND_TYPES",
    "STRATEGY_NAMES",
    "AnthropicBackend",
    "Attempt",
    "Backend",
    "BackendConnectError",
    "BackendDisconnected",
    "BackendEntry",
    "BackendError",
    "BackendFailed",
    "BackendHTTPError",
    "BackendMalformedResponse",
    "BackendSpec",
    "BackendTimeout",
    "BackendUnsupported",
    "BreakerSettings",
    "BreakerState",
    "ChatRequest",
    "ChatResult",
    "CircuitBreaker",
    "DeadlineExceeded",
    "Endpoint",
    "EndpointLike",
    "EndpointStats",
    "Finish",
    "FinishReason",
    "ForwardResponse",
    "HealthCheckSettings",
    "HealthChecker",
    "ImagePart",
    "Lease",
    "Message",
    "ModelNotFound",
    "ModelRouting",
    "NamedToolChoice",
    "NoBackendAvailable",
    "OllamaBackend",
    "OpenAIBackend",
    "ReasoningDelta",
    "Registry",
    "RegistryError",
    "RetrySettings",
    "Routed",
    "RoutedResult",
    "Router",
    "RouterError",
    "RouterSettings",
    "RouterStream",
    "SseEvent",
    "SseParser",
    "Strategy",
    "StrategyName",
    "StreamAccumulator",
    "StreamError",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "TimeoutSettings",
    "Timeouts",
    "ToolCall",
    "ToolCallDone",
    "ToolDefinition",
    "Usage",
    "accumulate",
    "chat_request_from_openai",
    "close_session",
    "create_backend",
    "get_session",
    "make_strategy",
    "redact_url",
    "redact_urls",
]
