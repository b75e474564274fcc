"""Settings for the hub and its registered agents, shaped for a config file (unknown keys are errors)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router_core import BreakerSettings, HealthCheckSettings


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSpec(_Model):
    """One remote A2A agent: where its card is, and how to reach it."""

    url: str
    """Base URL; the card is fetched from `<url>/.well-known/agent-card.json` unless `card_url`."""
    card_url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent on every request to the agent (e.g. its API key)."""
    weight: int = Field(default=1, ge=1)
    card_signatures: Literal["required", "optional", "off"] | None = None
    """This agent's card signature policy (`a2a.card_signatures.verify` when unset)."""
    jwks_url: str | None = None
    """A JWKS trusted for this agent's card signatures (beside the hub's trusted keys)."""


SignaturePolicy = Literal["required", "optional", "off"]

_JWS_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]


class CardSignatureSettings(_Model):
    """Agent card signatures (A2A 1.0 section 8.4): checked on agents' cards, made on the hub's."""

    verify: SignaturePolicy = "optional"
    """`required`: an unsigned card, or one no signature of which holds, is refused;
    `optional`: signatures are checked when there are some (a bad one refuses the card);
    `off`: signatures are ignored."""
    jku: Literal["same_origin", "any", "off"] = "same_origin"
    """Which `jku` (JWKS URL) in a signature's header the hub fetches keys from: one on the
    agent's own origin, any (fetched through the SSRF guard, HTTPS: it proves only that
    whoever holds that URL signed), or none (only configured keys)."""
    trusted_jwks: list[str] = Field(default_factory=list)
    """JWKS URLs whose keys are trusted for every agent's card."""
    trusted_keys: list[dict[str, Any]] = Field(default_factory=list)
    """Public JWKs trusted for every agent's card (matched by `kid`)."""
    algorithms: list[str] = Field(default_factory=lambda: [*_JWS_ALGORITHMS, "EdDSA"])
    """JWS algorithms accepted (no `none`, no shared-secret HS*)."""
    signing_key_file: str | None = None
    """A PEM private key (EC P-256/384/521, RSA or Ed25519): the hub signs its own card and
    each proxied card with it, and serves its public key at `/a2a/jwks.json`. Unset: the
    hub's cards carry no signature (never an agent's, which its rewritten URLs would break)."""
    signing_kid: str | None = None
    """The `kid` of the hub's signatures (default: the key's RFC 7638 thumbprint)."""
    signing_jku: str | None = None
    """The `jku` of the hub's signatures (default: `/a2a/jwks.json` on the hub's URL)."""


class PushSettings(_Model):
    """Webhook delivery: retries, and which targets are allowed (the SSRF guard)."""

    allow_insecure_loopback: bool = False
    """Allow http:// webhooks on loopback addresses (tests, local tools); HTTPS is required otherwise."""
    allow_hosts: list[str] = Field(default_factory=list)
    """Hostnames or CIDRs exempt from the private/link-local/metadata block."""
    timeout: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff: float = Field(default=0.5, gt=0)
    """First retry delay in seconds; doubled per attempt, capped at `max_backoff`."""
    max_backoff: float = Field(default=30.0, gt=0)
    queue_size: int = Field(default=1000, ge=1)
    """Pending notifications per webhook; beyond it the oldest are dropped (and logged)."""
    lease: float = Field(default=30.0, gt=0)
    """Seconds a process holds a pending delivery in the store's outbox before another (this
    one after a restart, or another replica) may take it over; renewed while it retries."""
    resume_interval: float = Field(default=5.0, gt=0)
    """How often the outbox is searched for deliveries whose lease has run out."""


class HubSettings(_Model):
    """The A2A hub: its own card, limits, timeouts and how agents are chosen."""

    name: str = "Junction"
    description: str = "A2A hub: routes tasks to registered agents by name or skill."
    version: str = "0+unknown"
    """The version on the hub's card; Junction puts its own there unless this is set."""
    public_url: str | None = None
    """Base URL clients use to reach the hub (card interface URLs); else taken from each request."""
    strategy: str = "least_outstanding"
    """router_core selection strategy among healthy agents offering a skill."""
    card_timeout: float = Field(default=5.0, gt=0)
    card_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    card_refresh: float = Field(default=60.0, gt=0)
    """Seconds between card refreshes, which double as health probes."""
    card_cache_seconds: int = Field(default=60, ge=0)
    """`Cache-Control: max-age` on the cards the hub serves."""
    request_timeout: float = Field(default=300.0, gt=0)
    """Longest wait for a non-streaming answer from an agent."""
    stream_idle_timeout: float = Field(default=300.0, gt=0)
    """A stream with no event (and no keep-alive) for this long is treated as a dead agent."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest JSON-RPC request body accepted, and largest single event relayed."""
    redirect_limit: int = Field(default=3, ge=0)
    fallback_agent: str | None = None
    """Where a message goes that names no agent and whose skill/tags match no healthy agent (or
    that gives no hint while several agents, or none, could take it). Unset: such a message is
    refused."""
    hub_id: str | None = None
    """This hub's name in `junction/via` message metadata (loop detection); a random id per
    process when unset. Give hubs that call each other distinct ids."""
    max_hops: int = Field(default=8, ge=1)
    """A message that has already passed through this many hubs is refused."""
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    health: HealthCheckSettings = Field(default_factory=HealthCheckSettings)
    push: PushSettings = Field(default_factory=PushSettings)
    card_signatures: CardSignatureSettings = Field(default_factory=CardSignatureSettings)
