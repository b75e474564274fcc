"""One dispatch under the router's rules (see `router_core.router`): a model's candidates, the
strategy's pick, retries with backoff, Retry-After cool-downs, failover and the fallback chain.

It holds no reference to the `Router` class (that module builds on this one): it reads the
router's current settings, registry and strategies through `RouterState`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from router_core import tracing
from router_core.errors import (
    Attempt,
    BackendFailed,
    ModelNotFound,
    NoBackendAvailable,
    caller_fault,
)
from router_core.lease import Lease, Routed
from router_core.model_spans import record_result, start_model_span
from router_core.registry import BackendEntry, Registry
from router_core.selection import CacheAware, Strategy
from router_core.settings import RouterSettings
from router_core.types import BackendError, BackendTimeout

__all__ = ["Dispatch", "Op", "RouterState"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[BackendEntry, str], Awaitable[T]]
"""One attempt: send to this backend, for this (alias-resolved) model name."""


class RouterState(Protocol):
    """What a dispatch reads from its router, live (a hot reload may swap the settings)."""

    settings: RouterSettings
    registry: Registry

    def strategy_for(self, model: str) -> Strategy: ...


class Dispatch(Generic[T]):
    """The state of one dispatch: attempts so far, per-model exclusions, time upstream."""

    __slots__ = (
        "attempts",
        "deadline_at",
        "key",
        "model",
        "op",
        "operation",
        "prompt",
        "rng",
        "router",
        "streaming",
        "upstream",
    )

    def __init__(
        self,
        router: RouterState,
        model: str,
        op: Op[T],
        *,
        rng: random.Random,
        key: str | None,
        streaming: bool,
        prompt: Callable[[int], str] | None,
        operation: str = "chat",
    ) -> None:
        self.router = router
        self.operation = operation
        self.rng = rng
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
                delay *= 1.0 - retries.jitter * self.rng.random()
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
            if caller_fault(error):
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
        if tracing.enabled():
            lease.span = start_model_span(
                entry, model, operation=self.operation, streaming=self.streaming
            )
        started = lease.started
        limit = self._ttfb_limit(entry)
        ttfb = None if limit is None else asyncio.timeout(limit)
        try:
            with tracing.using(lease.span):  # the backend's request names this span
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
            if lease.span is not None:
                record_result(lease.span, value, model)
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
