"""`junction tools`, `agents` and `backends`: reach each configured MCP server, A2A agent and
model backend once and show what answered, as rich tables (or JSON for programs); `junction
check` reads the same probes."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from a2a import Registry
from junction.bridges.a2a_security import hub_security
from junction.build import (
    agent_specs,
    build_router,
    closing_session,
    gateway_inputs,
    hub_settings,
)
from junction.config import JunctionConfig

if TYPE_CHECKING:
    from mcp_gateway import Catalog


async def inspect_upstreams(
    config: JunctionConfig,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Connect to every upstream once (within its connect timeout): their states and the tools."""
    from mcp_gateway import Gateway

    specs, options = gateway_inputs(config)
    wait = max([s.connect_timeout or options.connect_timeout for s in specs] or [0.0])
    async with Gateway(specs, options) as gateway:
        await gateway.wait_settled(wait)
        return [s.as_dict() for s in gateway.statuses()], _tool_rows(gateway)


def tools_command(config: JunctionConfig, *, as_json: bool) -> int:
    """Connect to every upstream, show its state and the exposed tools; 1 if any is down."""
    import anyio

    statuses, tools = anyio.run(inspect_upstreams, config)
    ok = all(s["state"] == "ready" for s in statuses)
    if as_json:
        import json

        print(json.dumps({"healthy": ok, "servers": statuses, "tools": tools}))
        return 0 if ok else 1
    from rich.console import Console
    from rich.table import Table

    console = Console()
    servers = Table(title="MCP servers")
    for column in ("server", "transport", "state", "protocol", "tools", "detail"):
        servers.add_column(column)
    for s in statuses:
        detail = "; ".join([s["reason"] or "", *s["warnings"]]).strip("; ")
        style = "green" if s["state"] == "ready" else "red"
        servers.add_row(
            s["name"],
            s["kind"],
            f"[{style}]{s['state']}[/{style}]",
            s["protocol_version"] or "-",
            str(s["tools"]),
            detail or "-",
        )
    console.print(servers)
    table = Table(title=f"tools ({len(tools)})")
    for column in ("tool", "server", "upstream name", "description"):
        table.add_column(column)
    for t in tools:
        table.add_row(t["name"], t["server"], t["upstream_name"], t["description"][:80])
    console.print(table)
    return 0 if ok else 1


def _tool_rows(catalog: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "name": tool.name,
            "server": tool.server,
            "upstream_name": tool.upstream_name,
            "description": next(iter(tool.description.strip().splitlines()), ""),
        }
        for tool in catalog.exposed_tools()
    ]


async def inspect_agents(config: JunctionConfig) -> list[dict[str, Any]]:
    """Fetch every configured agent's card once (concurrently); the caller closes the shared
    HTTP session (`router_core.close_session`) when done."""
    registry = Registry(hub_settings(config))
    registry.security = lambda: hub_security(config.server)
    await asyncio.gather(
        *(
            registry.add(name, spec, source="config", strict=False)  # errors become state
            for name, spec in agent_specs(config).items()
        )
    )
    return [agent.summary() for agent in registry.all()]


def agents_command(config: JunctionConfig, *, as_json: bool) -> int:
    """`junction agents`: fetch each configured agent's card and show skills and state.

    Exit 0 when every agent answered with a usable card, 1 otherwise."""
    from junction.build import closing_session

    summaries = asyncio.run(closing_session(inspect_agents(config)))
    healthy = all(s["state"] == "ready" for s in summaries)
    if as_json:
        print(json.dumps({"agents": summaries}))
        return 0 if healthy else 1
    from rich.console import Console
    from rich.table import Table

    table = Table(title="A2A agents")
    for column in ("name", "url", "version", "state", "skills"):
        table.add_column(column)
    for summary in summaries:
        skills = ", ".join(
            s["id"] + (f" [{', '.join(s['tags'])}]" if s["tags"] else "") for s in summary["skills"]
        )
        table.add_row(
            summary["name"],
            summary["url"],
            summary["version"] or "-",
            summary["state"],
            skills or "-",
        )
    if not summaries:
        table.add_row("-", "no a2a_agents configured", "-", "-", "-")
    Console().print(table)
    return 0 if healthy else 1


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


__all__ = [
    "agents_command",
    "backends_command",
    "inspect_agents",
    "inspect_backends",
    "inspect_upstreams",
    "tools_command",
]
