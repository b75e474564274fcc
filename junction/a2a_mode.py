"""Composition glue for the A2A hub: build it from the configuration, mount it, inspect agents.

The hub's own settings come from the config's `a2a:` section when there is one (typed with
`a2a.HubSettings`); agents come from `a2a_agents`; tasks persist in `store.url`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from a2a import AgentPool, AgentSpec, Hub, HubSettings, RegisteredAgent, Registry, SqliteTaskStore
from junction.config import JunctionConfig

if TYPE_CHECKING:
    from mcp_gateway import Gateway
    from router_core import Router


def hub_settings(config: JunctionConfig) -> HubSettings:
    """The `a2a:` section (its defaults when the file has none); Junction's own agent, when it
    takes unrouted tasks, is the hub's fallback unless one is named."""
    settings: HubSettings = config.a2a
    own = config.a2a.self_agent
    if own is not None and own.fallback and settings.fallback_agent is None:
        settings = settings.model_copy(update={"fallback_agent": own.name})
    return settings


def agent_specs(config: JunctionConfig) -> dict[str, AgentSpec]:
    return {
        name: AgentSpec(
            url=agent.url, card_url=agent.card_url, headers=dict(agent.headers), weight=agent.weight
        )
        for name, agent in config.a2a_agents.items()
    }


class AgentPools:
    """One `AgentPool` for a set of agents, made anew only when the set changes (a reload, the
    hub's registry): between changes its clients keep their cards and the tasks waiting for
    input."""

    def __init__(self) -> None:
        self._key: tuple[dict[str, AgentSpec], tuple[int, ...]] | None = None
        self._pool: AgentPool | None = None

    def get(self, specs: dict[str, AgentSpec], local: Sequence[RegisteredAgent] = ()) -> AgentPool:
        """The pool for `specs` (remote agents) and `local` (in-process ones)."""
        key = (specs, tuple(id(agent) for agent in local))
        if self._pool is None or key != self._key:
            pool = AgentPool(specs)
            for agent in local:
                assert agent.card is not None and agent.connection is not None
                pool.add_local(agent.name, agent.card, agent.connection)
            self._pool, self._key = pool, key
        return self._pool


def build_hub(config: JunctionConfig) -> Hub:
    """A hub over the configured store; call `await hub.start(agent_specs(config))` in the app's
    lifespan (or use `hub_lifespan`), `await hub.close()` at shutdown."""
    return Hub(SqliteTaskStore(config.store.sqlite_path), hub_settings(config))


def hub_routes(hub: Hub) -> list[BaseRoute]:
    """`/.well-known/agent-card.json`, `POST /a2a`, `/a2a/agents/{name}` (+ card) and
    `/admin/a2a/agents[/{name}]` (the admin routes rely on the app's auth middleware)."""
    return hub.routes()


@asynccontextmanager
async def hub_lifespan(
    hub: Hub,
    config: JunctionConfig,
    *,
    router: Router | None = None,
    gateway: Gateway | None = None,
    current: Callable[[], JunctionConfig] | None = None,
) -> AsyncIterator[None]:
    """Start the hub (store, configured agents, card refresh) and stop it; nest in the app's
    lifespan. With `a2a.self_agent` configured and a `router` to run its model turns on,
    Junction's own agent joins the hub's agents (its tools come from `gateway`; the agents it
    may ask from `current`, the config in force)."""
    from junction.self_agent import SelfAgent

    await hub.start(agent_specs(config))
    own: SelfAgent | None = None
    try:
        if config.a2a.self_agent is not None and router is not None:
            own = SelfAgent(
                config, config.a2a.self_agent, router=router, gateway=gateway, current=current
            )
            await own.start()
            await hub.registry.add_local(own.name, own.card(), own)
        yield
    finally:
        if own is not None:
            await hub.registry.remove(own.name)
            await own.aclose()
        await hub.close()


async def inspect_agents(config: JunctionConfig) -> list[dict[str, Any]]:
    """Fetch every configured agent's card once (concurrently); the caller closes the shared
    HTTP session (`router_core.close_session`) when done."""
    registry = Registry(hub_settings(config))
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
    from junction.router_mode import closing_session

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


__all__ = [
    "agent_specs",
    "agents_command",
    "build_hub",
    "hub_lifespan",
    "hub_routes",
    "hub_settings",
]
