"""Glue between Junction's configuration and the model router: build the Router from `backends:`
and `routing:`, the OpenAI-compatible routes serve mode mounts, and `junction backends`.

The config sections are read through `model_dump()` into router_core's own settings models, so
keys the config gains later (per-backend health/breaker/timeouts, routing fallbacks, ...) flow
through without this module changing, and router_core stays free of Junction imports.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.routing import BaseRoute

from junction.config import JunctionConfig
from router_core import BackendSpec, Router, RouterSettings, close_session

__all__ = ["backend_specs", "backends_command", "build_router", "openai_routes", "router_settings"]

log = logging.getLogger("junction.router")
T = TypeVar("T")


def router_settings(config: JunctionConfig) -> RouterSettings:
    """`routing:` as the router's settings (unset keys keep the router's defaults)."""
    return RouterSettings.model_validate(config.routing.model_dump(exclude_unset=True))


def backend_specs(config: JunctionConfig) -> list[BackendSpec]:
    """One spec per `backends:` entry, in config order (the order `priority` falls back on)."""
    return [
        BackendSpec.model_validate({"name": name, **backend.model_dump(exclude_unset=True)})
        for name, backend in config.backends.items()
    ]


def build_router(config: JunctionConfig) -> Router:
    """The Router for this configuration (not started: serve mode starts it in its lifespan)."""
    return Router(backend_specs(config), router_settings(config))


def openai_routes(router: Router) -> list[BaseRoute]:
    """`POST /v1/chat/completions`, `GET /v1/models`, `GET|POST /admin/backends`,
    `POST /admin/backends/{name}/heartbeat`, `DELETE /admin/backends/{name}`."""
    from router_core.openai_api import openai_routes as routes

    return routes(router)


async def inspect_backends(config: JunctionConfig) -> list[dict[str, Any]]:
    """Discover and probe every backend once; one probe decides `healthy` here (the running
    router's hysteresis thresholds are for flapping over time, not for a one-shot look). The
    caller closes the shared HTTP session (`router_core.close_session`) when done."""
    router = build_router(config)
    entries = router.registry.entries()

    async def probe(entry: Any) -> tuple[bool, str | None]:
        if entry.health is None:
            return True, None
        ok = await entry.health.check_once()
        return ok, None if ok else entry.health.last_error

    _, probes = await asyncio.gather(
        router.refresh_models(force=True), asyncio.gather(*(probe(e) for e in entries))
    )
    rows = router.snapshot()
    for row, (ok, error) in zip(rows, probes, strict=True):
        row["healthy"] = ok
        row["probe_error"] = error
    return rows


async def closing_session(work: Awaitable[T]) -> T:
    """Run one-shot work that uses the process-wide HTTP session, then close that session."""
    try:
        return await work
    finally:
        await close_session()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def backends_command(config: JunctionConfig, *, as_json: bool) -> int:
    """Probe every configured backend once, discover its models, print the state as a table
    (or JSON). Exit 0 when every backend is healthy, 1 when any is not."""
    rows = asyncio.run(closing_session(inspect_backends(config))) if config.backends else []
    healthy = all(row["healthy"] and row["discovery_error"] is None for row in rows)
    if as_json:
        print(json.dumps({"healthy": healthy, "backends": rows}, default=str))
        return 0 if healthy else 1
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("no backends configured (add some under `backends:`)")
        return 0
    table = Table(title="junction backends")
    for column in ("backend", "type", "url", "state", "circuit", "EWMA ms", "in flight", "models"):
        table.add_column(column)
    for row in rows:
        if row["healthy"]:
            state = "[green]healthy[/green]"
        else:
            state = f"[red]unhealthy[/red] {row['probe_error'] or ''}".strip()
        models = ", ".join(row["models"]) or "-"
        if row["discovery_error"]:
            models += f" [yellow](discovery failed: {row['discovery_error']})[/yellow]"
        ewma = f"{_ms(row['latency_ewma_ms'])} / ttft {_ms(row['ttft_ewma_ms'])}"
        table.add_row(
            row["name"],
            row["type"],
            row["url"],
            state,
            row["circuit"]["state"],
            ewma,
            str(row["in_flight"]),
            models,
        )
    console.print(table)
    return 0 if healthy else 1
