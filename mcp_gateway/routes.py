"""What a catalog routes: tools as LLM APIs take them, tools served in-process, routes, and
the count of calls in flight per upstream (so one leaving the configuration finishes them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.shared.dispatcher import ProgressFnT

from mcp_gateway.naming import VALID_NAME
from mcp_gateway.upstream import Upstream


@dataclass(frozen=True, slots=True)
class ToolSchema:
    """A tool as an LLM API wants it: a valid name, a description, a JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]
    server: str
    upstream_name: str


LocalHandler = Callable[[dict[str, Any], ProgressFnT | None], Awaitable[dict[str, Any]]]
"""Runs a local tool: (arguments, progress callback or None) -> a `CallToolResult` dict."""


@dataclass(frozen=True, slots=True)
class LocalTool:
    """A tool served by this process rather than an upstream, listed and routed like the rest.

    `name` is exposed as is (it must already be a valid, namespaced tool name; an upstream tool
    that would take the same name is renamed instead). Cancelling the call cancels `handler`.
    """

    name: str
    description: str
    input_schema: dict[str, Any]
    handler: LocalHandler = field(compare=False)
    server: str = "local"
    """Shown as the tool's server (`ToolSchema.server`); `origin` as its upstream name."""
    origin: str = ""
    grant: tuple[str, str] | None = None
    """`(kind, name)`: over HTTP the caller's `allowed_<kind>` globs (see `server.py`) must
    also allow `name`, e.g. `("a2a_agents", agent)` for a tool that hands work to an agent."""

    def __post_init__(self) -> None:
        if not VALID_NAME.fullmatch(self.name):
            raise ValueError(f"invalid local tool name: {self.name!r}")

    def as_mcp(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        }


@dataclass(frozen=True, slots=True)
class _Route:
    upstream: Upstream
    name: str


def _input_schema(route: _Route | LocalTool) -> Any:
    if isinstance(route, LocalTool):
        return route.input_schema
    return route.upstream.catalog.tools.get(route.name, {}).get("inputSchema")


class _InFlight:
    """Requests under way per upstream, so one leaving the configuration finishes them first."""

    def __init__(self) -> None:
        self._counts: dict[Upstream, int] = {}
        self._idle: dict[Upstream, anyio.Event] = {}

    def using(self, upstream: Upstream) -> _Using:
        """A request to `upstream` under way while the `with` block runs."""
        return _Using(self, upstream)

    def enter(self, upstream: Upstream) -> None:
        self._counts[upstream] = self._counts.get(upstream, 0) + 1

    def leave(self, upstream: Upstream) -> None:
        left = self._counts[upstream] - 1
        if left:
            self._counts[upstream] = left
        else:
            del self._counts[upstream]
            idle = self._idle.pop(upstream, None)
            if idle is not None:
                idle.set()

    async def wait_idle(self, upstream: Upstream) -> None:
        if upstream in self._counts:
            await self._idle.setdefault(upstream, anyio.Event()).wait()


class _Using:
    """`_InFlight.using`'s block (a class: cheaper than a generator's on every call)."""

    __slots__ = ("_in_flight", "_upstream")

    def __init__(self, in_flight: _InFlight, upstream: Upstream) -> None:
        self._in_flight, self._upstream = in_flight, upstream

    def __enter__(self) -> None:
        self._in_flight.enter(self._upstream)

    def __exit__(self, *_: object) -> None:
        self._in_flight.leave(self._upstream)
