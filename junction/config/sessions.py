"""The `acp:` section: defaults for the ACP sessions an IDE opens, and the permission policy
they (and the self-agent) share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from junction.config.fields import ConfigModel

__all__ = ["AcpConfig", "Decision", "PermissionsConfig"]

Decision = Literal["allow", "ask", "deny"]


class PermissionsConfig(ConfigModel):
    """Which tool calls run without asking: name globs first (first match wins), then tool kinds."""

    rules: list[tuple[str, Decision]] = Field(default_factory=list)
    kinds: dict[
        Literal["read", "edit", "delete", "move", "search", "execute", "think", "fetch", "other"],
        Decision,
    ] = Field(default_factory=dict)


class AcpConfig(ConfigModel):
    """Defaults for ACP sessions opened by an IDE; unset keys keep the agent's own defaults."""

    default_model: str | None = None
    system_prompt: str | None = None
    """`{cwd}` and `{roots}` are replaced with the session's directories."""
    max_model_requests: int | None = Field(default=None, ge=1)
    """Model calls allowed in one prompt turn before it stops with `max_turn_requests`."""
    max_tokens: int | None = Field(default=None, ge=1)
    context_window: int | None = Field(default=None, ge=1)
    default_mode: Literal["ask", "auto", "read-only"] | None = None
    permissions: PermissionsConfig | None = None
    image_prompts: bool | None = None
    max_image_bytes: int | None = Field(default=None, ge=1)
    command_timeout: float | None = Field(default=None, gt=0)
