"""Selection strategies: which of several equivalent endpoints gets the next request.

The caller filters first (healthy, breaker available, serves the model / offers the skill) and
passes what is left, in its configured order, to `Strategy.pick`. Strategies only read `name`,
`weight` and `stats` from each candidate, so any object with those three works: the `Endpoint`
dataclass here, or a type of the caller's own (`EndpointLike`); `pick` returns the caller's type.

Every pick is O(candidates) list work at most, with per-set state (the consistent-hash ring, the
smooth-weighted counters, the priority order) cached and rebuilt only when the set of candidate
names changes, so a pick over 64 endpoints stays within a few microseconds.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import struct
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

from router_core.health import CircuitBreaker, EndpointStats, HealthChecker

__all__ = [
    "STRATEGY_NAMES",
    "Endpoint",
    "EndpointLike",
    "Strategy",
    "StrategyName",
    "make_strategy",
]


class EndpointLike(Protocol):
    """What a strategy reads from a candidate."""

    @property
    def name(self) -> str: ...
    @property
    def weight(self) -> int: ...
    @property
    def stats(self) -> EndpointStats: ...


E = TypeVar("E", bound=EndpointLike)
T = TypeVar("T")


@dataclass(eq=False, slots=True)
class Endpoint(Generic[T]):
    """One thing requests can go to, with its live state; `target` is whatever the caller sends to.

    `health` is the endpoint's active checker when it has one; without one it counts as healthy
    and only its breaker gates it. Identity is the object (two endpoints are never equal).
    """

    name: str
    target: T
    weight: int = 1
    stats: EndpointStats = field(default_factory=EndpointStats)
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    health: HealthChecker | None = None

    def __post_init__(self) -> None:
        if self.weight < 1:
            raise ValueError(f"endpoint {self.name!r}: weight must be >= 1, got {self.weight}")
        if not self.breaker.name:
            self.breaker.name = self.name

    def available(self) -> bool:
        """Healthy and its breaker would let a request through (claims nothing)."""
        health = self.health
        return (health is None or health.healthy) and self.breaker.available()

    def unavailable_reason(self) -> str | None:
        """Why `available()` is False, worded for an error message; None when it is available."""
        health = self.health
        if health is not None and not health.healthy:
            detail = f": {health.last_error}" if health.last_error else ""
            return f"unhealthy{detail}"
        if not self.breaker.available():
            wait = self.breaker.retry_after()
            return f"circuit {self.breaker.state.value}" + (
                f" (next probe in {wait:.1f} s)" if wait else " (probe in progress)"
            )
        return None


# --------------------------------------------------------------------------- hashing


def _hash64(text: str) -> int:
    """A 64-bit hash stable across processes and restarts (str.__hash__ is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


_EIGHT_POINTS = struct.Struct(">8Q").unpack


def _ring_points(name: str, vnodes: int) -> list[int]:
    """`vnodes` ring positions for a name, eight per 64-byte digest (as ketama takes four per MD5)."""
    points: list[int] = []
    for block in range((vnodes + 7) // 8):
        digest = hashlib.blake2b(f"{name}#{block}".encode(), digest_size=64).digest()
        points.extend(_EIGHT_POINTS(digest))
    return points[:vnodes]


class _Ring:
    """A hash ring with `vnodes` points per name; lookups walk clockwise to the first wanted name.

    The ring may hold names that are not candidates right now (down, excluded): skipping them on
    the walk gives exactly the answer a ring built without them would, so a health flap or a
    retry's exclusions never force a rebuild, and only the missing endpoint's keys move. A new
    name is merged into the sorted ring (timsort sees the existing run), not rebuilt from scratch.
    """

    __slots__ = ("names", "owners", "points", "vnodes")

    def __init__(self, vnodes: int) -> None:
        self.vnodes = vnodes
        self.names: frozenset[str] = frozenset()
        self.points: list[int] = []
        self.owners: list[str] = []

    def with_names(self, names: Collection[str]) -> _Ring:
        """A new ring holding this ring's names plus `names`."""
        ring = _Ring(self.vnodes)
        ring.names = self.names.union(names)
        points, owners = list(self.points), list(self.owners)
        for name in sorted(ring.names - self.names):
            points.extend(_ring_points(name, self.vnodes))
            owners.extend([name] * self.vnodes)
        order = sorted(range(len(points)), key=points.__getitem__)
        ring.points = [points[i] for i in order]
        ring.owners = [owners[i] for i in order]
        return ring

    def lookup(
        self, key_hash: int, wanted: Collection[str], exclude: Collection[str]
    ) -> str | None:
        points, owners = self.points, self.owners
        size = len(points)
        start = bisect.bisect_left(points, key_hash)
        for step in range(size):
            owner = owners[(start + step) % size]
            if owner in wanted and owner not in exclude:
                return owner
        return None


# --------------------------------------------------------------------------- strategies


class Strategy(ABC):
    """Picks one candidate per request. Instances keep state (counters, rings): one per pool."""

    name: ClassVar[str]

    def pick(
        self, candidates: Sequence[E], key: str | None = None, exclude: Collection[str] = ()
    ) -> E | None:
        """Choose among `candidates` (already filtered for health), skipping names in `exclude`.

        `key` is the affinity key for `consistent_hash` (e.g. the ACP session id) and the prompt
        prefix for `cache_aware`; other strategies ignore it. `exclude` holds the names a retry
        already tried. Returns None when nothing is left; a caller that would rather retry an
        endpoint than fail can pick again without `exclude`.
        """
        if exclude:
            candidates = [c for c in candidates if c.name not in exclude]
        if not candidates:
            return None
        return self._pick(candidates, key)

    @abstractmethod
    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        """Choose among a non-empty candidate list."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RoundRobin(Strategy):
    """Each candidate in turn, in the order given."""

    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        index = self._next % len(candidates)
        self._next = index + 1
        return candidates[index]


class Weighted(Strategy):
    """Smooth weighted round robin (nginx): exact proportions per cycle, heavy ones interleaved.

    Each pick adds every candidate's weight to its counter, takes the largest counter and
    subtracts the total from it. Counters are per name, so a candidate that drops out and comes
    back keeps its place; they live in lists for the current candidate set and are rebuilt only
    when the names or weights change. A retry's excluded names take no part in that pick.
    """

    name = "weighted"

    def __init__(self) -> None:
        self._names: list[str] = []
        self._weights: list[int] = []
        self._current: list[int] = []
        self._total = 0
        self._saved: dict[str, int] = {}

    def pick(
        self, candidates: Sequence[E], key: str | None = None, exclude: Collection[str] = ()
    ) -> E | None:
        # Exclusions are handled inside the cached set (as nginx skips tried peers), so a retry
        # does not throw away the counters of the whole pool.
        if not candidates:
            return None
        names = [c.name for c in candidates]
        weights = [c.weight for c in candidates]
        if names != self._names or weights != self._weights:
            self._saved.update(zip(self._names, self._current, strict=True))
            self._names, self._weights = names, weights
            self._current = [self._saved.get(name, 0) for name in names]
            self._total = sum(weights)
        if not exclude:
            current = [c + w for c, w in zip(self._current, weights, strict=True)]
            index = current.index(max(current))
            current[index] -= self._total
            self._current = current
            return candidates[index]
        current, index, total = self._current, -1, 0
        for i, name in enumerate(names):
            if name not in exclude:
                current[i] += weights[i]
                total += weights[i]
                if index < 0 or current[i] > current[index]:
                    index = i
        if index < 0:
            return None
        current[index] -= total
        return candidates[index]

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        picked = self.pick(candidates, key)
        assert picked is not None  # candidates is not empty
        return picked


class Random(Strategy):
    """Uniformly at random (`seed` makes it reproducible)."""

    name = "random"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        return candidates[self._rng.randrange(len(candidates))]


class LeastOutstanding(Strategy):
    """Fewest requests in flight; ties go round robin so an idle pool still spreads load."""

    name = "least_outstanding"

    def __init__(self) -> None:
        self._start = 0

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        loads = [c.stats.in_flight for c in candidates]
        lowest = min(loads)
        start = self._start % len(loads)
        self._start = start + 1
        try:
            index = loads.index(lowest, start)
        except ValueError:
            index = loads.index(lowest)
        return candidates[index]


class LeastLatency(Strategy):
    """Lowest EWMA latency, weighed by load: score = ewma x (in_flight + 1).

    The load factor keeps the fastest endpoint from taking everything under concurrency (the
    slower ones then get traffic, which also refreshes their EWMAs). Candidates without a sample
    are tried first, but only while idle, so a burst does not pile onto an unmeasured endpoint.
    `metric` is "ttft" (streams), "total" (everything else), or "auto": TTFT once any candidate
    has a TTFT sample, else total time, so endpoints are always compared on the same measure.
    `explore` is the chance of a uniform random pick instead, to re-measure endpoints that lost.
    """

    name = "least_latency"

    def __init__(
        self,
        metric: Literal["auto", "ttft", "total"] = "auto",
        explore: float = 0.0,
        seed: int | None = None,
    ) -> None:
        if metric not in ("auto", "ttft", "total"):
            raise ValueError(f"metric must be auto, ttft or total, got {metric!r}")
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore}")
        self.metric = metric
        self.explore = explore
        self._rng = random.Random(seed)
        self._fallback = LeastOutstanding()
        self._start = 0

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        count = len(candidates)
        if self.explore and self._rng.random() < self.explore:
            return candidates[self._rng.randrange(count)]
        stats = [c.stats for c in candidates]
        latencies = [s.ttft_ewma for s in stats]
        if self.metric == "total" or (self.metric == "auto" and latencies.count(None) == count):
            latencies = [s.latency_ewma for s in stats]
        loads = [s.in_flight for s in stats]
        best_index = -1
        best_score = 0.0
        start = self._start % count
        self._start = start + 1
        for offset in range(count):
            index = (start + offset) % count
            latency = latencies[index]
            if latency is None:
                if loads[index] == 0:
                    return candidates[index]  # explore an idle, unmeasured endpoint
                continue
            score = latency * (loads[index] + 1)
            if best_index < 0 or score < best_score:
                best_index, best_score = index, score
        if best_index < 0:  # nothing measured and everything busy
            return self._fallback._pick(candidates, key)
        return candidates[best_index]


class PowerOfTwo(Strategy):
    """Two distinct random candidates, the one with fewer in flight (ties: the first drawn)."""

    name = "power_of_two"

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        count = len(candidates)
        if count == 1:
            return candidates[0]
        randrange = self._rng.randrange
        first = randrange(count)
        second = randrange(count - 1)
        if second >= first:
            second += 1
        a, b = candidates[first], candidates[second]
        return b if b.stats.in_flight < a.stats.in_flight else a


class ConsistentHash(Strategy):
    """Affinity: the same key goes to the same endpoint; a change moves only ~1/n of the keys.

    A hash ring with `vnodes` points per endpoint, keyed by name (stable across restarts and
    across Junction processes). Requests without a key go to the least outstanding endpoint.
    The ring is rebuilt only when a never-seen name appears or it holds many departed names.
    """

    name = "consistent_hash"

    def __init__(self, vnodes: int = 160) -> None:
        if vnodes < 1:
            raise ValueError(f"vnodes must be >= 1, got {vnodes}")
        self.vnodes = vnodes
        self._ring = _Ring(vnodes)
        self._names: list[str] = []
        self._index: dict[str, int] = {}
        self._fallback = LeastOutstanding()

    def pick(
        self, candidates: Sequence[E], key: str | None = None, exclude: Collection[str] = ()
    ) -> E | None:
        if key is None:
            return self._fallback.pick(candidates, None, exclude)
        if not candidates:
            return None
        index = self._lookup(candidates, key, exclude)
        return None if index is None else candidates[index]

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        picked = self.pick(candidates, key)
        assert picked is not None  # candidates is not empty and nothing is excluded
        return picked

    def _lookup(self, candidates: Sequence[E], key: str, exclude: Collection[str]) -> int | None:
        """Index in `candidates` of the key's owner, or None when every candidate is excluded."""
        names = [c.name for c in candidates]
        if names != self._names:
            self._names = names
            self._index = {name: i for i, name in enumerate(names)}
            ring, limit = self._ring, 2 * len(names) + 8
            if not ring.names.issuperset(names) or len(ring.names) > limit:
                # keep departed names (they may come back) unless they crowd the ring
                if len(ring.names.union(names)) > limit:
                    ring = _Ring(self.vnodes)
                self._ring = ring.with_names(names)
        owner = self._ring.lookup(_hash64(key), self._index, exclude)
        return None if owner is None else self._index[owner]


class CacheAware(Strategy):
    """Prefix affinity for KV/prefix-cache reuse, with a load cap.

    The key is the prompt (or whatever identifies its cacheable prefix); its first
    `prefix_chars` characters are hashed onto a consistent-hash ring, so requests sharing that
    prefix land on the same endpoint. If that endpoint has more than `cap` x the mean in-flight
    count of the candidates (and more than `min_load`, so light traffic keeps its affinity), the
    request goes to the least outstanding endpoint instead. No key: least outstanding.
    """

    name = "cache_aware"

    def __init__(
        self, prefix_chars: int = 1024, cap: float = 2.0, min_load: int = 4, vnodes: int = 160
    ) -> None:
        if prefix_chars < 1:
            raise ValueError(f"prefix_chars must be >= 1, got {prefix_chars}")
        if cap < 1.0:
            raise ValueError(f"cap must be >= 1, got {cap}")
        if min_load < 0:
            raise ValueError(f"min_load must be >= 0, got {min_load}")
        self.prefix_chars = prefix_chars
        self.cap = cap
        self.min_load = min_load
        self._hash = ConsistentHash(vnodes)
        self._fallback = LeastOutstanding()

    def pick(
        self, candidates: Sequence[E], key: str | None = None, exclude: Collection[str] = ()
    ) -> E | None:
        # exclusions are skipped on the ring walk, so a retry keeps the cached ring and index
        if key is None or not candidates:
            return self._fallback.pick(candidates, None, exclude)
        index = self._hash._lookup(candidates, key[: self.prefix_chars], exclude)
        if index is None:
            return None
        chosen = candidates[index]
        load = chosen.stats.in_flight
        if load > self.min_load:
            total = sum([c.stats.in_flight for c in candidates])
            if load > self.cap * total / len(candidates):
                return self._fallback.pick(candidates, None, exclude)
        return chosen

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        picked = self.pick(candidates, key)
        assert picked is not None  # candidates is not empty
        return picked


class Priority(Strategy):
    """Ordered failover: the first candidate in the configured order.

    Without `order` the candidates' own order is the priority (the caller passes them in config
    order); with `order`, listed names come first in that order and the rest follow as given.
    """

    name = "priority"

    def __init__(self, order: Sequence[str] | None = None) -> None:
        self.order = list(order) if order is not None else None
        self._rank = {name: i for i, name in enumerate(self.order or ())}
        self._names: list[str] = []
        self._best = 0

    def _pick(self, candidates: Sequence[E], key: str | None) -> E:
        if self.order is None:
            return candidates[0]
        names = [c.name for c in candidates]
        if names != self._names:
            self._names = names
            last = len(self._rank)
            ranks = [self._rank.get(name, last) for name in names]
            self._best = ranks.index(min(ranks))
        return candidates[self._best]


# --------------------------------------------------------------------------- factory

StrategyName = Literal[
    "round_robin",
    "weighted",
    "random",
    "least_outstanding",
    "least_latency",
    "power_of_two",
    "consistent_hash",
    "cache_aware",
    "priority",
]

_STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls
    for cls in (
        RoundRobin,
        Weighted,
        Random,
        LeastOutstanding,
        LeastLatency,
        PowerOfTwo,
        ConsistentHash,
        CacheAware,
        Priority,
    )
}

STRATEGY_NAMES: tuple[str, ...] = tuple(_STRATEGIES)
"""Every strategy name `make_strategy` accepts, as written in config (`routing.strategy`)."""


def make_strategy(name: str, **options: Any) -> Strategy:
    """A fresh strategy by its config name; `options` are that strategy's keyword arguments.

    Options: `random`/`power_of_two`: seed; `least_latency`: metric, explore, seed;
    `consistent_hash`: vnodes; `cache_aware`: prefix_chars, cap, min_load, vnodes;
    `priority`: order. Raises ValueError naming the problem for an unknown name or option.
    """
    try:
        cls = _STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown selection strategy {name!r}; expected one of {', '.join(STRATEGY_NAMES)}"
        ) from None
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"strategy {name!r}: bad options {sorted(options)}: {exc}") from None
