"""Registered remote agents: their cards (fetched with limits, refreshed), health and selection.

A card is fetched with a timeout, a size cap, and redirects followed only to the same origin or
to public addresses, so a card URL cannot be bounced to cloud metadata or a private service.
The periodic refresh is a conditional GET (ETag) and doubles as the agent's health probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson
from pydantic import ValidationError

from a2a.credentials import Refused, credentials_for, describe, requirements
from a2a.netguard import BlockedTargetError, Guard, http_url, same_origin
from a2a.paths import WELL_KNOWN
from a2a.settings import OPEN, AgentSpec, HubSecurity, HubSettings
from a2a.signing import CardSigner, CardVerifier, KeySource, SignatureError, load_signer
from a2a.types import AgentCard
from a2a.upstream import (
    AgentConnection,
    AgentTransport,
    RestConnection,
    SessionFactory,
    _default_session,
)
from a2a.versions.cards import card_to_v10
from a2a.versions.common import V03, V10, normalize_version
from router_core import (
    BreakerState,
    CircuitBreaker,
    Endpoint,
    HealthChecker,
    Strategy,
    make_strategy,
)
from router_core.redaction import redact_url, redact_urls

log = logging.getLogger(__name__)


class CardError(Exception):
    """The agent's card could not be fetched or is not a usable A2A card."""

    def __init__(self, reason: str) -> None:
        # A reason may quote what the agent sent: a header's undecodable bytes (kept as
        # surrogates) are shown escaped, so the reason can always be encoded as UTF-8.
        super().__init__(reason.encode("utf-8", "backslashreplace").decode("utf-8"))


@dataclass(eq=False)
class RegisteredAgent:
    """One agent and everything the hub knows about it."""

    name: str
    spec: AgentSpec | None
    """Where the agent is; None for an in-process (`local`) agent."""
    source: Literal["config", "admin", "local"]
    endpoint: Endpoint[RegisteredAgent] = field(init=False)
    card: dict[str, Any] | None = None
    """The card in 1.0 shape."""
    raw_card: dict[str, Any] | None = None
    """The card exactly as the agent served it (signatures cover this)."""
    etag: str | None = None
    connection: AgentTransport | None = None
    error: str | None = None
    fetched_at: float | None = None
    signed_by: str | None = None
    """The `kid` of the signature on the agent's card that the hub verified, if any."""
    hub_security: Callable[[], HubSecurity] = field(default=lambda: OPEN, repr=False)
    """What the hub in front of the agent enforces (its registry's `security`): the agent's
    proxied card declares that."""
    auth_problem: str | None = None
    """What the card requires that the configured credentials do not give (calls to it are
    refused with this, and it takes no routed work)."""

    @property
    def card_url(self) -> str | None:
        if self.spec is None:
            return None
        return self.spec.card_url or self.spec.url.rstrip("/") + WELL_KNOWN

    @property
    def skills(self) -> list[dict[str, Any]]:
        return list((self.card or {}).get("skills") or [])

    @property
    def capabilities(self) -> dict[str, Any]:
        return dict((self.card or {}).get("capabilities") or {})

    @property
    def streaming(self) -> bool:
        return bool(self.capabilities.get("streaming"))

    def available(self) -> bool:
        return (
            self.connection is not None and self.auth_problem is None and self.endpoint.available()
        )

    def redact(self, text: str) -> str:
        """`text` without this agent's credentials (header values, configured secrets, secrets
        in URLs)."""
        spec = self.spec
        if spec is None:
            return redact_urls(text, ())
        secrets = [*spec.headers.values(), *(spec.auth.secrets() if spec.auth else ())]
        return redact_urls(text, secrets)

    def state(self) -> str:
        """One word or phrase for `junction agents`, the admin API, /health and hub errors."""
        if self.connection is None:
            return self.redact(f"error: {self.error or 'card not fetched yet'}")
        if self.auth_problem is not None:
            return self.redact(f"needs credentials: {self.auth_problem}")
        reason = self.endpoint.unavailable_reason()
        return reason or "ready"

    def security(self) -> list[str]:
        """The card's alternative security requirements in words (no secrets)."""
        return [
            " + ".join(describe(name, scheme) for name, scheme in requirement.items()) or "none"
            for requirement in requirements(self.card or {})
        ]

    def summary(self) -> dict[str, Any]:
        card = self.card or {}
        return {
            "name": self.name,
            "url": redact_url(self.spec.url) if self.spec is not None else None,
            "source": self.source,
            "state": self.state(),
            "version": self.connection.version if self.connection else None,
            "agent": card.get("name"),
            "description": card.get("description"),
            "skills": [
                {"id": s.get("id"), "name": s.get("name"), "tags": s.get("tags") or []}
                for s in self.skills
            ],
            "streaming": self.streaming,
            "signed": bool((self.raw_card or {}).get("signatures")),
            "signature_verified_by": self.signed_by,
            "security": self.security(),
            "auth": self.spec.auth.kind if self.spec is not None and self.spec.auth else None,
            "stats": self.endpoint.stats.snapshot(),
            "breaker": self.endpoint.breaker.snapshot(),
        }


