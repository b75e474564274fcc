"""The model router: model -> candidate backends -> a pick -> a send, with retries, failover,
fallback chains, a deadline, and every outcome fed back into stats and circuit breakers.

Rules (the reasons are in the design brief and the router_core issue):
- Candidates are the backends serving the model (static list, discovery, runtime registrations)
  that are healthy, whose breaker lets a request through, and that are not cooling down after a
  429 with Retry-After. The model's strategy picks among them.
- A retryable failure (connect error, timeout, lost connection, 408, 429, 5xx) is retried up to
  `retries.attempts` times per model, on a backend not tried yet when there is one (at once),
  else on one already tried after an exponential backoff with jitter. A Retry-After puts that
  backend aside for that long, for every request; if nothing else can serve, the request waits
  for it when the wait is short (`max_retry_after`) and fits the deadline.
- A garbage answer (malformed) is not retried on the same backend but may go to another one.
- The caller's own errors (4xx other than 408/429) are answered at once and are not counted
  against the backend: it answered correctly.
- Streams fail over only until their first event has been handed to the caller; after that a
  failure becomes a final `StreamError` event, never a silent end.
- When a model's attempts are used up, or nothing can serve it, its fallback chain is tried.
- The whole request, stream included, runs under one deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar

from router_core.adapt import adapt_request, prompt_prefix
from router_core.dispatch import Dispatch, Op
from router_core.errors import (
    Attempt,
    BackendFailed,
    DeadlineExceeded,
    ModelNotFound,
    NoBackendAvailable,
    RouterError,
    is_backend_fault,
)
from router_core.lease import Lease, Routed, RoutedResult
from router_core.registry import BackendEntry, Registry, make_entry
from router_core.selection import Strategy, make_strategy
from router_core.settings import BackendSpec, RouterSettings
from router_core.stream import RouterStream
from router_core.types import ChatRequest, ChatResult

# The names below were all defined here before the router was split into its parts (errors,
# lease, adapt, dispatch, stream); they stay importable from this module.
__all__ = [
    "Attempt",
    "BackendFailed",
    "DeadlineExceeded",
    "Lease",
    "ModelNotFound",
    "NoBackendAvailable",
    "Routed",
    "RoutedResult",
    "Router",
    "RouterError",
    "RouterStream",
    "adapt_request",
    "is_backend_fault",
    "prompt_prefix",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Router:
    """Routes chat requests over a set of backends; see the module docstring for the rules.

    Use as `async with Router(specs, settings) as router:` (or `start()` / `aclose()`): that runs
    the health checks and model discovery in the background. Without starting, requests still
    work (discovery happens on demand); only active health checks are missing.
    """

    def __init__(
        self,
        backends: Iterable[BackendSpec | BackendEntry] = (),
        settings: RouterSettings | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings if settings is not None else RouterSettings()
        entries = [
            b if isinstance(b, BackendEntry) else make_entry(b, self.settings) for b in backends
        ]
        self.registry = Registry(self.settings, entries)
        self._rng = rng if rng is not None else random.Random()
        self._strategies: dict[str, Strategy] = {}
        self._maintenance: asyncio.Task[None] | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start health checks, discovery and the maintenance loop (TTL refresh, expiry)."""
        if self._started:
            return
        self._started = True
        self.registry.start()
        self._maintenance = asyncio.get_running_loop().create_task(
            self._maintain(), name="router-maintenance"
        )

    async def aclose(self) -> None:
        """Stop background work (requests in flight are the callers' to finish)."""
        if not self._started:
            return
        self._started = False
        task, self._maintenance = self._maintenance, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.registry.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _maintain(self) -> None:
        while True:
            # Read each round: `reconfigure` may have changed the TTLs.
            settings = self.settings
            await asyncio.sleep(min(1.0, settings.registration_ttl / 4, settings.discovery_ttl / 4))
            try:
                self.registry.sweep()
                await self.registry.refresh()
            except Exception:  # keep maintaining whatever one pass hit
                log.exception("router maintenance failed")

    async def refresh_models(self, *, force: bool = True) -> None:
        """Discover model lists now (all of them with force, else only stale ones)."""
        await self.registry.refresh(force=force)

    async def check_health(self) -> None:
        """Run one health probe of every backend now (what `junction backends` shows)."""
        checkers = [e.health for e in self.registry.entries() if e.health is not None]
        await asyncio.gather(*(h.check_once() for h in checkers))

    def reconfigure(self, backends: Iterable[BackendSpec], settings: RouterSettings) -> None:
        """Take a new configuration while requests run (a hot reload).

        The configured backends become exactly `backends` (see `Registry.configure`: unchanged
        ones keep their state, requests in flight finish where they started). Retries, deadline,
        fallbacks and aliases apply from the next request on; strategies are rebuilt when their
        settings changed, since their per-pool state belongs to the old ones.
        """
        old, self.settings = self.settings, settings
        if (old.strategy, old.strategy_options, old.models) != (
            settings.strategy,
            settings.strategy_options,
            settings.models,
        ):
            self._strategies = {}
        self.registry.configure(backends, settings)

    # -- runtime registration --------------------------------------------------------------

    def register(self, spec: BackendSpec, ttl: float | None = None) -> BackendEntry:
        """Add a backend that keeps itself registered with `heartbeat()` within `ttl` seconds."""
        # Strategies notice the changed candidate set themselves (their state is per name).
        return self.registry.register(spec, ttl)

    def heartbeat(self, name: str) -> BackendEntry:
        return self.registry.heartbeat(name)

    def deregister(self, name: str) -> None:
        self.registry.deregister(name)

    # -- inspection ------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """Every backend's state, circuit, EWMA latency, in-flight count and models."""
        self.registry.sweep()
        now = time.monotonic()
        return [entry.snapshot(now) for entry in self.registry.entries()]

    def available_models(self) -> dict[str, list[str]]:
        """Model (and alias) -> backends that can take it now; models nobody can serve are left
        out, so a client choosing from `/v1/models` picks something that works."""
        self.registry.sweep()
        now = time.monotonic()
        out: dict[str, list[str]] = {}
        for model in self.registry.known_models():
            pool = self.registry.pool(self.registry.resolve(model))
            names = [e.name for e in pool if e.exclusion_reason(now) is None]
            if names:
                out[model] = names
        return out

    # -- routing ---------------------------------------------------------------------------

    def stream(self, request: ChatRequest, *, key: str | None = None) -> RouterStream:
        """The answer as normalised events; `backend` on the returned stream names the backend
        once the first event is out (or after `await stream.open()`). Close it (or use
        `contextlib.aclosing`) if you stop early."""
        return RouterStream(self, request, key)

    async def complete(self, request: ChatRequest, *, key: str | None = None) -> RoutedResult:
        """The whole answer from one non-streaming upstream request (with retries/failover)."""

        async def op(entry: BackendEntry, model: str) -> ChatResult:
            return await entry.backend.complete(adapt_request(request, entry.backend.kind, model))

        routed = await self.dispatch(
            request.model, op, key=key, prompt=lambda limit: prompt_prefix(request.messages, limit)
        )
        return RoutedResult(routed.value, routed.backend, routed.model, routed.attempts)

    def strategy_for(self, model: str) -> Strategy:
        """The model's strategy instance (one per model: strategies keep per-pool state)."""
        strategy = self._strategies.get(model)
        if strategy is None:
            override = self.settings.models.get(model)
            if override is not None:
                strategy = make_strategy(override.strategy, **override.options)
            else:
                strategy = make_strategy(self.settings.strategy, **self.settings.strategy_options)
            self._strategies[model] = strategy
        return strategy

    async def dispatch(
        self,
        model: str,
        op: Op[T],
        *,
        key: str | None = None,
        streaming: bool = False,
        prompt: Callable[[int], str] | None = None,
        operation: str = "chat",
    ) -> Routed[T]:
        """Run `op` on a backend for `model` under every rule above; the general entry point
        (`stream`, `complete` and the OpenAI surface are built on it).

        `op` must raise BackendError for backend failures. For `streaming`, `op` returns once
        the first event is in hand (that time is the TTFT sample) and the caller settles the
        returned lease; otherwise the lease is settled here. `key` is the affinity key
        (consistent_hash, cache_aware); `prompt(limit)` gives the prompt prefix cache_aware
        hashes when there is no key (called only for that strategy). `operation` names the
        GenAI operation in the attempts' spans (chat, embeddings). Raises RouterError subclasses; anything else `op` raises (a bad
        request it could not translate, say) passes through without counting against a backend.
        """
        deadline = self.settings.deadline
        run = Dispatch(
            self,
            model,
            op,
            rng=self._rng,
            key=key,
            streaming=streaming,
            prompt=prompt,
            operation=operation,
        )
        if deadline is None:
            return await run.go(None)
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + deadline
        run.deadline_at = deadline_at
        timeout = asyncio.timeout_at(deadline_at)
        try:
            async with timeout:
                return await run.go(timeout)
        except TimeoutError:
            if timeout.expired():
                raise DeadlineExceeded(model, deadline, run.attempts) from None
            raise
