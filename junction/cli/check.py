"""`junction check`: validate the configuration, then reach every configured upstream once.

MCP servers, A2A agents and model backends are probed concurrently, with a live progress display
when a person is watching (stderr is a terminal) and nothing but the result otherwise. The exit
code is 1 when anything configured cannot be reached, so scripts and CI can gate on it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from junction.config import JunctionConfig


@dataclass(frozen=True, slots=True)
class Finding:
    """One configured thing and whether it answered."""

    kind: str
    name: str
    ok: bool
    detail: str


async def _mcp(config: JunctionConfig) -> list[Finding]:
    from junction.cli.inspect import inspect_upstreams

    statuses, _ = await inspect_upstreams(config)
    return [
        Finding(
            "mcp server",
            s["name"],
            s["state"] == "ready",
            f"{s['tools']} tools, protocol {s['protocol_version']}"
            if s["state"] == "ready"
            else f"{s['state']}: {s['reason'] or 'no reason given'}",
        )
        for s in statuses
    ]


async def _agents(config: JunctionConfig) -> list[Finding]:
    from junction.cli.inspect import inspect_agents

    return [
        Finding(
            "a2a agent",
            a["name"],
            a["state"] == "ready",
            f"{len(a['skills'])} skills, A2A {a['version']}"
            if a["state"] == "ready"
            else a["state"],
        )
        for a in await inspect_agents(config)
    ]


async def _backends(config: JunctionConfig) -> list[Finding]:
    from junction.cli.inspect import inspect_backends

    findings = []
    for row in await inspect_backends(config):
        ok = bool(row["healthy"]) and row["discovery_error"] is None
        models = ", ".join(row["models"]) or "no models"
        detail = models if ok else str(row["probe_error"] or row["discovery_error"])
        findings.append(Finding("backend", row["name"], ok, detail))
    return findings


async def _probe_all(config: JunctionConfig, progress: Any | None) -> list[Finding]:
    from router_core import close_session

    probes: list[tuple[str, int, Callable[[JunctionConfig], Awaitable[list[Finding]]]]] = [
        ("MCP servers", len(config.mcp_servers), _mcp),
        ("A2A agents", len(config.a2a_agents), _agents),
        ("model backends", len(config.backends), _backends),
    ]

    async def run(label: str, count: int, probe: Any) -> list[Finding]:
        task = progress.add_task(f"{label} ({count})", total=1) if progress else None
        try:
            found: list[Finding] = await probe(config)
            return found
        finally:
            if progress is not None:
                progress.update(task, completed=1)

    try:
        results = await asyncio.gather(
            *(run(label, count, probe) for label, count, probe in probes if count)
        )
    finally:
        await close_session()
    return [finding for group in results for finding in group]


def check_command(config: JunctionConfig, *, as_json: bool) -> int:
    """Exit 0 when everything configured answered, 1 otherwise."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    watching = sys.stderr.isatty() and not as_json
    if watching:
        with Progress(
            SpinnerColumn(), TextColumn("connecting to {task.description}"), transient=True
        ) as progress:
            findings = asyncio.run(_probe_all(config, progress))
    else:
        findings = asyncio.run(_probe_all(config, None))
    ok = all(f.ok for f in findings)
    warnings = _warnings(config)
    if as_json:
        print(
            json.dumps(
                {
                    "valid": True,
                    "reachable": ok,
                    "checked": [_as_dict(f) for f in findings],
                    "warnings": warnings,
                }
            )
        )
        return 0 if ok else 1
    from rich.table import Table

    console = Console()
    table = Table(title="junction check: the configuration is valid")
    for column in ("kind", "name", "state", "detail"):
        table.add_column(column)
    for f in findings:
        state = "[green]reachable[/green]" if f.ok else "[red]unreachable[/red]"
        table.add_row(f.kind, f.name, state, f.detail)
    if not findings:
        table.add_row("-", "-", "-", "nothing configured to reach (embedded defaults)")
    console.print(table)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    return 0 if ok else 1


def _warnings(config: JunctionConfig) -> list[str]:
    """What is valid but will not do what a person probably wants."""
    found: list[str] = []
    if not config.backends:
        found.append(
            "no model backends: `junction --mode stdio` would have no model to answer prompts "
            "(add `backends:`, or set OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST and run "
            "without a config file)"
        )
    return found


def _as_dict(finding: Finding) -> dict[str, Any]:
    return {"kind": finding.kind, "name": finding.name, "ok": finding.ok, "detail": finding.detail}
