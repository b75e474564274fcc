"""A routed stream of normalised events (`RouterStream`): routing and failover until the first
event, then a relay that turns any later failure into a final `StreamError`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol, Self

from router_core.adapt import adapt_request, prompt_prefix
from router_core.dispatch import Op
from router_core.lease import Routed
from router_core.model_spans import record_usage
from router_core.registry import BackendEntry
from router_core.settings import RouterSettings
from router_core.types import (
    BackendError,
    BackendTimeout,
    ChatRequest,
    Finish,
    StreamError,
    StreamEvent,
    Usage,
)

__all__ = ["Primed", "RouterStream"]

log = logging.getLogger(__name__)

Primed = tuple[AsyncGenerator[StreamEvent, None], StreamEvent]
"""A backend stream whose first event is already in hand."""


class Dispatcher(Protocol):
    """The router as a stream uses it (`Router` is one)."""

    settings: RouterSettings

    async def dispatch(
        self,
        model: str,
        op: Op[Any],
        *,
        key: str | None = None,
        streaming: bool = False,
        prompt: Callable[[int], str] | None = None,
    ) -> Routed[Any]: ...


class RouterStream:
    """A routed stream of normalised events (an async iterator; close it if you stop early).

    Routing happens on `open()` (or the first iteration): failover is possible until the first
    event is in hand; from then on `backend` names the backend, and a failure is yielded as a
    final `StreamError`. A cancelled or closed stream releases the backend (in-flight count,
    breaker probe slot) and closes the upstream connection."""

    __slots__ = ("_done", "_first", "_gen", "_key", "_request", "_router", "routed")

    def __init__(
        self, router: Dispatcher | None, request: ChatRequest | None, key: str | None
    ) -> None:
        self._router = router
        self._request = request
        self._key = key
        self.routed: Routed[Primed] | None = None
        self._gen: AsyncGenerator[StreamEvent, None] | None = None
        self._first: StreamEvent | None = None
        self._done = False

    @classmethod
    def attached(cls, routed: Routed[Primed]) -> RouterStream:
        """A stream over an already-routed, primed backend stream (for other relays)."""
        stream = cls(None, None, None)
        stream._attach(routed)
        return stream

    def _attach(self, routed: Routed[Primed]) -> None:
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

        async def op(entry: BackendEntry, model: str) -> Primed:
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
            if routed.lease.span is not None:
                self._record(first)
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
        if lease.span is not None:
            self._record(event)
        if isinstance(event, Finish):
            lease.succeed()
            await self._finish()
        return event

    def _record(self, event: StreamEvent) -> None:
        """Usage and the finish reason on the attempt's span (only while tracing)."""
        routed = self.routed
        assert routed is not None and routed.lease.span is not None
        span = routed.lease.span
        if isinstance(event, Usage):
            record_usage(span, event)
        elif isinstance(event, Finish):
            span.set_attribute("gen_ai.response.model", routed.model)
            span.set_attribute("gen_ai.response.finish_reasons", [event.reason])

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
