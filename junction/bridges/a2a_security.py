"""What the access guard enforces on the A2A routes, as the hub's cards declare it: read from
the configuration in force (`server.api_keys`, `server.oauth`), so a reload changes the cards."""

from __future__ import annotations

from a2a.settings import OPEN, HubSecurity
from junction.config.server import ServerConfig


def hub_security(server: ServerConfig) -> HubSecurity:
    """The hub's `HubSecurity` for `server`: keys and/or the OAuth issuer, or an open hub."""
    oauth = server.oauth
    if not server.api_keys and oauth is None:
        return OPEN
    return HubSecurity(
        api_keys=bool(server.api_keys),
        issuer=oauth.issuer if oauth is not None else None,
        audience=oauth.audience if oauth is not None else None,
        scope_claim=oauth.claims.scopes if oauth is not None else "scope",
    )
