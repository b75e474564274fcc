"""Live state of one endpoint (load, latency, errors), its circuit breaker, and active health checks.

Nothing here knows what an endpoint is: an LLM backend, an A2A agent offering a skill and a replica
of an MCP server all get the same three pieces. `EndpointStats` is updated on every request, so it
is a plain slotted object with no locks (asyncio runs callbacks one at a time). `CircuitBreaker`
turns passive failures into "stop sending here for a while"; `HealthChecker` probes in the
background and feeds the same breaker, so an endpoint that fails its probes stops getting traffic
even when no request has failed yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BreakerSettings",
    "BreakerState",
    "CircuitBreaker",
    "EndpointStats",
    "HealthCheckSettings",
    "HealthChecker",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


# --------------------------------------------------------------------------- settings


class BreakerSettings(BaseModel):
    """Circuit-breaker knobs, shaped for a config file (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    consecutive_failures: int = Field(default=5, ge=0)
    """Open after this many failures in a row; 0 turns this trigger off."""
    failure_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    """Open when this share of the requests in the window failed..."""
    min_requests: int = Field(default=20, ge=1)
    """...and the window holds at least this many requests (a few early errors prove nothing)."""
    window: float = Field(default=30.0, gt=0.0)
    """Length of the sliding failure-rate window, in seconds."""
    cooldown: float = Field(default=5.0, gt=0.0)
    """How long the breaker stays open before letting probe requests through, in seconds."""
    cooldown_multiplier: float = Field(default=2.0, ge=1.0)
    """Each failed half-open probe multiplies the next cool-down by this..."""
    max_cooldown: float = Field(default=60.0, gt=0.0)
    """...up to this many seconds."""
    half_open_max_calls: int = Field(default=1, ge=1)
    """Probe requests allowed at once while half-open."""

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> Self:
        if self.max_cooldown < self.cooldown:
            raise ValueError(
                f"max_cooldown ({self.max_cooldown:g}) is below cooldown ({self.cooldown:g})"
            )
        return self


class HealthCheckSettings(BaseModel):
    """Active health-check knobs, shaped for a config file (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    interval: float = Field(default=10.0, gt=0.0)
    """Seconds between the end of one probe and the start of the next."""
    timeout: float = Field(default=2.0, gt=0.0)
    """A probe still running after this many seconds is cancelled and counts as a failure."""
    unhealthy_threshold: int = Field(default=3, ge=1)
    """Consecutive failed probes that mark a healthy endpoint unhealthy."""
    healthy_threshold: int = Field(default=2, ge=1)
    """Consecutive passed probes that mark an unhealthy endpoint healthy again."""
    jitter: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Each interval is stretched or shrunk by up to this fraction, so probes do not align."""


# --------------------------------------------------------------------------- stats


class EndpointStats:
    """Per-endpoint load and latency, updated on every request (hence slots and no allocation).

    A request calls `begin()`, then exactly one of `succeed()`, `fail()` or `abandon()`. Streams
    report time to first token with `observe_ttft()` when the first chunk arrives and call
    `succeed()` without a latency; other requests pass their total time to `succeed()`. The two
    latencies are kept apart because a stream's total time measures the answer's length, not the
    endpoint's speed. Latencies are EWMAs in seconds, None until the first sample.
    """

    __slots__ = (
        "alpha",
        "failures",
        "in_flight",
        "last_error",
        "latency_ewma",
        "selections",
        "successes",
        "ttft_ewma",
    )

    def __init__(self, alpha: float = 0.3) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        """Weight of the newest sample in both EWMAs."""
        self.in_flight = 0
        self.selections = 0
        """Requests sent to this endpoint, ever (what `/metrics` counts as selections)."""
        self.successes = 0
        self.failures = 0
        self.last_error: str | None = None
        self.latency_ewma: float | None = None
        self.ttft_ewma: float | None = None

    def begin(self) -> None:
        """A request was sent to this endpoint."""
        self.in_flight += 1
        self.selections += 1

    def observe_ttft(self, seconds: float) -> None:
        """A stream's first token arrived `seconds` after the request was sent."""
        previous = self.ttft_ewma
        self.ttft_ewma = (
            seconds if previous is None else previous + self.alpha * (seconds - previous)
        )

    def succeed(self, latency: float | None = None) -> None:
        """The request ended well; `latency` is its total time (leave it out for streams)."""
        if self.in_flight > 0:
            self.in_flight -= 1
        self.successes += 1
        if latency is not None:
            previous = self.latency_ewma
            self.latency_ewma = (
                latency if previous is None else previous + self.alpha * (latency - previous)
            )

    def fail(self, error: str) -> None:
        """The request failed; failures never feed the latency EWMAs (a fast refusal is not fast)."""
        if self.in_flight > 0:
            self.in_flight -= 1
        self.failures += 1
        self.last_error = error

    def abandon(self) -> None:
        """The caller went away (or the request was cancelled): neither success nor failure."""
        if self.in_flight > 0:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        """Plain data for `/admin/backends` and `junction backends`."""
        return {
            "in_flight": self.in_flight,
            "selections": self.selections,
            "successes": self.successes,
            "failures": self.failures,
            "latency_ewma_ms": None if self.latency_ewma is None else self.latency_ewma * 1000,
            "ttft_ewma_ms": None if self.ttft_ewma is None else self.ttft_ewma * 1000,
            "last_error": self.last_error,
        }

    def __repr__(self) -> str:
        return (
            f"EndpointStats(in_flight={self.in_flight}, successes={self.successes}, "
            f"failures={self.failures}, latency_ewma={self.latency_ewma}, "
            f"ttft_ewma={self.ttft_ewma})"
        )


# --------------------------------------------------------------------------- circuit breaker


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


BreakerListener = Callable[["CircuitBreaker", BreakerState, BreakerState], None]
"""Called as `listener(breaker, old_state, new_state)` on every transition."""


class CircuitBreaker:
    """Closed -> open on consecutive failures or a windowed failure rate; half-open after a cool-down.

    `available()` says whether a request could go through without claiming anything, so a caller
    can filter candidates; `allow()` claims the passage (in half-open, one of the probe slots).
    Every allowed request must end in `record_success()`, `record_failure()` or `release()` (the
    last when it was cancelled), or a half-open probe slot stays taken. Results that arrive while
    open are ignored: they belong to requests sent before it opened. The open -> half-open move
    happens lazily, when the breaker is next asked, so no timer task is needed.
    """

    def __init__(
        self,
        settings: BreakerSettings | None = None,
        *,
        name: str = "",
        clock: Clock = time.monotonic,
    ) -> None:
        self.settings = settings if settings is not None else BreakerSettings()
        self.name = name
        self._clock = clock
        self._listeners: list[BreakerListener] = []
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._open_until = 0.0
        self._cooldown = self.settings.cooldown
        self._probes = 0
        # failure-rate window: a ring of time buckets with running totals
        self._buckets = 10
        self._width = self.settings.window / self._buckets
        self._ok = [0] * self._buckets
        self._bad = [0] * self._buckets
        self._ok_total = 0
        self._bad_total = 0
        self._epoch = int(clock() / self._width)

    # -- queries

    @property
    def state(self) -> BreakerState:
        """Current state; reading it may move open -> half-open once the cool-down is over."""
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    def available(self) -> bool:
        """Whether `allow()` would succeed now; claims nothing."""
        if self._state is BreakerState.CLOSED or not self.settings.enabled:
            return True
        state = self.state
        return state is BreakerState.HALF_OPEN and self._probes < self.settings.half_open_max_calls

    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._open_until - self._clock())

    @property
    def window_counts(self) -> tuple[int, int]:
        """(successes, failures) inside the sliding window, for reporting."""
        self._advance(self._clock())
        return self._ok_total, self._bad_total

    # -- updates

    def allow(self) -> bool:
        """Claim passage for one request; False means do not send it."""
        if self._state is BreakerState.CLOSED or not self.settings.enabled:
            return True
        if (
            self.state is BreakerState.HALF_OPEN
            and self._probes < self.settings.half_open_max_calls
        ):
            self._probes += 1
            return True
        return False

    def record_success(self) -> None:
        """The request succeeded: closes a half-open breaker, resets the failure streak."""
        state = self._state
        if state is BreakerState.OPEN:
            state = self.state  # the cool-down may be over (health probes call without allow())
        if state is BreakerState.CLOSED:
            self._consecutive = 0
            self._count(ok=True)
        elif state is BreakerState.HALF_OPEN:
            self._release_probe()
            self._close()

    def record_failure(self) -> None:
        """The request failed in a way that says the endpoint is unwell (not a caller error)."""
        state = self._state
        if state is BreakerState.OPEN:
            state = self.state  # the cool-down may be over (health probes call without allow())
        if state is BreakerState.CLOSED:
            self._consecutive += 1
            self._count(ok=False)
            if not self.settings.enabled:
                return
            threshold = self.settings.consecutive_failures
            if threshold and self._consecutive >= threshold:
                self._open(grow=False)
                return
            total = self._ok_total + self._bad_total
            if (
                total >= self.settings.min_requests
                and self._bad_total >= self.settings.failure_rate * total
            ):
                self._open(grow=False)
        elif state is BreakerState.HALF_OPEN:
            self._release_probe()
            self._open(grow=True)

    def release(self) -> None:
        """An allowed request ended without a verdict (cancelled): give back its probe slot."""
        if self._state is BreakerState.HALF_OPEN:
            self._release_probe()

    def reset(self) -> None:
        """Back to closed with a clean slate (e.g. an operator or a re-registration says so)."""
        self._close()

    def add_listener(self, listener: BreakerListener) -> None:
        """Call `listener(breaker, old, new)` on each transition (metrics count them)."""
        self._listeners.append(listener)

    def snapshot(self) -> dict[str, Any]:
        """Plain data for `/admin/backends`."""
        ok, bad = self.window_counts
        return {
            "state": str(self.state),
            "consecutive_failures": self._consecutive,
            "window_successes": ok,
            "window_failures": bad,
            "retry_after_s": round(self.retry_after(), 3),
        }

    def __repr__(self) -> str:
        return f"CircuitBreaker(name={self.name!r}, state={self._state.value})"

    # -- internals

    def _release_probe(self) -> None:
        if self._probes > 0:
            self._probes -= 1

    def _open(self, *, grow: bool) -> None:
        if grow:
            self._cooldown = min(
                self._cooldown * self.settings.cooldown_multiplier, self.settings.max_cooldown
            )
        self._open_until = self._clock() + self._cooldown
        self._transition(BreakerState.OPEN)

    def _close(self) -> None:
        self._consecutive = 0
        self._cooldown = self.settings.cooldown
        self._probes = 0
        self._reset_window()
        if self._state is not BreakerState.CLOSED:
            self._transition(BreakerState.CLOSED)

    def _transition(self, new: BreakerState) -> None:
        old = self._state
        self._state = new
        if new is BreakerState.HALF_OPEN:
            self._probes = 0
        for listener in self._listeners:
            try:
                listener(self, old, new)
            except Exception:  # a metrics bug must not break routing
                log.exception("circuit breaker listener failed (%s: %s -> %s)", self.name, old, new)

    def _count(self, *, ok: bool) -> None:
        self._advance(self._clock())
        slot = self._epoch % self._buckets
        if ok:
            self._ok[slot] += 1
            self._ok_total += 1
        else:
            self._bad[slot] += 1
            self._bad_total += 1

    def _advance(self, now: float) -> None:
        """Drop the buckets that slid out of the window since the last update."""
        epoch = int(now / self._width)
        steps = epoch - self._epoch
        if steps <= 0:
            return
        if steps >= self._buckets:
            self._reset_window()
        else:
            for step in range(1, steps + 1):
                slot = (self._epoch + step) % self._buckets
                self._ok_total -= self._ok[slot]
                self._bad_total -= self._bad[slot]
                self._ok[slot] = 0
                self._bad[slot] = 0
        self._epoch = epoch

    def _reset_window(self) -> None:
        self._ok = [0] * self._buckets
        self._bad = [0] * self._buckets
        self._ok_total = 0
        self._bad_total = 0
        self._epoch = int(self._clock() / self._width)


