"""The limiter of a running Junction: a `Quota` per caller for the surfaces (through the access
guard), the counters (memory, or Redis with `cluster.redis_url`), and the usage book."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from junction.audit import audit
from junction.config import JunctionConfig
from junction.limits.counters import Counters, MemoryCounters, RedisCounters, StoreDown, Window
from junction.limits.policy import DAY, MINUTE, Policy, Rule
from junction.limits.usage import UsageBook, _Row
from router_core.quota import Charge, LimitExceeded, QuotaKind

log = logging.getLogger("junction.limits")

PREFIX = "junction:limit:"
"""Every counter's Redis key starts with this (then the caller, the scope, the rate, the
window's number)."""

CLOSED_RETRY_SECONDS = 5
"""`Retry-After` of a call refused because Redis is down and limits fail closed."""


def _windows(rules: Sequence[Rule], now: float) -> list[Window]:
    windows: list[Window] = []
    for rule in rules:
        number = int(now // rule.seconds)
        windows.append(
            Window(
                f"{PREFIX}{rule.scope}:{rule.rate}:{number}",
                rule.limit,
                rule.seconds,
                float((number + 1) * rule.seconds),
            )
        )
    return windows


class _Charge:
    """An admitted model call's tokens: to its usage row and its token windows."""

    __slots__ = ("_counters", "_row", "_rules", "reported")

    def __init__(self, row: _Row, rules: Sequence[Rule], counters: Counters | None) -> None:
        self._row = row
        self._rules = rules
        self._counters = counters
        self.reported = False

    def tokens(self, count: int) -> None:
        self.reported = True
        self._row.tokens += count
        if self._rules and self._counters is not None:
            self._counters.add_tokens(_windows(self._rules, time.time()), count)


_AUDITED_AS: dict[QuotaKind, str] = {"models": "model", "mcp_tools": "tool", "a2a_agents": "agent"}
"""The audit record's field that names what a refused call was for."""


class CallerQuota:
    """One caller's `router_core.quota.Quota`: what the access guard hands the surfaces."""

    __slots__ = ("limiter", "principal", "token")

    def __init__(self, limiter: Limiter, principal: str, token: bool) -> None:
        self.limiter = limiter
        self.principal = principal
        self.token = token

    async def admit(self, kind: QuotaKind, name: str) -> Charge | None:
        try:
            return await self.limiter.admit(self.principal, self.token, kind, name)
        except LimitExceeded as exc:
            audit(  # every surface's refusal passes here (the surface comes from the guard)
                "limit",
                "deny",
                principal=self.principal,
                reason=str(exc),
                limit=exc.limit,
                retry_after=exc.retry_after,
                **{_AUDITED_AS[kind]: name},
            )
            raise


class Limiter:
    """Rate limits and quotas for the configuration running now (`current()`, read per call so
    a reload of `limits:` applies at once); the counters' store is chosen at first use from
    `cluster.redis_url` (a change needs a restart)."""

    def __init__(self, current: Callable[[], JunctionConfig]) -> None:
        self._current = current
        self._policy: Policy | None = None
        self._policy_of: JunctionConfig | None = None
        self._counters: Counters | None = None
        self.usage = UsageBook()
        self._tokens: set[str] = set()
        """Callers seen with a token (their own limits may be `server.oauth.limits`)."""

    def quota(self, principal: str, *, token: bool = False) -> CallerQuota:
        return CallerQuota(self, principal, token)

    @property
    def policy(self) -> Policy:
        config = self._current()
        if self._policy is None or self._policy_of is not config:
            self._policy = Policy(config)
            self._policy_of = config
        return self._policy

    @property
    def counters(self) -> Counters:
        if self._counters is None:
            url = self._current().cluster.redis_url
            self._counters = RedisCounters(url) if url else MemoryCounters()
            self.usage.store_up = True if url else None
        return self._counters

    async def admit(self, principal: str, token: bool, kind: QuotaKind, name: str) -> Charge | None:
        """Count one call or raise `LimitExceeded`; the charge for a model call's tokens."""
        policy = self.policy
        rules = policy.rules(principal, token, kind, name)
        if token and principal not in self._tokens and len(self._tokens) < 10_000:
            self._tokens.add(principal)
        row = self.usage.row(principal, kind, name)
        counters: Counters | None = None
        if not rules.empty:
            counters = self.counters
            now = time.time()
            windows = _windows((*rules.requests, *rules.tokens), now)
            try:
                refused = await counters.hit(
                    windows[: len(rules.requests)], windows[len(rules.requests) :]
                )
            except StoreDown:
                refused = None
                if self._current().cluster.limits_on_redis_down == "closed":
                    row.refused += 1
                    raise LimitExceeded(
                        "limits unavailable: Redis is down (cluster.limits_on_redis_down: closed)",
                        reset_at=now + CLOSED_RETRY_SECONDS,
                        principal=principal,
                    ) from None
            finally:
                if isinstance(counters, RedisCounters):
                    self.usage.store_up = counters.up
            if refused is not None:
                row.refused += 1
                rule = (*rules.requests, *rules.tokens)[refused]
                raise LimitExceeded(
                    f"{rule.rate} of {rule.what} ({rule.limit})",
                    reset_at=windows[refused].ends_at,
                    principal=principal,
                )
        row.requests += 1
        if kind != "models":
            return None
        return _Charge(row, rules.tokens, counters)

    async def report(self) -> dict[str, Any]:
        """`GET /admin/usage`: this process's usage since start, and each caller's current
        windows against its limits (from the shared counters when they are in Redis)."""
        usage = self.usage.by_principal()
        policy = self.policy
        now = time.time()
        reads: list[tuple[str, str, Window]] = []
        for principal in usage:
            whole = policy.rules(principal, principal in self._tokens, "models", "")
            for rule, window in zip(
                (*whole.requests, *whole.tokens),
                _windows((*whole.requests, *whole.tokens), now),
                strict=True,
            ):
                if rule.scope == principal:
                    reads.append((principal, rule.rate, window))
        store_up: bool | None = None
        if reads:
            counters = self.counters
            try:
                values = await counters.read([w.key for _, _, w in reads])
                store_up = True
            except StoreDown:
                values, store_up = [], False
            for (principal, rate, window), used in zip(reads, values, strict=False):
                usage[principal].setdefault("windows", {})[rate] = {
                    "used": used,
                    "limit": window.limit,
                    "resetAt": datetime.fromtimestamp(window.ends_at, UTC).isoformat(),
                }
        redis = isinstance(self._counters, RedisCounters) or bool(self._current().cluster.redis_url)
        return {
            "since": datetime.fromtimestamp(self.usage.since, UTC).isoformat(timespec="seconds"),
            "counters": "redis" if redis else "memory",
            "counters_up": store_up if redis else True,
            "windows": {
                "requests_per_minute": MINUTE,
                "tokens_per_minute": MINUTE,
                "tokens_per_day": DAY,
            },
            "principals": usage,
        }

    async def aclose(self) -> None:
        if self._counters is not None:
            counters, self._counters = self._counters, None
            await counters.aclose()


__all__ = ["CallerQuota", "Limiter"]
