"""Which agent a new task goes to, and the hop check that stops loops between hubs.

Plain values in (the caller's agent globs, the agent a per-agent URL names, the request's
routing metadata), an agent or an `A2aError` out.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from a2a.errors import INVALID_PARAMS, UNSUPPORTED_OPERATION, A2aError
from a2a.registry import RegisteredAgent, Registry
from a2a.settings import HubSettings
from a2a.types import SendMessageRequest
from router_core.audit import audit

ROUTING_KEYS = ("agent", "skill", "tags")
"""Message (or request) metadata keys the hub routes on: `agent` names one agent, `skill` is a
skill id (plain, or `agent/skill` as on the hub's card), `tags` a list of skill tags."""

VIA = "junction/via"
"""Message metadata key: the ids of the hubs a message has passed through, oldest first."""


def may_use(allowed: tuple[str, ...] | None, agent: str) -> bool:
    """Whether a caller limited to `allowed` (`fnmatch` globs; None: no limit) may use `agent`."""
    return allowed is None or any(fnmatchcase(agent, glob) for glob in allowed)


OUTSIDE_AGENT_GLOBS = "the agent is outside the caller's agent globs"
"""The audit trail's reason for such a refusal (the caller is told the agent does not exist)."""


def refused(agent: str) -> None:
    """Audit a call to an agent outside the caller's globs (the caller comes from the guard)."""
    audit("agent", "deny", agent=agent, reason=OUTSIDE_AGENT_GLOBS)


def check_hops(hub_id: str, max_hops: int, metadata: dict[str, Any] | None) -> None:
    """Refuse a message that has been through this hub already, or through too many."""
    via = (metadata or {}).get(VIA)
    if via is None:
        return
    if not isinstance(via, list) or not all(isinstance(hop, str) for hop in via):
        raise A2aError(INVALID_PARAMS, f"message metadata {VIA!r} must be a list of hub ids")
    if hub_id in via:
        raise A2aError(
            INVALID_PARAMS,
            "routing loop: this message has already passed through this hub"
            f" (via {' -> '.join(via)})",
            {"hubId": hub_id, "via": ",".join(via)},
        )
    if len(via) >= max_hops:
        raise A2aError(
            INVALID_PARAMS,
            f"too many hops ({len(via)} >= max_hops {max_hops})",
            {"via": ",".join(via)},
        )


def choose(
    registry: Registry,
    settings: HubSettings,
    named: str | None,
    allowed: tuple[str, ...] | None,
    request: SendMessageRequest,
) -> RegisteredAgent:
    """The agent for a new task: the one the URL names (`named`), else the one the metadata
    names, else one offering the skill/tags (chosen among healthy ones), else the only one or
    `fallback_agent`."""
    if named is not None:
        agent = registry.get(named)
        if agent is None or not may_use(allowed, named):
            raise A2aError(INVALID_PARAMS, f"no agent {named!r}")
        return agent
    hints: dict[str, Any] = {}
    for source in (request.metadata or {}, request.message.metadata or {}):
        for key in ROUTING_KEYS:
            if key in source:
                hints[key] = source[key]
    name = hints.get("agent")
    if isinstance(name, str):
        agent = registry.get(name)
        if not may_use(allowed, name):
            refused(name)
        if agent is None or not may_use(allowed, name):
            raise A2aError(INVALID_PARAMS, f"no agent {name!r}", {"agent": name})
        return agent
    skill = hints.get("skill")
    tags = hints.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if isinstance(skill, str) and "/" in skill:
        owner, _, bare = skill.partition("/")
        pinned = registry.get(owner)
        if (
            pinned is not None
            and may_use(allowed, owner)
            and any(s.get("id") == bare for s in pinned.skills)
        ):
            return pinned
    if skill or tags:
        candidates = [
            agent
            for agent in registry.candidates(skill if isinstance(skill, str) else None, list(tags))
            if may_use(allowed, agent.name)
        ]
        picked = registry.pick(candidates, key=request.message.context_id) or (
            _fallback(registry, settings, allowed)
        )
        if picked is None:
            raise A2aError(
                UNSUPPORTED_OPERATION,
                f"no healthy agent offers skill {skill!r} / tags {list(tags)}",
                {"skill": str(skill), "tags": ",".join(tags)},
            )
        return picked
    agents = [agent for agent in registry.all() if may_use(allowed, agent.name)]
    if len(agents) == 1:
        return agents[0]
    fallback = _fallback(registry, settings, allowed)
    if fallback is not None:
        return fallback
    raise A2aError(
        INVALID_PARAMS,
        "say which agent: message metadata `agent` (a name) or `skill`/`tags`",
        {"agents": ",".join(a.name for a in agents)},
    )


def _fallback(
    registry: Registry, settings: HubSettings, allowed: tuple[str, ...] | None
) -> RegisteredAgent | None:
    """`fallback_agent`, when it is set, registered, and the caller may use it."""
    name = settings.fallback_agent
    if name is None or not may_use(allowed, name):
        return None
    return registry.get(name)
