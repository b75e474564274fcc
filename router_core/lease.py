"""One request in flight on one backend (`Lease`) and what a routed attempt hands back
(`Routed`, `RoutedResult`): the lease keeps the in-flight count, EWMAs and breaker honest."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from router_core import tracing
from router_core.errors import Attempt, is_backend_fault
from router_core.registry import BackendEntry
from router_core.types import ChatResult

__all__ = ["Lease", "Routed", "RoutedResult"]

T = TypeVar("T")


class Lease:
    """One request in flight on one backend: exactly one of succeed / fail / abandon settles it,
    so the in-flight count and the breaker's probe slot always come back. With tracing on it
    carries the attempt's span (`router_core.model_spans`), which settling ends."""

    __slots__ = ("entry", "model", "settled", "span", "started")

    def __init__(self, entry: BackendEntry, model: str) -> None:
        self.entry = entry
        self.model = model
        self.settled = False
        self.started = time.perf_counter()
        self.span: tracing.LiveSpan | None = None
        entry.stats.begin()

    @property
    def backend(self) -> str:
        return self.entry.name

    def first_token(self) -> None:
        """The first event of a stream arrived (feeds the TTFT EWMA)."""
        ttft = time.perf_counter() - self.started
        self.entry.stats.observe_ttft(ttft)
        if self.span is not None:
            self.span.set_attribute("gen_ai.response.time_to_first_chunk", ttft)

    def succeed(self, *, total: bool = False) -> None:
        """The request ended well; `total` feeds its whole time to the latency EWMA."""
        if self.settled:
            return
        self.settled = True
        self.entry.stats.succeed(time.perf_counter() - self.started if total else None)
        self.entry.breaker.record_success()
        if self.span is not None:
            self.span.end()

    def fail(self, error: BaseException) -> bool:
        """The request failed; returns whether it counted against the backend."""
        if self.settled:
            return False
        self.settled = True
        entry = self.entry
        if self.span is not None:
            self.span.fail(error)
            self.span.end()
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
        if self.span is not None:
            self.span.add_event("abandoned")  # the caller went away: no verdict
            self.span.end()


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
