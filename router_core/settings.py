"""Settings for the router, shaped for a config file: `routing:` and one entry of `backends:`.

Pydantic models with unknown keys refused, so a typo in YAML is an error naming its key path
instead of a silently ignored option. The composition root embeds `RouterSettings` as the
`routing:` section and maps each `backends:` entry onto `BackendSpec`.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router_core.health import BreakerSettings, HealthCheckSettings
from router_core.selection import StrategyName, make_strategy

__all__ = [
    "BackendSpec",
    "ModelRouting",
    "RetrySettings",
    "RouterSettings",
    "TimeoutSettings",
]

BackendType = Literal["openai", "ollama", "anthropic"]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_strategy(name: str, options: dict[str, Any]) -> None:
    """Build the strategy once, so bad options fail at load time rather than at the first request."""
    make_strategy(name, **options)


class RetrySettings(_Settings):
    """Retries of retryable failures (connect errors, timeouts, 408, 429, 5xx)."""

    attempts: int = Field(default=3, ge=1)
    """Tries per model, the first included; each fallback model gets as many again."""
    backoff_base: float = Field(default=0.025, ge=0.0)
    """Seconds before the first retry; doubled for each retry after it..."""
    backoff_max: float = Field(default=1.0, ge=0.0)
    """...up to this many seconds."""
    jitter: float = Field(default=0.5, ge=0.0, le=1.0)
    """Each wait is shortened by a random share up to this fraction, so retries do not align."""
    max_retry_after: float = Field(default=10.0, ge=0.0)
    """Longest upstream `Retry-After` worth waiting for; beyond it the request fails at once
    (with that Retry-After passed on) unless another backend can take it."""


class ModelRouting(_Settings):
    """Per-model override of the selection strategy."""

    strategy: StrategyName
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _strategy_builds(self) -> Self:
        _check_strategy(self.strategy, self.options)
        return self


class RouterSettings(_Settings):
    """The `routing:` section."""

    strategy: StrategyName = "least_latency"
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    """Keyword options of the strategy (e.g. `{vnodes: 200}`, `{order: [a, b]}`)."""
    models: dict[str, ModelRouting] = Field(default_factory=dict)
    """Per-model strategy, e.g. `{big-model: {strategy: cache_aware}}`."""
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    """Model fallback chains: `{m1: [m2, m3]}` tries m2, then m3, when m1 cannot answer."""
    aliases: dict[str, str] = Field(default_factory=dict)
    """Public name -> model name, e.g. `{fast: llama3.2:3b}`."""
    retries: RetrySettings = Field(default_factory=RetrySettings)
    deadline: float | None = Field(default=600.0, gt=0.0)
    """Seconds one request may take in all (attempts, waits and the whole stream); None: none."""
    ttfb_timeout: float | None = Field(default=30.0, gt=0.0)
    """Seconds a streamed attempt may wait for its first event; then it is abandoned, counted
    as that backend's failure, and retried on another backend (whatever the strategy); None:
    no limit. `backends.NAME.timeouts.ttfb` overrides it. Non-streaming answers send their first
    byte only when complete, so they are bounded by `timeouts.read` instead."""
    discovery_ttl: float = Field(default=60.0, gt=0.0)
    """Seconds a backend's discovered model list is trusted before it is fetched again."""
    discovery_timeout: float = Field(default=5.0, gt=0.0)
    """Seconds a request waits for a backend's first model list (later refreshes run behind)."""
    registration_ttl: float = Field(default=30.0, gt=0.0)
    """Default heartbeat TTL of backends registered at runtime (`POST /admin/backends`)."""
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    health: HealthCheckSettings = Field(default_factory=HealthCheckSettings)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    """Largest `/v1/chat/completions` request body; a larger one gets 413."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_strategy(self.strategy, self.strategy_options)
        for alias, target in self.aliases.items():
            if target in self.aliases:
                raise ValueError(f"aliases.{alias}: points at another alias ({target!r})")
        for model, chain in self.fallbacks.items():
            if model in chain:
                raise ValueError(f"fallbacks.{model}: a model cannot fall back to itself")
        return self


class TimeoutSettings(_Settings):
    """Per-backend network limits in seconds (the whole request is bounded by `deadline`)."""

    connect: float = Field(default=10.0, gt=0.0)
    read: float = Field(default=300.0, gt=0.0)
    """Longest silence waiting for the answer to start or for the next chunk of a stream."""
    probe: float = Field(default=5.0, gt=0.0)
    ttfb: float | None = Field(default=None, gt=0.0)
    """Overrides `routing.ttfb_timeout` for this backend (None: that one applies)."""


class BackendSpec(_Settings):
    """One backend, from config or from a runtime registration."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    type: BackendType
    url: str = Field(min_length=1)
    api_key: str = ""
    models: list[str] = Field(default_factory=list)
    """Static model list; when given, discovery is not asked (it overrides `/v1/models`)."""
    weight: int = Field(default=1, ge=1)
    headers: dict[str, str] = Field(default_factory=dict)
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    health: HealthCheckSettings | None = None
    """Overrides `routing.health` for this backend."""
    breaker: BreakerSettings | None = None
    """Overrides `routing.breaker` for this backend."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        url = url.strip()
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url
