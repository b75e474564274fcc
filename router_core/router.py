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
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from router_core.registry import BackendEntry, Registry, make_entry
from router_core.selection import CacheAware, Strategy, make_strategy
from router_core.settings import BackendSpec, RouterSettings
from router_core.types import (
    BackendError,
    BackendHTTPError,
    BackendTimeout,
    BackendUnsupported,
    ChatRequest,
    ChatResult,
    Finish,
    Message,
    StreamError,
    StreamEvent,
)

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
Op = Callable[[BackendEntry, str], Awaitable[T]]
"""One attempt: send to this backend, for this (alias-resolved) model name."""


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one request: where it went and how it ended (`error` None: it succeeded)."""

    backend: str
    model: str
    error: str | None = None


class RouterError(Exception):
    """The router could not get an answer; `status` is the HTTP status that fits best."""

    status = 502

    def __init__(self, message: str, attempts: Iterable[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)
        self.retry_after: float | None = None

    @property
    def backend(self) -> str | None:
        """The last backend tried, if any."""
        return self.attempts[-1].backend if self.attempts else None


class ModelNotFound(RouterError):
    """No backend serves the model, and it is no alias of one and has no fallback."""

    status = 404

    def __init__(self, model: str, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none (no backend reported any model)"
        super().__init__(f"model {model!r} does not exist; models available: {listed}")
        self.model = model
        self.known = known


class NoBackendAvailable(RouterError):
    """Every backend that serves the model (and its fallbacks) is excluded right now."""

    status = 503

    def __init__(
        self,
        model: str,
        reasons: Mapping[str, Mapping[str, str]],
        attempts: Iterable[Attempt] = (),
        retry_after: float | None = None,
    ) -> None:
        parts = []
        for name, why in reasons.items():
            detail = "; ".join(f"{backend}: {reason}" for backend, reason in why.items())
            parts.append(f"{name!r} ({detail or 'no backend serves it'})")
        super().__init__(f"no backend can serve model {model!r}: " + ", ".join(parts), attempts)
        self.model = model
        self.reasons = {name: dict(why) for name, why in reasons.items()}
        self.retry_after = retry_after


class DeadlineExceeded(RouterError):
    """The request's deadline passed before an answer (or before the end of the stream)."""

    status = 504

    def __init__(self, model: str, deadline: float, attempts: Iterable[Attempt] = ()) -> None:
        attempts = list(attempts)
        tried = "; ".join(f"{a.backend}: {a.error}" for a in attempts if a.error)
        super().__init__(
            f"model {model!r}: no answer within the {deadline:g} s deadline"
            + (f" (tried {tried})" if tried else ""),
            attempts,
        )


class BackendFailed(RouterError):
    """Backends answered, but with errors: `error` is the last, and decides the status."""

    def __init__(self, model: str, error: BackendError, attempts: Iterable[Attempt]) -> None:
        attempts = list(attempts)
        others = [f"{a.backend}: {a.error}" for a in attempts[:-1] if a.error]
        message = str(error) + (f" (earlier: {'; '.join(others)})" if others else "")
        super().__init__(message, attempts)
        self.model = model
        self.error = error
        self.retry_after = error.retry_after
        self.status = _status_for(error)


def _status_for(error: BackendError) -> int:
    if isinstance(error, BackendTimeout):
        return 504
    if isinstance(error, BackendUnsupported):
        return 400
    status = error.status
    if status is not None and 400 <= status < 500:
        return 502 if status in (401, 403, 408) else status
    return 502


def is_backend_fault(error: BaseException) -> bool:
    """Whether a failure says the backend is unwell (counted by stats and the breaker).

    Error statuses 4xx other than 408 and 429 are the caller's own fault, and a request a
    backend type cannot express is nobody's; everything else a backend raises counts."""
    if isinstance(error, BackendUnsupported):
        return False
    if isinstance(error, BackendHTTPError):
        status = error.status or 500
        return status >= 500 or status in (408, 429)
    return True


