"""Settings for the hub and its registered agents, shaped for a config file (unknown keys are errors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router_core import BreakerSettings, HealthCheckSettings


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class HubSecurity:
    """What the access guard in front of the hub enforces on its routes, as the hub's cards
    declare it (`a2a.cards.security_fields`): nothing (an open hub), API keys (as
    `Authorization: Bearer KEY` or `x-api-key: KEY`), and/or bearer JWTs from `issuer` for
    `audience` carrying `scope` among the scopes of `scope_claim`."""

    api_keys: bool = False
    issuer: str | None = None
    audience: str | None = None
    scope: str = "a2a"
    scope_claim: str = "scope"


OPEN = HubSecurity()


class ClientCredentialsAuth(_Model):
    """OAuth 2.0 client credentials: Junction gets its own token for the agent (cached until
    it expires, fetched again then, or when the agent refuses it)."""

    client_id: str
    client_secret: str = Field(repr=False)
    token_url: str | None = None
    """The token endpoint. Unset: from `issuer`'s discovery document, else from the agent's
    card (its OAuth 2 scheme's `tokenUrl`, or the discovery document its OpenID Connect /
    OAuth 2 scheme names; only over https, or http on a loopback host)."""
    issuer: str | None = None
    """The authorization server: its discovery document gives the token endpoint, and the
    agent card's URLs are then not used (a card cannot send the secret elsewhere)."""
    scopes: list[str] = Field(default_factory=list)
    resource: str | None = None
    """Sent as the RFC 8707 `resource` (the audience the token is for), when set."""
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"


class AgentAuth(_Model):
    """The credentials Junction presents to one agent (one kind). The agent's card says which
    schemes it requires; a requirement none of these meets is reported at registration."""

    bearer: str | None = Field(default=None, repr=False)
    """A static token, sent as `Authorization: Bearer TOKEN`."""
    api_key: str | None = Field(default=None, repr=False)
    """A static key, sent in `header`."""
    header: str | None = None
    """The header the `api_key` goes in (default: the one the card's API key scheme names,
    else `X-API-Key`)."""
    oauth_client_credentials: ClientCredentialsAuth | None = None
    forward_caller: bool = False
    """Pass the caller's own bearer token on, only when the agent's card declares an OpenID
    Connect / OAuth 2 scheme of the issuer that token is from (`server.oauth.issuer`) and the
    token's `aud` names `audience`; never otherwise (no token passthrough)."""
    audience: str | None = None
    """With `forward_caller`: the audience the agent accepts (default: its `url`)."""

    @model_validator(mode="after")
    def _one_kind(self) -> AgentAuth:
        kinds = [
            name
            for name, value in (
                ("bearer", self.bearer),
                ("api_key", self.api_key),
                ("oauth_client_credentials", self.oauth_client_credentials),
                ("forward_caller", self.forward_caller or None),
            )
            if value is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of bearer, api_key, oauth_client_credentials, forward_caller"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        if self.header is not None and self.api_key is None:
            raise ValueError("header goes with api_key")
        if self.audience is not None and not self.forward_caller:
            raise ValueError("audience goes with forward_caller")
        return self

    @property
    def kind(self) -> str:
        """Which kind of credential this is (shown in `junction agents`, never the secret)."""
        if self.bearer is not None:
            return "bearer"
        if self.api_key is not None:
            return "api_key"
        if self.oauth_client_credentials is not None:
            return "oauth_client_credentials"
        return "forward_caller"

    def secrets(self) -> list[str]:
        """The secret values in it (to redact them from anything shown)."""
        found = [self.bearer, self.api_key]
        if self.oauth_client_credentials is not None:
            found.append(self.oauth_client_credentials.client_secret)
        return [value for value in found if value]


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
    auth: AgentAuth | None = None
    """The credentials the agent's card asks for (`bearer`, `api_key` + `header`,
    `oauth_client_credentials`, or `forward_caller`); see docs/identity.md, A2A security."""


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
    public_agents: list[str] = Field(default_factory=list)
    """Globs over agent names whose skills the public cards show. With keys or OAuth on, the
    cards are readable without a credential (to learn the security schemes) but list only
    these agents' skills (none by default); a caller that signs in gets every agent it may
    use (the extended card, or the card fetched with its credential). An open hub shows all."""
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
