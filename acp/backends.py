"""A `ModelClient` over router_core backends, for use until (and beside) the full Router.

It does the least a turn loop needs: pick the backends that serve the requested model, try them
in order until one starts streaming, and say clearly why when none did. Selection strategies,
health and circuit breaking are the Router's job; this is the plain fallback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from router_core.backends import Backend
from router_core.types import BackendError, ChatRequest, StreamError, StreamEvent

log = logging.getLogger(__name__)


@dataclass
class BackendRoute:
    """A backend and the models it is configured to serve (empty: ask the backend)."""

    backend: Backend
    models: list[str] = field(default_factory=list)


class BackendsModelClient:
    """Streams from the first backend that serves the model and answers."""

    def __init__(self, routes: Sequence[BackendRoute], *, list_timeout: float = 5.0) -> None:
        self.routes = list(routes)
        self._list_timeout = list_timeout
        self._discovered: dict[str, list[str]] = {}

    async def models(self) -> list[str]:
        names: list[str] = []
        for route in self.routes:
            names.extend(route.models or await self._discover(route))
        return list(dict.fromkeys(names))

    async def _discover(self, route: BackendRoute) -> list[str]:
        name = route.backend.name
        if name not in self._discovered:
            try:
                async with asyncio.timeout(self._list_timeout):
                    self._discovered[name] = await route.backend.list_models()
            except (BackendError, TimeoutError) as exc:
                log.warning("backend %s: could not list models: %s", name, exc)
                return []
        return self._discovered[name]

    def _candidates(self, model: str) -> list[Backend]:
        chosen = [r.backend for r in self.routes if model in r.models]
        if not chosen:
            chosen = [r.backend for r in self.routes if not r.models]
        return chosen or [r.backend for r in self.routes]

    async def stream(
        self, request: ChatRequest, *, key: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        candidates = self._candidates(request.model)
        if not candidates:
            raise BackendError("no model backend is configured")
        failures: list[str] = []
        for backend in candidates:
            started = False
            events = backend.stream(request)
            try:
                async for event in events:
                    started = True
                    yield event
                return
            except BackendError as exc:
                if started:
                    yield StreamError.from_exception(exc)
                    return
                failures.append(str(exc))
                log.warning("backend %s failed, trying the next: %s", backend.name, exc)
            finally:
                await events.aclose()
        raise BackendError(
            f"every backend failed for model {request.model!r}: " + "; ".join(failures)
        )


__all__ = ["BackendRoute", "BackendsModelClient"]
