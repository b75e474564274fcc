"""Which backends exist and which models each serves: config backends, runtime registrations with
a heartbeat TTL, static model lists, discovery with a TTL cache, aliases, and the model -> backends
index the router reads on every request.

The index is rebuilt when membership or a model list changes (rare), never per request, so the
hot path is one dict lookup. Discovery runs in the background once a backend has a list; only a
backend that has never answered one makes a request wait (bounded by `discovery_timeout`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from router_core.backends import Backend, Timeouts, create_backend
from router_core.health import CircuitBreaker, HealthChecker
from router_core.redaction import redact_url, redact_urls
from router_core.selection import Endpoint
from router_core.settings import BackendSpec, RouterSettings

__all__ = ["BackendEntry", "Registry", "RegistryError"]

log = logging.getLogger(__name__)

Source = Literal["config", "registered"]


class RegistryError(Exception):
    """A registration the registry refuses; `status` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False, slots=True)
class BackendEntry(Endpoint[Backend]):
    """A backend with its live state (stats, breaker, health) and what it serves.

    `cooldown_until` is set from an upstream `Retry-After`: until then the backend is skipped
    when anything else can serve (the rate limit is the backend's, not the request's)."""

    spec: BackendSpec | None = None
    source: Source = "config"
    static_models: frozenset[str] | None = None
    discovered: frozenset[str] = frozenset()
    discovered_at: float | None = None
    discovery_error: str | None = None
    ttl: float | None = None
    expires_at: float | None = None
    cooldown_until: float = 0.0

    @property
    def backend(self) -> Backend:
        return self.target

    @property
    def models(self) -> frozenset[str]:
        return self.static_models if self.static_models is not None else self.discovered

    @property
    def needs_discovery(self) -> bool:
        return self.static_models is None

    def exclusion_reason(self, now: float) -> str | None:
        """Why the router would skip this backend now; None when it can take a request."""
        if self.cooldown_until > now:
            return f"rate limited (retry after {self.cooldown_until - now:.1f} s)"
        return self.unavailable_reason()

    def snapshot(self, now: float) -> dict[str, Any]:
        """Plain data for `/admin/backends` and `junction backends`."""
        health = self.health
        reason = self.exclusion_reason(now)
        stats = self.stats.snapshot()
        if stats["last_error"]:
            stats["last_error"] = redact_urls(stats["last_error"])
        checks = health.snapshot() if health is not None else None
        if checks is not None and checks["last_error"]:
            checks["last_error"] = redact_urls(checks["last_error"])
        return {
            "name": self.name,
            "type": self.target.kind,
            "url": redact_url(self.target.url),
            "source": self.source,
            "weight": self.weight,
            "available": reason is None,
            "reason": None if reason is None else redact_urls(reason),
            "healthy": health.healthy if health is not None else True,
            "health": checks,
            "circuit": self.breaker.snapshot(),
            **stats,
            "models": sorted(self.models),
            "models_source": "static" if self.static_models is not None else "discovered",
            "discovery_error": None
            if self.discovery_error is None
            else redact_urls(self.discovery_error),
            "discovered_age_s": None
            if self.discovered_at is None
            else round(now - self.discovered_at, 3),
            "expires_in_s": None if self.expires_at is None else round(self.expires_at - now, 3),
        }


def make_entry(
    spec: BackendSpec, settings: RouterSettings, *, source: Source = "config"
) -> BackendEntry:
    """A backend client plus its breaker and health checker, from a spec."""
    timeouts = Timeouts(
        connect=spec.timeouts.connect, read=spec.timeouts.read, probe=spec.timeouts.probe
    )
    backend = create_backend(
        spec.type,
        spec.name,
        spec.url,
        api_key=spec.api_key or None,
        headers=spec.headers or None,
        timeouts=timeouts,
    )
    breaker = CircuitBreaker(spec.breaker or settings.breaker, name=spec.name)
    health = HealthChecker(
        backend.probe, spec.health or settings.health, name=spec.name, breaker=breaker
    )
    return BackendEntry(
        name=spec.name,
        target=backend,
        weight=spec.weight,
        breaker=breaker,
        health=health,
        spec=spec,
        source=source,
        static_models=frozenset(spec.models) if spec.models else None,
    )


