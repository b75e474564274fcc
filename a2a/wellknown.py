"""The hub's card binding: `GET .../.well-known/agent-card.json` for the hub and each proxied
agent, with an ETag and Last-Modified so clients revalidate instead of downloading again.

The guard lets these paths through without a credential (`a2a.paths.is_public_card`): such a
request gets the public card (`a2a.cards`), one that came with a credential the caller's own
view, as `GetExtendedAgentCard` gives it."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from a2a.asgi import allowed_agents, base_url
from a2a.cards import hub_card, proxied_card, secured, withholds
from a2a.core import HubCore
from a2a.versions.common import V03, V10, normalize_version


class CardBinding:
    """Serves the cards, each body built once per registry revision, caller view and URL."""

    def __init__(self, core: HubCore) -> None:
        self.core = core
        self._cache: dict[str, tuple[bytes, str]] = {}
        self._revision = core.registry.revision

    async def hub(self, request: Request) -> Response:
        core = self.core
        base = base_url(request, core.settings.public_url)
        allowed = allowed_agents(request)
        public = not signed_in(request)
        version = card_version(request)
        return self._respond(
            request,
            f"hub|{base}|{public}|{allowed}|{version}|{core.registry.security()}",
            lambda: hub_card(
                core.registry,
                core.settings,
                base,
                allowed,
                version,
                signer=core.registry.signer,
                public=public,
            ),
            core.registry.changed_at,
        )

    async def agent(self, request: Request) -> Response:
        name = request.path_params["name"]
        agent = self.core.visible(name, allowed_agents(request))
        if agent is None or agent.card is None:
            return JSONResponse({"error": f"no agent {name!r} with a card"}, status_code=404)
        base = base_url(request, self.core.settings.public_url)
        version = card_version(request)
        registry = self.core.registry
        security = registry.security()
        withheld = withholds(self.core.settings, security, name)
        public = secured(security) and not signed_in(request)  # an open hub has one view
        return self._respond(
            request,
            f"agent|{name}|{base}|{agent.etag}|{agent.fetched_at}|{version}|{security}|{public}",
            lambda: proxied_card(
                agent,
                base,
                version,
                signer=registry.signer,
                security=security,
                withheld=withheld,
                public=public,
            ),
            agent.fetched_at or self.core.registry.changed_at,
        )

    async def jwks(self, request: Request) -> Response:
        """The hub's public key set: the `jku` of the signatures on its cards."""
        signer = self.core.registry.signer
        if signer is None:
            return JSONResponse({"error": "this hub signs no cards"}, status_code=404)
        headers = {"Cache-Control": f"public, max-age={self.core.settings.card_cache_seconds}"}
        return JSONResponse(signer.jwks(), headers=headers)

    def _respond(
        self, request: Request, key: str, build: Callable[[], dict[str, Any]], modified: float
    ) -> Response:
        revision = self.core.registry.revision
        if revision != self._revision:  # an agent or a card changed: every body may be stale
            self._cache.clear()
            self._revision = revision
        cached = self._cache.get(key)
        if cached is None:
            body = orjson.dumps(build())
            cached = (body, f'W/"{hashlib.sha256(body).hexdigest()[:32]}"')
            self._cache[key] = cached
        body, etag = cached
        headers = {
            "ETag": etag,
            "Last-Modified": formatdate(int(modified), usegmt=True),
            "Cache-Control": f"public, max-age={self.core.settings.card_cache_seconds}",
            # a key limited to some agents sees only theirs; each version its own shape
            "Vary": "Authorization, X-API-Key, A2A-Version",
        }
        inm = request.headers.get("if-none-match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            if "*" in tags or etag.removeprefix("W/") in tags:
                return Response(status_code=304, headers=headers)
        else:
            ims = request.headers.get("if-modified-since")
            if ims:
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    if int(modified) <= parsedate_to_datetime(ims).timestamp():
                        return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)


def signed_in(request: Request) -> bool:
    """Whether the guard let the request in on a credential (its grant names a principal)."""
    state = request.scope.get("state")
    return isinstance(state, dict) and bool(state.get("principal"))


def card_version(request: Request) -> str | None:
    """The version a card fetch asks for (`A2A-Version`: 1.0 or 0.3), None when it names
    none or one the hub does not serve (such a caller gets the card's default shape)."""
    header = request.headers.get("a2a-version")
    if not header:
        return None
    version = normalize_version(header)
    return version if version in (V03, V10) else None
