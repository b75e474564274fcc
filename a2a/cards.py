"""The cards the hub shows, as plain data: its own (the skills of the agents a caller may use)
and each agent's, proxied (interfaces pointing at the hub). Served over HTTP by `a2a.wellknown`
and by `GetExtendedAgentCard` in either binding.

Two views on a hub that asks for credentials (A2A 1.0 sections 3.1.11, 13.3 and 14.3): the
public card, readable by anyone so that a client learns which schemes to use, shows the skills
of `public_agents` only and says `capabilities.extendedAgentCard`; the extended card (or the
card fetched with a credential) shows every agent the caller may use. An open hub has one view.
"""

from __future__ import annotations

from typing import Any

from a2a.registry import RegisteredAgent, Registry
from a2a.routing import may_use
from a2a.settings import HubSecurity, HubSettings
from a2a.signing import CardSigner
from a2a.versions.cards import with_v03_fields
from a2a.versions.common import V03, V10
from router_core.redaction import redact_url

Json = dict[str, Any]


def interfaces(url: str) -> list[Json]:
    """The interfaces the hub serves at `url`: JSON-RPC and HTTP+JSON, each in 1.0 and 0.3.

    JSON-RPC comes first in each version, so a 0.3 card's `url`/`preferredTransport` (see
    `with_v03_fields`) stays JSON-RPC and HTTP+JSON is an `additionalInterfaces` entry.
    """
    return [
        {"url": url, "protocolBinding": binding, "protocolVersion": version}
        for version in (V10, V03)
        for binding in ("JSONRPC", "HTTP+JSON")
    ]


def speaks_v03(agent: RegisteredAgent) -> bool:
    """Whether the agent's own card carries the 0.3 fields (a 0.3 card, or the merged shape the
    official SDK serves when it lists a 0.3 interface)."""
    return agent.raw_card is not None and "url" in agent.raw_card


OIDC_DISCOVERY = "/.well-known/openid-configuration"


def secured(security: HubSecurity) -> bool:
    """Whether the guard in front of the hub asks for a credential (keys or OAuth)."""
    return security.api_keys or security.issuer is not None


def withholds(settings: HubSettings, security: HubSecurity, name: str) -> bool:
    """Whether the public cards keep agent `name`'s skills back: on a secured hub, every agent
    outside `public_agents` (its skills are on the extended card only)."""
    return secured(security) and not may_use(tuple(settings.public_agents), name)


def security_fields(security: HubSecurity) -> Json:
    """`securitySchemes` and `securityRequirements` (1.0 shape) saying exactly what the access
    guard enforces on the hub's routes: an API key as `Authorization: Bearer KEY` (HTTP bearer)
    or as `x-api-key: KEY` (API key in a header), either one; an access token from the issuer
    (OpenID Connect, its discovery URL) with the `a2a` scope; nothing on an open hub."""
    schemes: Json = {}
    required: list[Json] = []
    if security.api_keys:
        schemes["bearer"] = {
            "httpAuthSecurityScheme": {
                "scheme": "Bearer",
                "description": "A Junction API key with the a2a scope: Authorization: Bearer KEY",
            }
        }
        schemes["apiKey"] = {
            "apiKeySecurityScheme": {
                "location": "header",
                "name": "x-api-key",
                "description": "A Junction API key with the a2a scope: x-api-key: KEY",
            }
        }
        required += [{"schemes": {"bearer": {"list": []}}}, {"schemes": {"apiKey": {"list": []}}}]
    if security.issuer:
        issuer = security.issuer.rstrip("/")
        oauth_scopes = security.scope_claim in ("scope", "scp")
        schemes["openIdConnect"] = {
            "openIdConnectSecurityScheme": {
                "openIdConnectUrl": issuer + OIDC_DISCOVERY,
                "description": f"An access token from {issuer} for {security.audience} "
                f"with {security.scope!r} in its {security.scope_claim!r} claim: "
                "Authorization: Bearer TOKEN",
            }
        }
        scopes = [security.scope] if oauth_scopes else []
        required.append({"schemes": {"openIdConnect": {"list": scopes}}})
    return {"securitySchemes": schemes, "securityRequirements": required} if schemes else {}


def _secured(card: Json, security: HubSecurity) -> Json:
    """`card` declaring the hub's security in place of any it had (an agent's schemes are
    what the hub answers to, not what the hub asks of its callers), its skills' too."""
    out = {k: v for k, v in card.items() if k not in _SECURITY_FIELDS}
    skills = out.get("skills")
    if isinstance(skills, list):
        out["skills"] = [
            {k: v for k, v in skill.items() if k not in _SECURITY_FIELDS}
            if isinstance(skill, dict)
            else skill
            for skill in skills
        ]
    return {**out, **security_fields(security)}


_SECURITY_FIELDS = frozenset({"securitySchemes", "securityRequirements", "security"})