_LOCAL_INTERFACE = {"url": "local:", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
"""Stands in for a local agent's interfaces when its card is checked (the hub serves it)."""


@contextlib.contextmanager
def _unusable(what: str) -> Iterator[None]:
    """Whatever a hostile card or card server makes fail inside (a wrong type deep in the card,
    a malformed URL or redirect) becomes a CardError: that agent is unavailable, and whoever
    registers it (start-up, reload, the admin API) goes on."""
    try:
        yield
    except CardError:
        raise
    except Exception as exc:
        raise CardError(f"{what}: {type(exc).__name__}: {exc}") from None


def usable_card(raw: dict[str, Any]) -> dict[str, Any]:
    """A fetched card (1.0 or 0.3) in the 1.0 shape, checked; CardError says what is wrong."""
    with _unusable("invalid agent card"):
        card = card_to_v10(raw)
    _validate_card(card)
    return card


def _validate_card(card: dict[str, Any]) -> None:
    try:
        AgentCard.model_validate(card)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CardError(f"invalid agent card: {where}: {first['msg']}") from None


class Registry:
    """The agents the hub routes to, by name and by skill."""

    def __init__(
        self,
        settings: HubSettings | None = None,
        *,
        session: SessionFactory = _default_session,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings or HubSettings()
        self._session = session
        self._agents: dict[str, RegisteredAgent] = {}
        self._strategy: Strategy = make_strategy(self.settings.strategy)
        self._guard = Guard(self.settings.push.allow_hosts)
        signatures = self.settings.card_signatures
        try:
            self.signer: CardSigner | None = load_signer(signatures)
            """Signs the hub's cards; None when it signs none."""
        except (OSError, ValueError) as exc:
            raise ValueError(f"a2a.card_signatures.signing_key_file: {exc}") from None
        self._verifier = CardVerifier(signatures, ttl=self.settings.card_refresh)
        self._on_change = on_change
        self.security: Callable[[], HubSecurity] = lambda: OPEN
        """What the access guard in front of the hub enforces (read on each use, so it
        follows a reload): the hub's cards declare it, and its issuer is the one whose tokens
        `forward_caller` agents may take; set by whoever puts the guard there."""
        self._listeners: list[Callable[[], None]] = []
        self._started = False
        self.revision = 0
        self.changed_at = time.time()

    # -- membership

    def get(self, name: str) -> RegisteredAgent | None:
        return self._agents.get(name)

    def all(self) -> list[RegisteredAgent]:
        return list(self._agents.values())

    def _new_agent(
        self, name: str, spec: AgentSpec | None, source: Literal["config", "admin", "local"]
    ) -> RegisteredAgent:
        agent = RegisteredAgent(name=name, spec=spec, source=source)
        agent.hub_security = lambda: self.security()  # noqa: PLW0108 (it may be replaced)
        breaker = CircuitBreaker(self.settings.breaker, name=name)
        breaker.add_listener(self._breaker_moved)
        weight = spec.weight if spec is not None else 1
        agent.endpoint = Endpoint(name=name, target=agent, weight=weight, breaker=breaker)
        return agent

    async def _install(self, agent: RegisteredAgent) -> None:
        old = self._agents.get(agent.name)
        self._agents[agent.name] = agent
        if old is not None and old.endpoint.health is not None:
            await old.endpoint.health.stop()
        if self._started and agent.spec is not None:
            self._start_health(agent)
        self._changed()

    async def add(
        self, name: str, spec: AgentSpec, *, source: Literal["config", "admin"], strict: bool
    ) -> RegisteredAgent:
        """Register (or replace) `name`; with `strict` a card problem raises CardError instead."""
        agent = self._new_agent(name, spec, source)
        try:
            await self.refresh(agent)
        except CardError as exc:
            if strict:
                raise
            log.warning("agent %s: %s", name, agent.redact(str(exc)))
        await self._install(agent)
        return agent

    async def add_local(
        self, name: str, card: dict[str, Any], connection: AgentTransport
    ) -> RegisteredAgent:
        """Register (or replace) an in-process agent: its 1.0 card is taken as given (never
        fetched, refreshed or probed) and `connection` answers for it; only its breaker can
        make it unavailable. The admin API can neither remove nor replace it.

        Raises CardError when the card is not a usable 1.0 card (interfaces may be left out:
        the hub serves the agent under its own URL).
        """
        if not name or "/" in name:
            raise CardError("an agent name must be non-empty and without '/'")
        _validate_card({"supportedInterfaces": [_LOCAL_INTERFACE], **card})
        agent = self._new_agent(name, None, "local")
        agent.card, agent.raw_card, agent.connection = card, card, connection
        agent.fetched_at = time.time()
        await self._install(agent)
        return agent

    async def remove(self, name: str) -> bool:
        agent = self._agents.pop(name, None)
        if agent is None:
            return False
        if agent.endpoint.health is not None:
            await agent.endpoint.health.stop()
        self._changed()
        return True

    def start(self) -> None:
        """Begin periodic card refresh / health probes (needs a running loop)."""
        self._started = True
        for agent in self._agents.values():
            if agent.spec is not None:
                self._start_health(agent)

    async def stop(self) -> None:
        self._started = False
        for agent in self._agents.values():
            if agent.endpoint.health is not None:
                await agent.endpoint.health.stop()

    def _start_health(self, agent: RegisteredAgent) -> None:
        settings = self.settings.health.model_copy(update={"interval": self.settings.card_refresh})

        async def probe() -> None:
            await self.refresh(agent)

        checker = HealthChecker(probe, settings, name=agent.name, breaker=agent.endpoint.breaker)
        checker.add_listener(lambda _checker, _healthy: self._notify())
        agent.endpoint.health = checker
        if agent.connection is None:
            checker.start()  # first probe now: a failed startup fetch is retried at once
        else:
            loop = asyncio.get_running_loop()
            loop.call_later(self.settings.card_refresh, checker.start)

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` after an agent is added, removed or replaced, its card changes, or
        its availability flips (health, breaker); returns the function that unsubscribes it.
        (MCP's `notifications/tools/list_changed` hangs off this.)"""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("registry listener failed")

    def _breaker_moved(
        self, _breaker: CircuitBreaker, old: BreakerState, new: BreakerState
    ) -> None:
        if (old is BreakerState.OPEN) != (new is BreakerState.OPEN):
            self._notify()

    def _changed(self) -> None:
        """Membership or a card changed: the hub's card is stale, and listeners hear of it."""
        self.revision += 1
        self.changed_at = time.time()
        if self._on_change is not None:
            self._on_change()
        self._notify()

    # -- selection

    def candidates(self, skill: str | None, tags: list[str]) -> list[RegisteredAgent]:
        """Available agents offering `skill` (by id) or any of `tags`, in registration order."""
        wanted = set(tags)
        found = []
        for agent in self._agents.values():
            if not agent.available():
                continue
            for entry in agent.skills:
                if (skill and entry.get("id") == skill) or (
                    wanted and wanted & set(entry.get("tags") or [])
                ):
                    found.append(agent)
                    break
        return found

    def pick(
        self, candidates: list[RegisteredAgent], key: str | None = None
    ) -> RegisteredAgent | None:
        endpoint = self._strategy.pick([a.endpoint for a in candidates], key)
        return None if endpoint is None else endpoint.target

    # -- cards

    async def refresh(self, agent: RegisteredAgent) -> None:
        """Fetch the card (conditionally); on success the agent gets a usable connection."""
        spec, card_url = agent.spec, agent.card_url
        if spec is None or card_url is None:
            return  # a local agent: its card is what it was registered with
        try:
            raw, etag = await self.fetch_card(card_url, spec, etag=agent.etag)
            if raw is None:  # 304: unchanged
                agent.fetched_at = time.time()
                return
            changed = agent.raw_card != raw
            card, connection = self._parse(agent, card_url, raw)
            signed_by = await self._verify(spec, card_url, raw) if changed else agent.signed_by
        except CardError as exc:
            agent.error = str(exc)
            raise
        agent.fetched_at = time.time()
        agent.signed_by = signed_by
        agent.raw_card, agent.card, agent.etag, agent.error = raw, card, etag, None
        agent.connection = connection
        credentials = getattr(connection, "credentials", None)
        problem = credentials.problem if isinstance(credentials, Refused) else None
        if problem != agent.auth_problem:
            if problem is not None:
                log.warning(
                    "agent %s %s", agent.name, agent.redact(f"needs credentials: {problem}")
                )
            agent.auth_problem = problem
            changed = True
        if changed and agent.name in self._agents:
            self._changed()

    async def _verify(self, spec: AgentSpec, card_url: str, raw: dict[str, Any]) -> str | None:
        """The card's signatures checked by the agent's policy (`a2a.signing`); the verified
        signature's `kid`, or CardError with the reason the card is refused."""
        settings = self.settings.card_signatures
        policy = spec.card_signatures or settings.verify

        def own(url: str) -> bool:
            return same_origin(url, spec.url) or same_origin(url, card_url)

        def jku_allowed(url: str) -> bool:
            return settings.jku == "any" or (settings.jku == "same_origin" and own(url))

        async def fetch(url: str) -> dict[str, Any]:
            configured = url == spec.jwks_url or url in settings.trusted_jwks
            if not (configured or own(url)):
                await self._guard.check_url(url)  # a foreign jku: HTTPS, a public address
            document, _ = await self.fetch_card(url, AgentSpec(url=url))
            if document is None:
                raise CardError("the key set answered 304 to a plain GET")
            return document

        jwks = (spec.jwks_url,) if spec.jwks_url else ()
        try:
            return await self._verifier.verify(raw, policy, KeySource(fetch, jku_allowed, jwks))
        except (SignatureError, BlockedTargetError) as exc:
            raise CardError(f"card signature refused: {exc}") from None

    def _parse(
        self, agent: RegisteredAgent, card_url: str, raw: dict[str, Any]
    ) -> tuple[dict[str, Any], AgentTransport]:
        """The card in 1.0 shape and a connection to it (`_connect`)."""
        assert agent.spec is not None
        card = usable_card(raw)
        with _unusable("unusable interface in the card"):
            return card, self._connect(agent.name, agent.spec, card_url, card)

    def _connect(
        self, name: str, spec: AgentSpec, card_url: str, card: dict[str, Any]
    ) -> AgentTransport:
        """A connection to the interface the hub will use: JSON-RPC when offered (1.0, else
        0.3), else HTTP+JSON (1.0, else 0.3), with the credentials its card asks for."""
        chosen: dict[str, Any] | None = None
        for binding in ("JSONRPC", "HTTP+JSON"):
            for wanted in (V10, V03):
                for interface in card["supportedInterfaces"]:
                    version = normalize_version(str(interface.get("protocolVersion", "")))
                    if interface.get("protocolBinding") == binding and version == wanted:
                        chosen = {**interface, "protocolVersion": version}
                        break
                if chosen is not None:
                    break
            if chosen is not None:
                break
        if chosen is None:
            raise CardError(
                "the card offers no JSON-RPC or HTTP+JSON interface of version 1.0 or 0.3"
            )
        url = urljoin(card_url, str(chosen["url"]))
        try:
            http_url(url)
        except BlockedTargetError as exc:
            raise CardError(f"the card's interface URL is unusable: {exc}") from None
        if not same_origin(url, spec.url) and urlsplit(url).hostname != urlsplit(spec.url).hostname:
            self._check_public_sync(url)
        kind = AgentConnection if chosen["protocolBinding"] == "JSONRPC" else RestConnection
        credentials, _ = credentials_for(
            name,
            spec.auth,
            spec.headers,
            card,
            agent_url=spec.url,
            hub_issuer=self.security().issuer,
            session=self._session,
        )
        return kind(
            url,
            chosen["protocolVersion"],
            headers=spec.headers,
            session=self._session,
            request_timeout=self.settings.request_timeout,
            idle_timeout=self.settings.stream_idle_timeout,
            max_event_bytes=self.settings.max_body_bytes,
            credentials=credentials,
            name=name,
        )

    def _check_public_sync(self, url: str) -> None:
        import ipaddress

        host = urlsplit(url).hostname or ""
        if self._guard.host_allowed(host):
            return
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return  # a name: checked when connecting would need a guarded session; trust DNS here
        problem = self._guard.address_problem(address)
        if problem is not None:
            raise CardError(f"the card's interface URL points to {problem}: {url}")

    async def fetch_card(
        self, url: str, spec: AgentSpec, *, etag: str | None = None
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The card JSON and its ETag; (None, etag) when unchanged. Raises CardError."""
        with _unusable("card fetch failed"):
            return await self._fetch_card(url, spec, etag=etag)

    async def _fetch_card(
        self, url: str, spec: AgentSpec, *, etag: str | None
    ) -> tuple[dict[str, Any] | None, str | None]:
        settings = self.settings
        headers = {"Accept": "application/json", **spec.headers}
        if etag:
            headers["If-None-Match"] = etag
        current = url
        try:
            async with asyncio.timeout(settings.card_timeout):
                for _ in range(settings.redirect_limit + 1):
                    async with self._session().get(
                        current, headers=headers, allow_redirects=False
                    ) as response:
                        if response.status in (301, 302, 303, 307, 308):
                            location = response.headers.get("Location")
                            if not location:
                                raise CardError(f"redirect without Location from {current}")
                            target = urljoin(current, location)
                            if not same_origin(target, spec.url):
                                try:
                                    await self._guard.check_url(target, require_https=False)
                                except BlockedTargetError as exc:
                                    raise CardError(f"card redirect refused: {exc}") from None
                            current = target
                            continue
                        if response.status == 304:
                            return None, etag
                        if response.status != 200:
                            raise CardError(f"card fetch answered HTTP {response.status}")
                        length = response.content_length
                        if length is not None and length > settings.card_max_bytes:
                            raise CardError(
                                f"card is {length} bytes, over the {settings.card_max_bytes} byte limit"
                            )
                        body = bytearray()
                        async for chunk in response.content.iter_chunked(65536):
                            body += chunk
                            if len(body) > settings.card_max_bytes:
                                raise CardError(
                                    f"card is over the {settings.card_max_bytes} byte limit"
                                )
                        new_etag = response.headers.get("ETag")
                        break
                else:
                    raise CardError(f"more than {settings.redirect_limit} redirects")
        except TimeoutError:
            raise CardError(f"card fetch timed out after {settings.card_timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise CardError(f"card fetch failed: {exc}") from None
        try:
            data = orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            raise CardError("card is not JSON") from None
        if not isinstance(data, dict):
            raise CardError("card is not a JSON object")
        return data, new_etag