class Registry:
    """Backends by name, and the model -> backends index (in registration order)."""

    def __init__(
        self,
        settings: RouterSettings,
        entries: Iterable[BackendEntry] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.aliases: dict[str, str] = dict(settings.aliases)
        self._clock = clock
        self._entries: dict[str, BackendEntry] = {}
        self._index: dict[str, list[BackendEntry]] = {}
        self._next_expiry = float("inf")
        self._running = False
        self._discovering: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        for entry in entries:
            if entry.name in self._entries:
                raise RegistryError(f"two backends are named {entry.name!r}")
            self._entries[entry.name] = entry
        self._reindex()

    # -- reading (hot path) -----------------------------------------------------------------

    def pool(self, model: str) -> list[BackendEntry]:
        """Every backend that serves `model`, whatever its state (empty when none does)."""
        if self._next_expiry <= self._clock():
            self.sweep()
        return self._index.get(model, [])

    def resolve(self, name: str) -> str:
        """The model an alias stands for (a name that is no alias stands for itself)."""
        return self.aliases.get(name, name)

    # -- reading ---------------------------------------------------------------------------

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> BackendEntry | None:
        return self._entries.get(name)

    def entries(self) -> list[BackendEntry]:
        return list(self._entries.values())

    def known_models(self) -> list[str]:
        """Every model some backend serves, plus every alias of one, sorted."""
        names = set(self._index)
        names.update(alias for alias, target in self.aliases.items() if target in self._index)
        return sorted(names)

    def undiscovered(self) -> list[BackendEntry]:
        """Backends whose model list is not known yet (never answered discovery)."""
        return [e for e in self._entries.values() if e.needs_discovery and e.discovered_at is None]

    # -- membership ------------------------------------------------------------------------

    def register(self, spec: BackendSpec, ttl: float | None = None) -> BackendEntry:
        """Add (or replace) a runtime-registered backend that must heartbeat within `ttl`.

        A name taken by a config backend is refused (409): config is the operator's word."""
        existing = self._entries.get(spec.name)
        if existing is not None and existing.source == "config":
            raise RegistryError(
                f"backend {spec.name!r} is defined in the configuration and cannot be replaced",
                409,
            )
        ttl = ttl if ttl is not None else self.settings.registration_ttl
        if existing is not None and existing.spec == spec:
            existing.ttl = ttl
            self.heartbeat(spec.name)
            return existing
        entry = make_entry(spec, self.settings, source="registered")
        entry.ttl = ttl
        entry.expires_at = self._clock() + ttl
        if existing is not None:
            self._drop(existing)
        self._entries[spec.name] = entry
        self._reindex()
        if self._running:
            self._start_entry(entry)
        log.info("backend %s registered (%s, ttl %.1f s)", spec.name, redact_url(spec.url), ttl)
        return entry

    def configure(self, specs: Iterable[BackendSpec], settings: RouterSettings) -> None:
        """Make the configured backends exactly `specs`, under `settings` (a hot reload).

        A backend whose spec and breaker/health settings did not change keeps its entry (stats,
        circuit state, discovered models); a changed one gets a fresh entry; one no longer listed
        leaves. Requests in flight hold their entry, so they finish on the backend they started
        on. A runtime registration under a name the configuration now uses gives way to it.
        Config backends come first, in config order (what `priority` falls back on).
        """
        old_settings, self.settings = self.settings, settings
        self.aliases = dict(settings.aliases)
        wanted = {spec.name: spec for spec in specs}
        entries: dict[str, BackendEntry] = {}
        fresh: list[BackendEntry] = []
        for name, spec in wanted.items():
            current = self._entries.get(name)
            if (
                current is not None
                and current.source == "config"
                and current.spec == spec
                and (spec.breaker or old_settings.breaker) == (spec.breaker or settings.breaker)
                and (spec.health or old_settings.health) == (spec.health or settings.health)
            ):
                entries[name] = current
                continue
            if current is not None:
                self._drop(current)
            entries[name] = make_entry(spec, settings)
            fresh.append(entries[name])
            log.info(
                "backend %s %s (%s)",
                name,
                "added" if current is None else "replaced",
                redact_url(spec.url),
            )
        for name, current in self._entries.items():
            if name in wanted:
                continue
            if current.source == "config":
                self._drop(current)
                log.info("backend %s removed", name)
            else:
                entries[name] = current
        self._entries = entries
        self._reindex()
        if self._running:
            for entry in fresh:
                self._start_entry(entry)

    def heartbeat(self, name: str) -> BackendEntry:
        """Extend a registered backend's lease; KeyError when it is unknown (or expired)."""
        if self._next_expiry <= self._clock():
            self.sweep()
        entry = self._entries.get(name)
        if entry is None or entry.source != "registered" or entry.ttl is None:
            raise KeyError(name)
        entry.expires_at = self._clock() + entry.ttl
        self._next_expiry = min(self._next_expiry, entry.expires_at)
        return entry

    def deregister(self, name: str) -> None:
        """Remove a registered backend; KeyError when unknown, RegistryError for config ones."""
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(name)
        if entry.source == "config":
            raise RegistryError(f"backend {name!r} is defined in the configuration", 409)
        self._drop(entry)
        del self._entries[name]
        self._reindex()
        log.info("backend %s deregistered", name)

    def sweep(self) -> list[str]:
        """Remove registered backends whose heartbeat is overdue; returns their names."""
        now = self._clock()
        gone = [
            e
            for e in self._entries.values()
            if e.expires_at is not None and e.expires_at <= now and e.source == "registered"
        ]
        for entry in gone:
            log.warning("backend %s stopped heartbeating; removed", entry.name)
            self._drop(entry)
            del self._entries[entry.name]
        if gone:
            self._reindex()
        else:
            self._next_expiry = min(
                (e.expires_at for e in self._entries.values() if e.expires_at is not None),
                default=float("inf"),
            )
        return [e.name for e in gone]

    # -- discovery -------------------------------------------------------------------------

    async def discover(self, entry: BackendEntry) -> None:
        """Fetch one backend's model list; a failure keeps the previous list."""
        try:
            async with asyncio.timeout(self.settings.discovery_timeout):
                models = await entry.backend.list_models()
        except Exception as exc:  # any failure: keep what we had, say why
            entry.discovery_error = f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc)
            log.warning("model discovery for %s failed: %s", entry.name, entry.discovery_error)
            if entry.discovered_at is None:
                return
            # retry after a TTL like a success would, so a dead backend is not hammered
            entry.discovered_at = self._clock()
            return
        entry.discovery_error = None
        entry.discovered_at = self._clock()
        fresh = frozenset(models)
        if fresh != entry.discovered:
            entry.discovered = fresh
            if self._entries.get(entry.name) is entry:
                self._reindex()

    async def refresh(self, *, force: bool = False) -> None:
        """Discover every backend whose list is missing or older than the TTL (all with force)."""
        now = self._clock()
        ttl = self.settings.discovery_ttl
        due = [
            e
            for e in self._entries.values()
            if e.needs_discovery
            and (force or e.discovered_at is None or now - e.discovered_at >= ttl)
        ]
        if due:
            await asyncio.gather(*(self._discover_once(e) for e in due))

    async def ensure_discovered(self) -> None:
        """Wait (bounded) for backends that never answered discovery: before answering that a
        model does not exist, ask the backends that have not said what they serve."""
        pending = self.undiscovered()
        if pending:
            await asyncio.gather(*(self._discover_once(e) for e in pending))

    def _discover_once(self, entry: BackendEntry) -> asyncio.Task[None]:
        """One discovery per backend at a time; concurrent callers share it."""
        task = self._discovering.get(entry.name)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(
                self.discover(entry), name=f"discover:{entry.name}"
            )
            self._discovering[entry.name] = task
            task.add_done_callback(lambda t: self._discovering.pop(entry.name, None))
        return task

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every backend's health checks (needs a running loop)."""
        self._running = True
        for entry in self._entries.values():
            self._start_entry(entry)

    async def stop(self) -> None:
        self._running = False
        checkers = [e.health for e in self._entries.values() if e.health is not None]
        await asyncio.gather(*(h.stop() for h in checkers))
        tasks = list(self._discovering.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start_entry(self, entry: BackendEntry) -> None:
        if entry.health is not None:
            entry.health.start()
        if entry.needs_discovery and entry.discovered_at is None:
            self._discover_once(entry)

    def _drop(self, entry: BackendEntry) -> None:
        """Stop an entry's background work (it is leaving the registry)."""
        if entry.health is not None and entry.health.running:
            stopping = asyncio.get_running_loop().create_task(entry.health.stop())
            self._stopping.add(stopping)  # a strong reference until it is done
            stopping.add_done_callback(self._stopping.discard)
        discovering = self._discovering.pop(entry.name, None)
        if discovering is not None:
            discovering.cancel()

    def _reindex(self) -> None:
        index: dict[str, list[BackendEntry]] = {}
        for entry in self._entries.values():
            for model in entry.models:
                index.setdefault(model, []).append(entry)
        self._index = index
        self._next_expiry = min(
            (e.expires_at for e in self._entries.values() if e.expires_at is not None),
            default=float("inf"),
        )