def signed(card: Json, signer: CardSigner | None, base_url: str) -> Json:
    """`card` with the hub's signature (its key set at `/a2a/jwks.json` unless configured),
    or as it is when the hub signs nothing."""
    return card if signer is None else signer.sign(card, jku=f"{base_url}/a2a/jwks.json")


def in_version(card: Json, version: str | None, v03_by_default: bool) -> Json:
    """`card` (1.0 shape) for a caller of `version`: a 1.0 caller gets it as it is (the 1.0
    schema forbids the 0.3 fields), a 0.3 caller with the 0.3 fields added; a caller that said
    nothing (a card fetch without `A2A-Version`) gets the 0.3 fields when `v03_by_default`."""
    if version == V10 or (version is None and not v03_by_default):
        return card
    return with_v03_fields(card)


def hub_card(
    registry: Registry,
    settings: HubSettings,
    base_url: str,
    allowed: tuple[str, ...] | None,
    version: str | None = V10,
    *,
    signer: CardSigner | None = None,
    public: bool = False,
) -> Json:
    """The hub's own card in the caller's `version`: the skills of every agent the caller may
    use, attributed to their agent; the `public` card (no credential) on a secured hub shows
    only `public_agents`. Without a version it has the 0.3 fields when one of the registered
    agents' own cards has them (0.3 clients are about)."""
    skills: list[Json] = []
    inputs: list[str] = []
    outputs: list[str] = []
    security = registry.security()
    if public and secured(security):
        allowed = tuple(settings.public_agents)
    v03 = False
    for agent in registry.all():
        if not may_use(allowed, agent.name):
            v03 = v03 or (public and speaks_v03(agent))
            continue
        v03 = v03 or speaks_v03(agent)
        agent_card = agent.card or {}
        for mode in agent_card.get("defaultInputModes") or []:
            if mode not in inputs:
                inputs.append(mode)
        for mode in agent_card.get("defaultOutputModes") or []:
            if mode not in outputs:
                outputs.append(mode)
        for skill in agent.skills:
            entry = dict(skill)
            entry["id"] = f"{agent.name}/{skill.get('id')}"
            entry["tags"] = [*(skill.get("tags") or []), f"agent:{agent.name}"]
            entry["description"] = f"{skill.get('description', '')} (agent: {agent.name})".strip()
            skills.append(entry)
    card: Json = {
        "name": settings.name,
        "description": settings.description,
        "version": settings.version,
        "supportedInterfaces": interfaces(f"{base_url}/a2a"),
        "capabilities": {
            "streaming": True,
            "pushNotifications": True,
            "extendedAgentCard": True,
        },
        "defaultInputModes": inputs or ["text/plain"],
        "defaultOutputModes": outputs or ["text/plain"],
        "skills": skills,
    }
    card = _secured(card, security)
    return signed(in_version(card, version, v03), signer, base_url)


def proxied_card(
    agent: RegisteredAgent,
    base_url: str,
    version: str | None = V10,
    *,
    signer: CardSigner | None = None,
    security: HubSecurity | None = None,
    withheld: bool = False,
    public: bool = False,
) -> Json:
    """The agent's card with its interfaces pointing at the hub's proxy for it, in the caller's
    `version`; without one, in the shape the agent's own card has (0.3 fields or not). Its
    security fields are the hub's (`security`, by default the agent's registry's), set before
    it is signed.

    `withheld` (see `withholds`): its skills are for callers who sign in, so the card says
    `capabilities.extendedAgentCard`, and the `public` view lists no skills. The public view
    never names the agent's own card URL (an internal address, A2A 1.0 section 13.3).

    Signed cards: URLs are rewritten (the hub must stay in the path), so the agent's
    signatures no longer hold and are never passed on. The card carries the hub's signature
    instead when it has a key (`signed`), or none. A `capabilities.extensions` entry
    (`urn:junction:a2a:proxied-card`) marks the card as the hub's rewrite and says where the
    agent's own card is and whether its signature was verified when it was registered.
    """
    card = dict(agent.card or {})
    card.pop("signatures", None)
    card["supportedInterfaces"] = interfaces(f"{base_url}/a2a/agents/{agent.name}")
    capabilities = dict(card.get("capabilities") or {})
    params: Json = {"agent": agent.name}
    if agent.card_url is not None and not public:  # a local agent has no card elsewhere
        params["upstreamCardUrl"] = redact_url(agent.card_url)
    if agent.signed_by is not None:
        params["upstreamSignatureKid"] = agent.signed_by
    mark = {
        "uri": "urn:junction:a2a:proxied-card",
        "description": "Interface URLs rewritten by the Junction hub"
        + ("; the agent's card signature was verified" if agent.signed_by else ""),
        "params": params,
    }
    capabilities["extensions"] = [*(capabilities.get("extensions") or []), mark]
    if withheld:
        capabilities["extendedAgentCard"] = True
        if public:
            card["skills"] = []
    card["capabilities"] = capabilities
    card = _secured(card, security or agent.hub_security())
    return signed(in_version(card, version, speaks_v03(agent)), signer, base_url)