# --------------------------------------------------------------------------- active health checks

Probe = Callable[[], Awaitable[object]]
"""An async check of one endpoint: raising or returning False is a failure, anything else a pass."""

HealthListener = Callable[["HealthChecker", bool], None]
"""Called as `listener(checker, healthy)` when the healthy flag flips."""


class HealthChecker:
    """Runs `probe` every `interval` as an asyncio task and keeps a `healthy` flag with hysteresis.

    `unhealthy_threshold` failures in a row flip a healthy endpoint to unhealthy, and
    `healthy_threshold` passes in a row flip it back, so one lost probe does not drain traffic.
    Every result also goes to `breaker` (when given): a failed probe counts like a failed request,
    and a passed probe closes a half-open breaker. A new endpoint starts healthy: passive
    detection and the breaker cover it until the first probes come back. The first probe runs
    as soon as the checker starts.
    """

    def __init__(
        self,
        probe: Probe,
        settings: HealthCheckSettings | None = None,
        *,
        name: str = "",
        breaker: CircuitBreaker | None = None,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings if settings is not None else HealthCheckSettings()
        self.name = name
        self.breaker = breaker
        self._probe = probe
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._listeners: list[HealthListener] = []
        self._task: asyncio.Task[None] | None = None
        self._healthy = True
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.checks = 0
        """Probes run so far."""
        self.last_error: str | None = None
        self.last_checked: float | None = None
        """Clock reading when the last probe ended."""

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def add_listener(self, listener: HealthListener) -> None:
        """Call `listener(checker, healthy)` whenever the healthy flag flips."""
        self._listeners.append(listener)

    async def check_once(self) -> bool:
        """Run one probe (cut at `timeout`), update the counters and the breaker; True if it passed."""
        timeout = self.settings.timeout
        error: str | None = None
        try:
            async with asyncio.timeout(timeout):
                result = await self._probe()
            if result is False:
                error = "probe reported unhealthy"
        except TimeoutError as exc:
            error = str(exc) or f"probe timed out after {timeout:g} s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.checks += 1
        self.last_checked = self._clock()
        if error is None:
            self._passed()
        else:
            self._failed(error)
        return error is None

    def start(self) -> None:
        """Start probing in the background (needs a running event loop); idempotent."""
        if self.running or not self.settings.enabled:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"health-check:{self.name}"
        )

    async def stop(self) -> None:
        """Stop probing and wait for the task to end (an in-flight probe is cancelled)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def snapshot(self) -> dict[str, Any]:
        """Plain data for `/admin/backends`."""
        return {
            "healthy": self._healthy,
            "consecutive_failures": self.consecutive_failures,
            "consecutive_successes": self.consecutive_successes,
            "checks": self.checks,
            "last_error": self.last_error,
        }

    def __repr__(self) -> str:
        return f"HealthChecker(name={self.name!r}, healthy={self._healthy})"

    # -- internals

    async def _run(self) -> None:
        interval, jitter = self.settings.interval, self.settings.jitter
        while True:
            try:
                await self.check_once()
            except Exception:  # a listener bug must not stop the checks
                log.exception("health check of %s failed unexpectedly", self.name)
            delay = (
                interval * (1.0 + jitter * (2.0 * self._rng.random() - 1.0)) if jitter else interval
            )
            await asyncio.sleep(delay)

    def _passed(self) -> None:
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if self.breaker is not None:
            self.breaker.record_success()
        if not self._healthy and self.consecutive_successes >= self.settings.healthy_threshold:
            self._flip(True)

    def _failed(self, error: str) -> None:
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        self.last_error = error
        if self.breaker is not None:
            self.breaker.record_failure()
        if self._healthy and self.consecutive_failures >= self.settings.unhealthy_threshold:
            self._flip(False)

    def _flip(self, healthy: bool) -> None:
        self._healthy = healthy
        log.info("endpoint %s is now %s", self.name, "healthy" if healthy else "unhealthy")
        for listener in self._listeners:
            try:
                listener(self, healthy)
            except Exception:
                log.exception("health listener failed (%s)", self.name)
