"""The agent's knobs, in one frozen object the composition root fills from configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from acp.handshake import DEFAULT_NAME, DEFAULT_TITLE
from acp.permissions import PermissionPolicy
from acp.schema import AuthMethod

DEFAULT_SYSTEM_PROMPT = (
    "You are Junction, a coding agent working inside the user's editor. "
    "The session's working directory is {cwd}. Use the tools you are given to read and change "
    "files and to run commands; prefer small, verifiable steps, and explain what you did."
)


@dataclass(frozen=True)
class Credential:
    """What a remote client connected with (an API key or an OAuth token, checked by the
    transport). It is the one thing there is to log in to: the agent advertises it as an
    `agent` auth method with `logout`; a local stdio agent has none (see docs/ide.md)."""

    method: AuthMethod
    expires_at: float | None = None
    """When a token stops being valid (epoch seconds); None for a key."""

    def problem(self, now: float) -> str | None:
        """Why the credential no longer signs the connection in, or None."""
        if self.expires_at is not None and now >= self.expires_at:
            return f"the {self.method.name} this connection was opened with has expired"
        return None


@dataclass(frozen=True)
class AgentSettings:
    """How sessions behave. Every field has a default that suits `junction --mode stdio`."""

    name: str = DEFAULT_NAME
    title: str = DEFAULT_TITLE
    version: str = "0+unknown"
    """Said in `agentInfo`; the composition root passes Junction's version."""
    default_model: str | None = None
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """`{cwd}` and `{roots}` are replaced with the session's directories."""
    max_model_requests: int = 50
    """Model calls allowed in one prompt turn before it stops with `max_turn_requests`."""
    max_tokens: int | None = None
    context_window: int = 128_000
    """Reported as the `size` of `usage_update`."""
    default_mode: str = "ask"
    permissions: PermissionPolicy = field(default_factory=PermissionPolicy)
    image_prompts: bool = True
    """Advertise `promptCapabilities.image` (turn off when no configured model takes images)."""
    max_image_bytes: int = 50 * 1024 * 1024
    """Largest decoded image accepted in a prompt; larger ones are refused with a clear error."""
    command_timeout: float = 600.0
    """Seconds a `run_command` tool call may run before it is killed."""
    command_output_limit: int = 256 * 1024
    list_page_size: int = 50
    auth_methods: tuple[AuthMethod, ...] = ()
    models_timeout: float = 5.0
    """How long session/new waits for the model list before offering the default alone."""
    unattended: str | None = None
    """Set when no person answers permission requests (Junction's own A2A agent): a call the
    policy would ask about is denied, and this text is the reason the model is given."""


__all__ = ["DEFAULT_SYSTEM_PROMPT", "AgentSettings", "Credential"]
