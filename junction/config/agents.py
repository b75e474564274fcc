"""The `a2a_agents:` and `a2a:` sections: remote A2A agents (a2a's own `AgentSpec` each), the
hub (a2a's `HubSettings`) and Junction's own agent in it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from a2a.settings import AgentSpec, HubSettings
from junction.config.fields import ConfigModel, NonEmptyStr, check_http_url
from junction.config.sessions import PermissionsConfig

__all__ = ["A2aAgentConfig", "A2aConfig", "SelfAgentConfig", "SelfAgentSkill"]


class A2aAgentConfig(AgentSpec, ConfigModel):
    """A remote A2A agent; its card is fetched from `<url>/.well-known/agent-card.json`."""

    # a2a's AgentSpec with unknown keys refused, its URLs checked like every URL in the file,
    # and how it appears as MCP tools. Header values are redacted in output (redaction.py).

    model_config = ConfigDict(extra="forbid", frozen=True)

    mcp_tool: Literal["agent", "skills", "off"] = "agent"
    """How the agent appears on the aggregated MCP server (stdio and `/mcp`): one tool
    (`a2a__NAME`), one tool per skill of its card (`a2a__NAME__SKILL`), or not at all.
    `true`/`false` mean `agent`/`off`."""

    @field_validator("url", "card_url", "jwks_url", mode="before")
    @classmethod
    def _http_urls_as_written(cls, value: Any) -> Any:
        return check_http_url(value) if isinstance(value, str) else value

    @field_validator("mcp_tool", mode="before")
    @classmethod
    def _mcp_tool_flag(cls, value: object) -> object:
        if value is True:
            return "agent"
        if value is False:
            return "off"
        return value


class SelfAgentSkill(ConfigModel):
    """One skill on the self-agent's card (A2A `AgentSkill`)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    name: str | None = None
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)


class SelfAgentConfig(ConfigModel):
    """Junction's own A2A agent: it answers tasks with the ACP turn loop (models through the
    router, tools from the aggregated MCP servers and the other A2A agents). Nobody is there to
    ask, so a tool call the permission policy would ask about is denied, with the reason."""

    name: str = Field(default="junction", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
    """Its name among the hub's agents (route to it with metadata `agent: NAME`)."""
    description: str = "Junction's own agent: answers with its models and the tools it aggregates."
    skills: list[SelfAgentSkill] = Field(default_factory=list)
    """Skills listed on its card (and the hub's); tasks asking for one are routed to it."""
    model: str | None = None
    """The model its turns use (default: `acp.default_model`, else the router's first)."""
    system_prompt: str | None = None
    mcp_tools: list[NonEmptyStr] = Field(default_factory=lambda: ["*"])
    """Globs over aggregated MCP tool names it may call; others are not offered to its model."""
    a2a_agents: list[NonEmptyStr] = Field(default_factory=lambda: ["*"])
    """Globs over the registered A2A agents it may hand work to (never itself)."""
    permissions: PermissionsConfig | None = None
    """Which calls run; `ask` means deny (default: allow what `mcp_tools` lets through)."""
    fallback: bool = False
    """Take tasks that name no agent, skill or tag no registered agent matches."""
    max_model_requests: int | None = Field(default=None, ge=1)


class A2aConfig(HubSettings):
    """The A2A hub (`a2a/settings.py` HubSettings) and Junction's own agent in it."""

    self_agent: SelfAgentConfig | None = None
    """Off unless set; `self_agent: {}` turns it on with defaults."""
