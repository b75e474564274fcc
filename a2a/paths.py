"""Which request paths are the hub's public cards, for the access guard in front of it.

A2A 1.0 (section 14.3, and 3.1.11 for the extended card) has the card at the well-known URL
readable by anyone, so a client learns from it which security schemes to use; whatever is
private goes on the extended card, behind authentication. Kept apart from `a2a.wellknown`
so that the guard can ask without importing the hub.
"""

from __future__ import annotations

WELL_KNOWN = "/.well-known/agent-card.json"
JWKS = "/a2a/jwks.json"
_AGENTS = "/a2a/agents/"


def is_public_card(path: str) -> bool:
    """Whether `path` is the hub's card (`/.well-known/agent-card.json`, also under `/a2a`),
    an agent's card (`/a2a/agents/NAME/.well-known/agent-card.json`), trailing slash or not,
    or the key set that verifies their signatures (`/a2a/jwks.json`)."""
    path = path.removesuffix("/")
    if path in (WELL_KNOWN, "/a2a" + WELL_KNOWN, JWKS):
        return True
    if not (path.startswith(_AGENTS) and path.endswith(WELL_KNOWN)):
        return False
    name = path[len(_AGENTS) : -len(WELL_KNOWN)]
    return bool(name) and "/" not in name
