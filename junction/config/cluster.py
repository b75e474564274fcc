"""The `cluster:` section: what replicas of one Junction share live (Redis)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from junction.config.fields import ConfigModel

__all__ = ["ClusterConfig"]


class ClusterConfig(ConfigModel):
    """Set `redis_url` only when several replicas share state; one process needs none of it."""

    redis_url: str | None = None
    """`redis://[user:password@]host:port/db` (or `rediss://` for TLS): rate-limit counters
    live there, so every replica enforces the same limits; unset: counters in memory."""
    limits_on_redis_down: Literal["open", "closed"] = "open"
    """When Redis cannot be reached: `open` admits calls unlimited, `closed` refuses every
    limited call (429, retry after 5 s). Logged once when it goes down and when it is back;
    Redis is tried again at most once a second meanwhile."""

    relay_lease_seconds: float = Field(default=5.0, ge=0.5, le=300)
    """With `redis_url`: how long the replica relaying an A2A task's stream may go silent before
    another takes the task over (subscribes to its agent again and continues the task's event
    stream for every replica's subscribers). Renewed three times per period."""

    advertise_url: str | None = None
    """With `redis_url`: where the other replicas reach this one, `http://host:port` (no path).
    A request for an MCP session (`Mcp-Session-Id`) or a remote ACP connection
    (`Acp-Connection-Id`) that another replica opened is carried there. Unset: derived from
    `server.host` and the port served on; required when `server.host` listens on every address
    (`0.0.0.0`, `::`). With `server.workers` each worker also listens on a port of its own
    (chosen by the system) and advertises this URL with that port."""

    @field_validator("advertise_url")
    @classmethod
    def _advertise_form(cls, url: str | None) -> str | None:
        if url is None:
            return None
        from junction.cluster import owner_url

        normal = owner_url(url)
        if normal is None:
            raise PydanticCustomError(
                "advertise_url",
                "expected http://host:port or https://host:port (no path), got {url}",
                {"url": repr(url)},
            )
        return normal

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise PydanticCustomError(
                "redis_url",
                "expected redis://host:port/db, rediss://... or unix:///path, got {url}",
                {"url": repr(url.split("@")[-1])},
            )
        return url