def _caller_fault(error: BackendError) -> bool:
    """The request itself is wrong: another backend or model would refuse it too."""
    return isinstance(error, BackendHTTPError) and not is_backend_fault(error)


# --------------------------------------------------------------------------- leases


class Lease:
    """One request in flight on one backend: exactly one of succeed / fail / abandon settles it,
    so the in-flight count and the breaker's probe slot always come back."""

    __slots__ = ("entry", "model", "settled", "started")

    def __init__(self, entry: BackendEntry, model: str) -> None:
        self.entry = entry
        self.model = model
        self.settled = False
        self.started = time.perf_counter()
        entry.stats.begin()

    @property
    def backend(self) -> str:
        return self.entry.name

    def first_token(self) -> None:
        """The first event of a stream arrived (feeds the TTFT EWMA)."""
        self.entry.stats.observe_ttft(time.perf_counter() - self.started)

    def succeed(self, *, total: bool = False) -> None:
        """The request ended well; `total` feeds its whole time to the latency EWMA."""
        if self.settled:
            return
        self.settled = True
        self.entry.stats.succeed(time.perf_counter() - self.started if total else None)
        self.entry.breaker.record_success()

    def fail(self, error: BaseException) -> bool:
        """The request failed; returns whether it counted against the backend."""
        if self.settled:
            return False
        self.settled = True
        entry = self.entry
        if is_backend_fault(error):
            entry.stats.fail(str(error) or type(error).__name__)
            entry.breaker.record_failure()
            return True
        # The backend answered properly (the request was at fault): alive, not a sample.
        entry.stats.abandon()
        entry.breaker.record_success()
        return False

    def abandon(self) -> None:
        """The caller went away or the request was cancelled: no verdict on the backend."""
        if self.settled:
            return
        self.settled = True
        self.entry.stats.abandon()
        self.entry.breaker.release()


@dataclass(slots=True)
class Routed(Generic[T]):
    """What an attempt returned, where it ran, and what it took to get there.

    `upstream_seconds` is the time spent waiting on backends (all attempts) and in retry
    waits; a relay subtracts it from its own elapsed time to report Junction's overhead.
    `deadline_at` is the request's deadline on the loop clock (None: none), for the rest of a
    stream. For a stream `lease` is still open: the relay settles it."""

    value: T
    lease: Lease
    model: str
    attempts: list[Attempt]
    upstream_seconds: float
    deadline_at: float | None

    @property
    def backend(self) -> str:
        return self.lease.entry.name


@dataclass(slots=True)
class RoutedResult:
    """A whole answer and where it came from."""

    result: ChatResult
    backend: str
    model: str
    attempts: list[Attempt] = field(default_factory=list)


# --------------------------------------------------------------------------- request helpers

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


# --------------------------------------------------------------------------- the router


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
    ) -> Routed[T]:
        """Run `op` on a backend for `model` under every rule above; the general entry point
        (`stream`, `complete` and the OpenAI surface are built on it).

        `op` must raise BackendError for backend failures. For `streaming`, `op` returns once
        the first event is in hand (that time is the TTFT sample) and the caller settles the
        returned lease; otherwise the lease is settled here. `key` is the affinity key
        (consistent_hash, cache_aware); `prompt(limit)` gives the prompt prefix cache_aware
        hashes when there is no key (called only for that strategy). Raises RouterError subclasses; anything else `op` raises (a bad
        request it could not translate, say) passes through without counting against a backend.
        """
        deadline = self.settings.deadline
        run = _Run(self, model, op, key=key, streaming=streaming, prompt=prompt)
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


