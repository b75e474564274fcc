"""A2A agents as MCP tools: each registered agent (or each of its skills) offered on the
aggregated MCP server as `a2a__<agent>`, following the hub's registry in serve mode, with the
agent's answer (text, data, files, a question back) as an MCP `CallToolResult`."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from junction.build import AgentPools, agent_specs
from junction.config import JunctionConfig

if TYPE_CHECKING:
    from a2a import AgentPool, AgentSpec, RegisteredAgent, Registry
    from a2a.client import AgentInfo, TaskResult
    from mcp_gateway import Gateway, LocalTool

log = logging.getLogger("junction.mcp")


A2A_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "description": "What to ask the agent, in plain text."},
        "data": {
            "type": "object",
            "description": "Optional structured input, sent as a data part beside the text.",
        },
        "contextId": {
            "type": "string",
            "description": "Continue an earlier conversation (the contextId a result gave).",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}


def a2a_tool_name(agent: str, separator: str = "__", *, skill: str | None = None) -> str:
    """`a2a__<agent>` (or `a2a__<agent>__<skill>`), kept within `[A-Za-z0-9_-]{1,64}` (else
    sanitised and hash-suffixed)."""
    from mcp_gateway.naming import safe_name

    if skill is None:
        return safe_name(f"a2a{separator}{agent}", ("a2a", agent))
    return safe_name(f"a2a{separator}{agent}{separator}{skill}", ("a2a", agent, skill))


@contextlib.asynccontextmanager
async def a2a_agent_tools(
    gateway: Gateway,
    config: JunctionConfig,
    *,
    registry: Registry | None = None,
    current: Callable[[], JunctionConfig] | None = None,
) -> AsyncIterator[None]:
    """Offer the configured A2A agents as local tools of `gateway`: one tool each, one per skill
    (`mcp_tool: skills`), or none (`mcp_tool: off`).

    An agent whose card cannot be fetched is left out. The cards are fetched again every
    `a2a.card_refresh` seconds and, in serve mode, whenever the hub's `registry` changes (an
    agent added, removed, replaced, or its health flipping; an unhealthy one is left out), so
    MCP clients hear `tools/list_changed`. `current` gives the config in force (it changes on
    a reload). Leaving the block removes the tools.
    """
    import anyio

    def offered(cfg: JunctionConfig) -> dict[str, str]:
        return {
            name: agent.mcp_tool
            for name, agent in cfg.a2a_agents.items()
            if agent.mcp_tool != "off"
        }

    if not offered(config) and registry is None:
        yield
        return
    pools = AgentPools()
    wake = anyio.Event()

    def chosen(
        cfg: JunctionConfig,
    ) -> tuple[dict[str, AgentSpec], list[RegisteredAgent], dict[str, str]]:
        """The agents to offer and how; in serve mode the hub's registry says which are up
        (admin-registered ones and Junction's own agent included, as one tool each)."""
        modes = offered(cfg)
        if registry is None:
            specs = agent_specs(cfg)
            return {name: specs[name] for name in modes}, [], modes
        specs, local, live = {}, [], {}
        for agent in registry.all():
            mode = modes.get(agent.name, "off" if agent.name in cfg.a2a_agents else "agent")
            if mode == "off" or not agent.available():
                continue
            if agent.spec is not None:
                specs[agent.name] = agent.spec
            elif agent.card is not None:
                local.append(agent)
            else:
                continue
            live[agent.name] = mode
        return specs, local, live

    async def refresh() -> None:
        cfg = current() if current is not None else config
        specs, local, modes = chosen(cfg)
        pool = pools.get(specs, local)
        tools: list[LocalTool] = []
        for info in await pool.list_agents():
            tools.extend(_agent_tools(pool, info, modes[info.name], cfg.mcp.separator))
        gateway.set_local_tools(tools)

    with anyio.move_on_after(config.a2a.card_timeout + 1):
        await refresh()

    def poke() -> None:
        wake.set()  # the current event: keep_fresh replaces it after each wake-up

    unsubscribe = registry.subscribe(poke) if registry is not None else None
    async with anyio.create_task_group() as tg:

        async def keep_fresh() -> None:
            nonlocal wake
            while True:
                with anyio.move_on_after(config.a2a.card_refresh):
                    await wake.wait()
                wake = anyio.Event()
                try:
                    await refresh()
                except Exception:
                    log.exception("refreshing the A2A agent tools failed")

        tg.start_soon(keep_fresh)
        try:
            yield
        finally:
            if unsubscribe is not None:
                unsubscribe()
            tg.cancel_scope.cancel()
            gateway.set_local_tools(())


def _agent_tools(pool: AgentPool, info: AgentInfo, mode: str, separator: str) -> list[LocalTool]:
    """The tools for one agent: itself, or each of its skills."""
    if mode != "skills":
        return [_agent_tool(pool, info, separator)]
    return [
        _agent_tool(pool, info, separator, skill=skill)
        for skill in info.skills
        if isinstance(skill.get("id"), str) and skill["id"]
    ]


def _agent_tool(
    pool: AgentPool,
    info: AgentInfo,
    separator: str,
    *,
    skill: dict[str, Any] | None = None,
) -> LocalTool:
    from mcp.shared.dispatcher import ProgressFnT

    from mcp_gateway import LocalTool

    agent = info.name
    skill_id = str(skill["id"]) if skill is not None else None

    async def call(arguments: dict[str, Any], progress: ProgressFnT | None) -> dict[str, Any]:
        steps = 0

        async def on_progress(note: str) -> None:
            nonlocal steps
            steps += 1
            if progress is not None:
                await progress(float(steps), None, note)

        try:  # the gateway's call deadline cancels this, and so the remote task
            result = await pool.run_task(
                agent,
                str(arguments.get("message", "")),
                data=arguments.get("data"),
                context_id=arguments.get("contextId"),
                on_progress=on_progress,
                metadata={"skill": skill_id} if skill_id else None,
            )
        except Exception as exc:
            log.warning("A2A agent %s: the task failed: %s", agent, exc)
            reason = str(exc) or type(exc).__name__
            return _error(f"A2A agent {agent!r} could not complete the task: {reason}")
        return a2a_result(agent, result)

    if skill is None:
        name = a2a_tool_name(agent, separator)
        description = f"Hand a task to the A2A agent {agent!r}. {info.description}".strip()
    else:
        name = a2a_tool_name(agent, separator, skill=str(skill_id))
        about = str(skill.get("description") or skill.get("name") or skill_id)
        description = f"Ask the A2A agent {agent!r} for its skill {skill_id!r}: {about}"
    return LocalTool(
        name=name,
        description=description
        + " Returns the agent's answer; pass the contextId it gives to continue the conversation.",
        input_schema=A2A_TOOL_SCHEMA,
        handler=call,
        server="a2a",
        origin=agent if skill is None else f"{agent}/{skill_id}",
        grant=("a2a_agents", agent),  # a key limited to some agents sees only their tools
    )


def _error(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": True}


def a2a_result(agent: str, result: TaskResult) -> dict[str, Any]:
    """A finished A2A task as an MCP `CallToolResult` dict."""
    ids = {"contextId": result.context_id, "taskId": result.task_id}
    ids = {k: v for k, v in ids.items() if v}
    if result.failed:
        word = result.state.removeprefix("TASK_STATE_").lower()
        reason = result.note or "no reason given"
        return {
            **_error(f"A2A agent {agent!r}: the task {word}: {reason}"),
            "structuredContent": {"state": word, "reason": reason, **ids},
        }
    if result.needs_input:
        question = result.note or "(the agent did not say what it needs)"
        state = result.state.removeprefix("TASK_STATE_").lower().replace("_", "-")
        text = (
            f"A2A agent {agent!r} needs more input: {question}\n"
            f"To answer, call this tool again with contextId {result.context_id!r}."
        )
        return {
            "content": [{"type": "text", "text": text}],
            "structuredContent": {"state": state, "question": question, **ids},
        }
    content: list[dict[str, Any]] = []
    data: list[Any] = []
    holders = result.artifacts or ([result.message] if result.message else [])
    for holder in holders:
        joined: dict[str, Any] | None = None  # adjacent text parts (a streamed artifact's chunks)
        for part in holder.get("parts") or []:
            for item in _part_content(agent, result, holder, part, data):
                if "text" in part and joined is not None:
                    joined["text"] += item["text"]
                    continue
                joined = item if "text" in part else None
                content.append(item)
    structured: dict[str, Any] | None = None
    if len(data) == 1 and isinstance(data[0], dict):
        structured = data[0]
    elif data:
        structured = {"data": data}
    if not content:
        content.append({"type": "text", "text": f"A2A agent {agent!r} finished with no output."})
    out: dict[str, Any] = {"content": content}
    if structured is not None:
        out["structuredContent"] = structured
    if ids:
        out["_meta"] = {"a2a": ids}
    return out


def _part_content(
    agent: str, result: TaskResult, holder: dict[str, Any], part: dict[str, Any], data: list[Any]
) -> list[dict[str, Any]]:
    """MCP content for one A2A part (a data part is also collected into `data`)."""

    if "text" in part:
        return [{"type": "text", "text": str(part["text"])}] if part["text"] else []
    if "data" in part:
        data.append(part["data"])
        return [{"type": "text", "text": json.dumps(part["data"])}]
    name = str(part.get("filename") or holder.get("name") or "file")
    mime = str(part.get("mediaType") or "application/octet-stream")
    if "url" in part:
        return [{"type": "resource_link", "uri": str(part["url"]), "name": name, "mimeType": mime}]
    if "raw" in part:
        artifact = holder.get("artifactId") or "message"
        uri = f"a2a://{agent}/tasks/{result.task_id or 'none'}/artifacts/{artifact}/{name}"
        resource = {"uri": uri, "mimeType": mime, "blob": str(part["raw"])}
        return [{"type": "resource", "resource": resource}]
    return []


__all__ = ["A2A_TOOL_SCHEMA", "a2a_agent_tools", "a2a_result", "a2a_tool_name"]
