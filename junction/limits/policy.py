"""Which limits hold for one call: the caller's own `LimitSet` (its key's, `limits.principals`,
or `server.oauth.limits`) over the root `limits:` section, field by field, for the caller as a
whole and for the model, tool or agent it calls."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fnmatch import fnmatchcase

from junction.config import JunctionConfig
from junction.config.limits import LimitsConfig, LimitSet, Rates
from router_core.quota import QuotaKind

MINUTE = 60
DAY = 86_400

_RATES: tuple[tuple[str, str, int], ...] = (
    ("requests_per_minute", "requests", MINUTE),
    ("tokens_per_minute", "tokens", MINUTE),
    ("tokens_per_day", "tokens", DAY),
)


@dataclass(frozen=True, slots=True)
class Rule:
    """One limited counter of a call: `scope` names whose counter it is (for the counter's key
    and the error message), `rate` which of the three."""

    scope: str
    rate: str
    what: str
    limit: int
    seconds: int


@dataclass(frozen=True, slots=True)
class CallRules:
    """The limits one call is checked against, split as the counters take them."""

    requests: tuple[Rule, ...]
    tokens: tuple[Rule, ...]

    @property
    def empty(self) -> bool:
        return not self.requests and not self.tokens


NO_RULES = CallRules((), ())


def _first_match(table: dict[str, Rates], name: str) -> Rates | None:
    for glob, rates in table.items():
        if fnmatchcase(name, glob):
            return rates
    return None


def _merged(own: Rates | None, default: Rates | None) -> dict[str, int]:
    """The three rates, each from `own` when it sets it, else from `default`."""
    merged: dict[str, int] = {}
    for field, _, _ in _RATES:
        value = getattr(own, field) if own is not None else None
        if value is None and default is not None:
            value = getattr(default, field)
        if value is not None:
            merged[field] = value
    return merged


def _scope_key(principal: str, kind: str | None, name: str | None) -> str:
    if kind is None or name is None:
        return principal
    if len(name) > 128:  # model names come from requests: keep Redis keys short
        name = "sha256-" + hashlib.sha256(name.encode()).hexdigest()[:32]
    return f"{principal}|{kind}={name}"


_LABELS = {"models": "model", "mcp_tools": "tool", "a2a_agents": "agent"}


class Policy:
    """The limits of one configuration, resolved per call and cached."""

    def __init__(self, config: JunctionConfig) -> None:
        self.root: LimitsConfig = config.limits
        oauth = config.server.oauth
        self.oauth: LimitSet | None = oauth.limits if oauth is not None else None
        self.keys: dict[str, LimitSet] = {
            str(grant.name): grant.limits
            for grant in config.server.key_grants()
            if grant.limits is not None
        }
        sets: list[LimitSet] = [self.root, *self.root.principals.values(), *self.keys.values()]
        if self.oauth is not None:
            sets.append(self.oauth)
        self.active = any(s.any() or s.models or s.mcp_tools or s.a2a_agents for s in sets)
        self._cache: dict[tuple[str, bool, str, str], CallRules] = {}

    def own(self, principal: str, token: bool) -> LimitSet | None:
        """The caller's own limits: its key's, else `limits.principals`, else for a token
        `server.oauth.limits`."""
        if not token and principal in self.keys:
            return self.keys[principal]
        found = self.root.principals.get(principal)
        if found is not None:
            return found
        return self.oauth if token else None

    def rules(self, principal: str, token: bool, kind: QuotaKind, name: str) -> CallRules:
        cache_key = (principal, token, kind, name)
        found = self._cache.get(cache_key)
        if found is not None:
            return found
        if len(self._cache) > 10_000:
            self._cache.clear()
        rules = self._resolve(principal, token, kind, name) if self.active else NO_RULES
        self._cache[cache_key] = rules
        return rules

    def _resolve(self, principal: str, token: bool, kind: QuotaKind, name: str) -> CallRules:
        own = self.own(principal, token)
        whole = _merged(own, self.root)
        own_entry = _first_match(getattr(own, kind), name) if own is not None else None
        entry = _merged(own_entry, _first_match(getattr(self.root, kind), name))
        requests: list[Rule] = []
        tokens: list[Rule] = []
        scopes = (
            (_scope_key(principal, None, None), f"{principal!r}", whole),
            (
                _scope_key(principal, kind, name),
                f"{_LABELS[kind]} {name!r} for {principal!r}",
                entry,
            ),
        )
        for scope, what, rates in scopes:
            for field, unit, seconds in _RATES:
                limit = rates.get(field)
                if limit is None or (unit == "tokens" and kind != "models"):
                    continue  # tokens are model tokens: a tool call is never refused for them
                rule = Rule(scope, field, what, limit, seconds)
                (requests if unit == "requests" else tokens).append(rule)
        return CallRules(tuple(requests), tuple(tokens))


__all__ = ["DAY", "MINUTE", "NO_RULES", "CallRules", "Policy", "Rule"]