class _Run(Generic[T]):
    """The state of one dispatch: attempts so far, per-model exclusions, time upstream."""

    __slots__ = (
        "attempts",
        "deadline_at",
        "key",
        "model",
        "op",
        "prompt",
        "router",
        "streaming",
        "upstream",
    )

    def __init__(
        self,
        router: Router,
        model: str,
        op: Op[T],
        *,
        key: str | None,
        streaming: bool,
        prompt: Callable[[int], str] | None,
    ) -> None:
        self.router = router
        self.model = model
        self.op = op
        self.key = key
        self.streaming = streaming
        self.prompt = prompt
        self.attempts: list[Attempt] = []
        self.upstream = 0.0
        self.deadline_at: float | None = None

    async def go(self, timeout: asyncio.Timeout | None) -> Routed[T]:
        router = self.router
        registry = router.registry
        settings = router.settings
        chain = [self.model]
        fallbacks = settings.fallbacks.get(self.model)
        if fallbacks is None:
            real = registry.resolve(self.model)
            if real != self.model:
                fallbacks = settings.fallbacks.get(real)
        if fallbacks:
            chain.extend(fallbacks)
        if not registry.pool(registry.resolve(self.model)):
            if registry.undiscovered():
                await registry.ensure_discovered()
            if not registry.pool(registry.resolve(self.model)) and not fallbacks:
                raise ModelNotFound(self.model, registry.known_models())
        reasons: dict[str, dict[str, str]] = {}
        last_error: BackendError | None = None
        retry_after: float | None = None
        for name in chain:
            real = registry.resolve(name)
            outcome = await self._try_model(real, timeout, reasons)
            if isinstance(outcome, Routed):
                return outcome
            if outcome is not None:
                last_error = outcome
                if outcome.retry_after is not None:
                    retry_after = outcome.retry_after
        if last_error is not None:
            raise BackendFailed(self.model, last_error, self.attempts)
        now = time.monotonic()
        waits = [
            e.cooldown_until - now
            for name in chain
            for e in registry.pool(registry.resolve(name))
            if e.cooldown_until > now
        ]
        if waits:
            retry_after = min(waits)
        raise NoBackendAvailable(self.model, reasons, self.attempts, retry_after)

    async def _try_model(
        self,
        model: str,
        timeout: asyncio.Timeout | None,
        reasons: dict[str, dict[str, str]],
    ) -> Routed[T] | BackendError | None:
        """Attempts on one model: its answer, its last error, or None when nothing could serve."""
        router = self.router
        retries = router.settings.retries
        pool = router.registry.pool(model)
        if not pool:
            reasons[model] = {}
            return None
        strategy = router.strategy_for(model)
        key = self.key
        if key is None and self.prompt is not None and isinstance(strategy, CacheAware):
            key = self.prompt(strategy.prefix_chars)
        tried: set[str] = set()
        banned: set[str] = set()
        last_error: BackendError | None = None
        attempts_left = retries.attempts
        retry_no = 0
        while attempts_left > 0:
            now = time.monotonic()
            if banned:
                candidates = [
                    e
                    for e in pool
                    if e.name not in banned and e.cooldown_until <= now and e.available()
                ]
            else:
                candidates = [e for e in pool if e.cooldown_until <= now and e.available()]
            entry = strategy.pick(candidates, key, tried) if tried else None
            if entry is None and candidates:
                entry = strategy.pick(candidates, key)
            if entry is None:
                wait = self._cooldown_wait(pool, banned, now)
                if wait is None:
                    break
                started = time.perf_counter()
                await asyncio.sleep(wait)
                self.upstream += time.perf_counter() - started
                continue
            if not entry.breaker.allow():  # a half-open probe slot taken meanwhile
                banned.add(entry.name)
                continue
            if entry.name in tried:
                retry_no += 1
                delay = min(retries.backoff_max, retries.backoff_base * 2 ** (retry_no - 1))
                delay *= 1.0 - retries.jitter * router._rng.random()
                if delay > 0:
                    started = time.perf_counter()
                    try:
                        await asyncio.sleep(delay)
                    except BaseException:
                        entry.breaker.release()
                        raise
                    self.upstream += time.perf_counter() - started
            attempts_left -= 1
            outcome = await self._attempt(entry, model, timeout)
            if isinstance(outcome, Routed):
                return outcome
            error = outcome
            last_error = error
            tried.add(entry.name)
            if _caller_fault(error):
                raise BackendFailed(self.model, error, self.attempts)
            if not error.retryable:
                banned.add(entry.name)
            if error.retry_after and error.status == 429:
                entry.cooldown_until = max(entry.cooldown_until, now + error.retry_after)
        if last_error is None:
            now = time.monotonic()
            reasons[model] = {
                e.name: ("already tried" if e.name in banned else e.exclusion_reason(now) or "busy")
                for e in pool
            }
        return last_error

    def _cooldown_wait(
        self, pool: list[BackendEntry], banned: set[str], now: float
    ) -> float | None:
        """Seconds until a rate-limited backend is usable again, when worth waiting for."""
        waits = [
            e.cooldown_until - now
            for e in pool
            if e.cooldown_until > now and e.name not in banned and e.unavailable_reason() is None
        ]
        if not waits:
            return None
        wait = min(waits)
        if wait > self.router.settings.retries.max_retry_after:
            return None
        deadline_at = self.deadline_at
        if deadline_at is not None and asyncio.get_running_loop().time() + wait >= deadline_at:
            return None
        return wait

    def _ttfb_limit(self, entry: BackendEntry) -> float | None:
        """Seconds a streamed attempt on `entry` may wait for its first event (None: no limit)."""
        if not self.streaming:
            return None
        spec = entry.spec
        limit = spec.timeouts.ttfb if spec is not None else None
        return self.router.settings.ttfb_timeout if limit is None else limit

    async def _attempt(
        self, entry: BackendEntry, model: str, timeout: asyncio.Timeout | None
    ) -> Routed[T] | BackendError:
        lease = Lease(entry, model)
        started = lease.started
        limit = self._ttfb_limit(entry)
        ttfb = None if limit is None else asyncio.timeout(limit)
        try:
            if ttfb is None:
                value = await self.op(entry, model)
            else:
                async with ttfb:
                    value = await self.op(entry, model)
        except TimeoutError:
            if ttfb is None or not ttfb.expired():
                lease.abandon()
                raise
            error = BackendTimeout(
                f"no first event within the {limit:g} s time-to-first-byte limit",
                backend=entry.name,
            )
            return self._failed(lease, model, error)
        except asyncio.CancelledError:
            self.upstream += time.perf_counter() - started
            if timeout is not None and timeout.expired():
                error = BackendTimeout("the request deadline passed", backend=entry.name)
                lease.fail(error)
                self.attempts.append(Attempt(entry.name, model, str(error)))
            else:
                lease.abandon()
            raise
        except BackendError as exc:
            return self._failed(lease, model, exc)
        except BaseException:
            lease.abandon()
            raise
        self.upstream += time.perf_counter() - started
        self.attempts.append(Attempt(entry.name, model))
        if self.streaming:
            lease.first_token()
        else:
            lease.succeed(total=True)
        return Routed(value, lease, model, self.attempts, self.upstream, self.deadline_at)

    def _failed(self, lease: Lease, model: str, error: BackendError) -> BackendError:
        """Settle a failed attempt: counted against its backend when it is the backend's fault."""
        name = lease.backend
        self.upstream += time.perf_counter() - lease.started
        if error.backend is None:
            error.backend = name
        lease.fail(error)
        self.attempts.append(Attempt(name, model, str(error)))
        log.info("backend %s failed for model %s: %s", name, model, error)
        return error


