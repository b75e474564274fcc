"""The `limits:` section, and the `limits:` block of an API key or of `server.oauth`: rate
limits and quotas per caller, per model, per MCP tool and per A2A agent (see docs/limits.md).

One shape, `LimitSet`, is used everywhere: three rates for the caller as a whole, and the same
three per model, tool or agent (maps from `fnmatch` glob to rates; the first glob that matches
a name wins). The root section's own rates are the default for every caller, each on counters
of its own; a key's `limits:`, `server.oauth.limits` (for every token holder) and
`limits.principals.NAME` override them field by field.
"""

from __future__ import annotations

from pydantic import Field

from junction.config.fields import ConfigModel, NonEmptyStr

__all__ = ["LimitSet", "LimitsConfig", "Rates"]


class Rates(ConfigModel):
    """Requests per minute, tokens per minute, tokens per day; unset: not limited (0 refuses
    every call). Windows are fixed: the clock's minute and the UTC day."""

    requests_per_minute: int | None = Field(default=None, ge=0)
    """Calls (model requests, tool calls, agent messages) per clock minute."""
    tokens_per_minute: int | None = Field(default=None, ge=0)
    """Model tokens (prompt + completion, as the upstream reports them) per clock minute; a
    call is refused once the window's total has reached it."""
    tokens_per_day: int | None = Field(default=None, ge=0)
    """Model tokens per UTC day."""

    def any(self) -> bool:
        return (
            self.requests_per_minute is not None
            or self.tokens_per_minute is not None
            or self.tokens_per_day is not None
        )


class LimitSet(Rates):
    """A caller's limits: its own rates (every call it makes counts) and, by glob, the rates of
    each model, MCP tool (namespaced name) and A2A agent it uses, each name counted apart."""

    models: dict[NonEmptyStr, Rates] = Field(default_factory=dict)
    mcp_tools: dict[NonEmptyStr, Rates] = Field(default_factory=dict)
    a2a_agents: dict[NonEmptyStr, Rates] = Field(default_factory=dict)


class LimitsConfig(LimitSet):
    """Rate limits and quotas. The rates here (and under `models`, `mcp_tools`, `a2a_agents`)
    hold for every caller that presents an API key or a token, each separately; a caller
    without one (loopback without keys: the local user) is not limited."""

    principals: dict[NonEmptyStr, LimitSet] = Field(default_factory=dict)
    """Overrides by principal: an API key's name or a token's subject (they are one namespace);
    a key's own `limits:` wins over an entry here."""