# --------------------------------------------------------------------------- streams

_Primed = tuple[AsyncGenerator[StreamEvent, None], StreamEvent]


class RouterStream:
    """A routed stream of normalised events (an async iterator; close it if you stop early).

    Routing happens on `open()` (or the first iteration): failover is possible until the first
    event is in hand; from then on `backend` names the backend, and a failure is yielded as a
    final `StreamError`. A cancelled or closed stream releases the backend (in-flight count,
    breaker probe slot) and closes the upstream connection."""

    __slots__ = ("_done", "_first", "_gen", "_key", "_request", "_router", "routed")

    def __init__(self, router: Router | None, request: ChatRequest | None, key: str | None) -> None:
        self._router = router
        self._request = request
        self._key = key
        self.routed: Routed[_Primed] | None = None
        self._gen: AsyncGenerator[StreamEvent, None] | None = None
        self._first: StreamEvent | None = None
        self._done = False

    @classmethod
    def attached(cls, routed: Routed[_Primed]) -> RouterStream:
        """A stream over an already-routed, primed backend stream (for other relays)."""
        stream = cls(None, None, None)
        stream._attach(routed)
        return stream

    def _attach(self, routed: Routed[_Primed]) -> None:
        self.routed = routed
        self._gen, self._first = routed.value

    @property
    def backend(self) -> str | None:
        """The backend serving this stream, once known."""
        return self.routed.backend if self.routed is not None else None

    @property
    def model(self) -> str | None:
        """The model name sent to the backend (an alias or fallback resolved), once known."""
        return self.routed.model if self.routed is not None else None

    async def open(self) -> None:
        """Route the request and wait for its first event; raises RouterError if that fails."""
        if self.routed is not None or self._done:
            return
        router, request = self._router, self._request
        assert router is not None and request is not None

        async def op(entry: BackendEntry, model: str) -> _Primed:
            gen = entry.backend.stream(adapt_request(request, entry.backend.kind, model))
            try:
                first = await gen.__anext__()
            except StopAsyncIteration:
                raise BackendError(
                    "the stream ended without any event", backend=entry.name, retryable=True
                ) from None
            return gen, first

        try:
            routed = await router.dispatch(
                request.model,
                op,
                key=self._key,
                streaming=True,
                prompt=lambda limit: prompt_prefix(request.messages, limit),
            )
        except BaseException:
            self._done = True
            raise
        self._attach(routed)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        if self.routed is None:
            if self._done:
                raise StopAsyncIteration
            await self.open()
        routed = self.routed
        assert routed is not None
        first = self._first
        if first is not None:
            self._first = None
            if isinstance(first, Finish):
                routed.lease.succeed()
                await self._finish()
            return first
        gen = self._gen
        if self._done or gen is None:
            raise StopAsyncIteration
        lease = routed.lease
        try:
            if routed.deadline_at is None:
                event = await gen.__anext__()
            else:
                async with asyncio.timeout_at(routed.deadline_at):
                    event = await gen.__anext__()
        except StopAsyncIteration:
            await self._finish()
            if not lease.settled:  # ended without a Finish: backends never do, but be sure
                error = BackendError("the stream ended without a finish", backend=lease.backend)
                lease.fail(error)
                return StreamError.from_exception(error)
            raise
        except asyncio.CancelledError:
            lease.abandon()
            await self._finish()
            raise
        except TimeoutError:
            deadline = self._router.settings.deadline if self._router is not None else None
            error = BackendTimeout(
                f"the request deadline ({deadline or 0:g} s) passed mid-stream",
                backend=lease.backend,
            )
            lease.fail(error)
            await self._finish()
            return StreamError.from_exception(error)
        except BackendError as exc:
            if exc.backend is None:
                exc.backend = lease.backend
            lease.fail(exc)
            await self._finish()
            log.info("stream from %s broke after it started: %s", lease.backend, exc)
            return StreamError.from_exception(exc)
        except Exception as exc:
            lease.fail(exc)
            await self._finish()
            log.exception("stream from %s failed unexpectedly", lease.backend)
            return StreamError.from_exception(exc)
        if isinstance(event, Finish):
            lease.succeed()
            await self._finish()
        return event

    async def _finish(self) -> None:
        self._done = True
        gen, self._gen = self._gen, None
        if gen is not None:
            await gen.aclose()

    async def aclose(self) -> None:
        """Stop early: releases the backend and closes the upstream connection."""
        if self.routed is not None:
            self.routed.lease.abandon()
        self._done = True
        await self._finish()
