"""Selection strategies: exact orders, proportions and affinities, measured over many picks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from router_core import (
    STRATEGY_NAMES,
    BreakerSettings,
    CircuitBreaker,
    Endpoint,
    EndpointStats,
    HealthChecker,
    StrategyName,
    make_strategy,
)


def endpoints(count: int, weights: list[int] | None = None) -> list[Endpoint[None]]:
    return [Endpoint(f"e{i}", None, weight=weights[i] if weights else 1) for i in range(count)]


def names(picked: list[Any]) -> list[str]:
    return [endpoint.name for endpoint in picked]


def pick_names(
    strategy: Any, candidates: list[Any], times: int, key: str | None = None
) -> list[str]:
    return [strategy.pick(candidates, key).name for _ in range(times)]


# --------------------------------------------------------------------------- common behaviour


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_every_strategy_picks_a_candidate_and_honours_exclude(name: str) -> None:
    pool = endpoints(64)
    strategy = make_strategy(name)
    for i in range(200):
        picked = strategy.pick(pool, f"key-{i}")
        assert picked in pool
    tried = {f"e{i}" for i in range(63)}
    for i in range(50):
        assert strategy.pick(pool, f"key-{i}", exclude=tried) is pool[63]
    assert strategy.pick(pool, "key", exclude={e.name for e in pool}) is None
    assert strategy.pick([], "key") is None


def test_every_strategy_name_is_accepted_by_the_config() -> None:
    from junction.config import JunctionConfig

    assert set(get_args(StrategyName)) == set(STRATEGY_NAMES)
    for name in STRATEGY_NAMES:
        assert (
            JunctionConfig.model_validate({"routing": {"strategy": name}}).routing.strategy == name
        )
    with pytest.raises(ValidationError):
        JunctionConfig.model_validate({"routing": {"strategy": "fastest"}})


def test_make_strategy_rejects_unknown_names_and_options() -> None:
    with pytest.raises(ValueError, match=r"unknown selection strategy 'fastest'.*round_robin"):
        make_strategy("fastest")
    with pytest.raises(ValueError, match="strategy 'round_robin': bad options"):
        make_strategy("round_robin", seed=1)
    with pytest.raises(ValueError, match="cap must be >= 1"):
        make_strategy("cache_aware", cap=0.5)


@dataclass(frozen=True)
class Agent:
    """A caller's own endpoint type (as the a2a hub might have): only name, weight, stats."""

    name: str
    url: str
    weight: int = 1
    stats: EndpointStats = field(default_factory=EndpointStats)


def test_strategies_accept_any_endpoint_like_type() -> None:
    agents = [Agent(f"agent{i}", f"http://127.0.0.1:{9000 + i}") for i in range(4)]
    for name in STRATEGY_NAMES:
        picked = make_strategy(name).pick(agents, "session-1")
        assert picked is not None
        assert picked.url.startswith("http://")


# --------------------------------------------------------------------------- round robin, weighted


def test_round_robin_exact_order_and_retry_exclusion() -> None:
    pool = endpoints(3)
    strategy = make_strategy("round_robin")
    assert pick_names(strategy, pool, 7) == ["e0", "e1", "e2", "e0", "e1", "e2", "e0"]
    # a retry skips what it already tried
    assert strategy.pick(pool, exclude={"e1"}) is not None
    assert names([strategy.pick(pool, exclude={"e0", "e2"}) for _ in range(3)]) == ["e1"] * 3


def test_weighted_is_smooth_and_exact_over_a_cycle() -> None:
    pool = endpoints(3, weights=[5, 1, 1])
    strategy = make_strategy("weighted")
    # nginx's smooth weighted round robin sequence for 5/1/1
    assert pick_names(strategy, pool, 7) == ["e0", "e0", "e1", "e0", "e2", "e0", "e0"]
    counts = Counter(pick_names(strategy, pool, 70))
    assert counts == {"e0": 50, "e1": 10, "e2": 10}


def test_weighted_proportions_survive_a_candidate_leaving_and_returning() -> None:
    pool = endpoints(3, weights=[3, 2, 1])
    strategy = make_strategy("weighted")
    assert Counter(pick_names(strategy, pool, 6)) == {"e0": 3, "e1": 2, "e2": 1}
    # e0 drops out (unhealthy): the other two share 2:1
    assert Counter(pick_names(strategy, pool[1:], 30)) == {"e1": 20, "e2": 10}
    # it returns; over whole cycles the 3:2:1 proportions hold again
    assert Counter(pick_names(strategy, pool, 60)) == {"e0": 30, "e1": 20, "e2": 10}


def test_weighted_notices_a_weight_change() -> None:
    pool = endpoints(2, weights=[1, 1])
    strategy = make_strategy("weighted")
    assert Counter(pick_names(strategy, pool, 10)) == {"e0": 5, "e1": 5}
    pool[0].weight = 4
    assert Counter(pick_names(strategy, pool, 50)) == {"e0": 40, "e1": 10}


# --------------------------------------------------------------------------- random


def test_random_is_roughly_uniform_and_reproducible_with_a_seed() -> None:
    pool = endpoints(16)
    counts = Counter(pick_names(make_strategy("random", seed=7), pool, 16_000))
    assert set(counts) == {e.name for e in pool}
    assert min(counts.values()) > 850
    assert max(counts.values()) < 1150
    first = pick_names(make_strategy("random", seed=3), pool, 50)
    assert pick_names(make_strategy("random", seed=3), pool, 50) == first


# --------------------------------------------------------------------------- load-aware


def test_least_outstanding_prefers_idle_and_spreads_ties() -> None:
    pool = endpoints(3)
    pool[0].stats.in_flight, pool[1].stats.in_flight, pool[2].stats.in_flight = 3, 0, 2
    strategy = make_strategy("least_outstanding")
    assert pick_names(strategy, pool, 3) == ["e1"] * 3
    # requests that never finish: picks keep the pool level
    fresh = endpoints(4)
    for _ in range(40):
        picked = strategy.pick(fresh)
        assert picked is not None
        picked.stats.begin()
    assert [e.stats.in_flight for e in fresh] == [10, 10, 10, 10]
    # an idle pool is not all sent to the first endpoint
    idle = endpoints(4)
    assert set(pick_names(strategy, idle, 4)) == {"e0", "e1", "e2", "e3"}


def test_power_of_two_prefers_the_less_loaded_of_two() -> None:
    pool = endpoints(4)
    for endpoint, load in zip(pool, [0, 1, 2, 3], strict=True):
        endpoint.stats.in_flight = load
    counts = Counter(pick_names(make_strategy("power_of_two", seed=11), pool, 12_000))
    # the busiest loses every pairing; the idlest wins whenever drawn (P = 1/2),
    # e1 when drawn without e0 (1/3), e2 only against e3 (1/6)
    assert counts["e3"] == 0
    assert 5_600 < counts["e0"] < 6_400
    assert 3_600 < counts["e1"] < 4_400
    assert 1_600 < counts["e2"] < 2_400
    assert names([make_strategy("power_of_two").pick(pool[2:]) for _ in range(20)]) == ["e2"] * 20


def test_power_of_two_keeps_load_tighter_than_random() -> None:
    def spread(strategy_name: str) -> int:
        pool = endpoints(16)
        strategy = make_strategy(strategy_name, seed=5)
        for _ in range(1_600):
            picked = strategy.pick(pool)
            assert picked is not None
            picked.stats.begin()
        loads = [e.stats.in_flight for e in pool]
        return max(loads) - min(loads)

    assert spread("power_of_two") <= 4
    assert spread("random") > 2 * spread("power_of_two")


def test_least_latency_prefers_the_fastest_and_weighs_load() -> None:
    pool = endpoints(3)
    for endpoint, ttft in zip(pool, [0.3, 0.1, 0.2], strict=True):
        endpoint.stats.observe_ttft(ttft)
    strategy = make_strategy("least_latency")
    assert pick_names(strategy, pool, 5) == ["e1"] * 5
    # 0.1 s x 4 in flight scores worse than 0.2 s idle
    pool[1].stats.in_flight = 3
    assert pick_names(strategy, pool, 5) == ["e2"] * 5


def test_least_latency_explores_unsampled_endpoints_while_idle() -> None:
    pool = endpoints(3)
    pool[0].stats.observe_ttft(0.01)
    pool[1].stats.observe_ttft(0.02)
    strategy = make_strategy("least_latency")
    assert strategy.pick(pool) is pool[2]  # no sample yet: try it first
    pool[2].stats.begin()
    assert strategy.pick(pool) is pool[0]  # measuring it now: no pile-up on it
    pool[2].stats.observe_ttft(0.5)
    pool[2].stats.succeed()
    assert pick_names(strategy, pool, 5) == ["e0"] * 5  # measured slow: left alone
    # nothing measured and everything busy: least outstanding decides
    busy = endpoints(3)
    for endpoint, load in zip(busy, [2, 1, 3], strict=True):
        endpoint.stats.in_flight = load
    assert strategy.pick(busy) is busy[1]


def test_least_latency_metric_choice() -> None:
    pool = endpoints(2)
    pool[0].stats.succeed(latency=0.1)  # fast non-streamed answers
    pool[1].stats.succeed(latency=0.9)
    assert make_strategy("least_latency").pick(pool) is pool[0]  # auto: no TTFT anywhere -> total
    pool[0].stats.observe_ttft(0.4)
    pool[1].stats.observe_ttft(0.2)
    assert make_strategy("least_latency").pick(pool) is pool[1]  # auto: TTFT once there is some
    assert make_strategy("least_latency", metric="total").pick(pool) is pool[0]
    assert make_strategy("least_latency", metric="ttft").pick(pool) is pool[1]


def test_least_latency_explore_reaches_the_slow_ones() -> None:
    pool = endpoints(4)
    for endpoint, ttft in zip(pool, [0.1, 0.5, 0.6, 0.7], strict=True):
        endpoint.stats.observe_ttft(ttft)
    counts = Counter(pick_names(make_strategy("least_latency", explore=0.2, seed=2), pool, 4_000))
    # 80% greedy + 20% uniform: e0 gets 0.8 + 0.05, each other 0.05
    assert 3_300 < counts["e0"] < 3_500
    assert all(150 < counts[f"e{i}"] < 250 for i in (1, 2, 3))


# --------------------------------------------------------------------------- affinity


def owners(strategy: Any, pool: list[Any], keys: list[str]) -> dict[str, str]:
    return {key: strategy.pick(pool, key).name for key in keys}


KEYS = [f"session-{i}" for i in range(20_000)]


def test_consistent_hash_is_stable_and_balanced() -> None:
    pool = endpoints(10)
    first = owners(make_strategy("consistent_hash"), pool, KEYS)
    # another instance (another process, after a restart) agrees
    assert owners(make_strategy("consistent_hash"), list(reversed(pool)), KEYS) == first
    shares = Counter(first.values())
    assert len(shares) == 10
    assert all(0.07 < count / len(KEYS) < 0.13 for count in shares.values()), shares


def test_consistent_hash_adding_one_endpoint_moves_only_its_share() -> None:
    pool = endpoints(11)
    strategy = make_strategy("consistent_hash")
    before = owners(strategy, pool[:10], KEYS)
    after = owners(strategy, pool, KEYS)
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(after[key] == "e10" for key in moved)  # every move is to the newcomer
    fraction = len(moved) / len(KEYS)
    assert 0.06 < fraction < 0.13  # ~1/11 = 0.091


def test_consistent_hash_removing_one_endpoint_moves_only_its_keys() -> None:
    pool = endpoints(10)
    strategy = make_strategy("consistent_hash")
    before = owners(strategy, pool, KEYS)
    after = owners(strategy, [e for e in pool if e.name != "e3"], KEYS)
    moved = {key for key in KEYS if before[key] != after[key]}
    assert moved == {key for key in KEYS if before[key] == "e3"}
    fraction = len(moved) / len(KEYS)
    assert 0.06 < fraction < 0.14  # ~1/10


def test_consistent_hash_exclusion_and_flaps_match_a_smaller_ring_without_rebuilds() -> None:
    pool = endpoints(8)
    strategy = make_strategy("consistent_hash")
    keys = KEYS[:2_000]
    full = owners(strategy, pool, keys)
    ring = strategy._ring  # type: ignore[attr-defined]
    without_e5 = owners(strategy, [e for e in pool if e.name != "e5"], keys)
    excluded = {key: strategy.pick(pool, key, exclude={"e5"}).name for key in keys}  # type: ignore[union-attr]
    assert excluded == without_e5
    assert owners(strategy, pool, keys) == full  # e5 back: its keys come back to it
    assert strategy._ring is ring  # type: ignore[attr-defined]
    # the walk gives what a fresh ring over the smaller set gives
    assert (
        owners(make_strategy("consistent_hash"), [e for e in pool if e.name != "e5"], keys)
        == without_e5
    )


def test_consistent_hash_without_a_key_balances_load() -> None:
    pool = endpoints(3)
    pool[0].stats.in_flight = 5
    pool[2].stats.in_flight = 5
    assert make_strategy("consistent_hash").pick(pool, None) is pool[1]


def test_cache_aware_keeps_a_prefix_on_one_endpoint() -> None:
    pool = endpoints(8)
    strategy = make_strategy("cache_aware", prefix_chars=64)
    system = "You are a careful assistant. " * 4  # > 64 characters shared
    picked = {strategy.pick(pool, system + f"question {i}").name for i in range(100)}  # type: ignore[union-attr]
    assert len(picked) == 1
    spread = Counter(
        strategy.pick(pool, f"prompt family {i} " * 8).name  # type: ignore[union-attr]
        for i in range(400)
    )
    assert len(spread) == 8
    assert max(spread.values()) < 100  # distinct prefixes spread (mean 50)


def test_cache_aware_load_cap_falls_back_to_least_outstanding() -> None:
    pool = endpoints(4)
    strategy = make_strategy("cache_aware", cap=2.0, min_load=0)
    home = strategy.pick(pool, "shared prefix")
    assert home is not None
    others = [e for e in pool if e is not home]
    home.stats.in_flight = 4
    for endpoint in others:
        endpoint.stats.in_flight = 2
    assert strategy.pick(pool, "shared prefix") is home  # 4 <= 2 x mean 2.5
    home.stats.in_flight = 10
    for endpoint, load in zip(others, [3, 1, 2], strict=True):
        endpoint.stats.in_flight = load
    fallback = strategy.pick(pool, "shared prefix")  # 10 > 2 x mean 4
    assert fallback is not None
    assert fallback.stats.in_flight == 1


def test_cache_aware_hot_prefix_cannot_overload_one_endpoint() -> None:
    pool = endpoints(4)
    strategy = make_strategy("cache_aware", cap=2.0, min_load=2)
    for _ in range(200):  # requests that never finish, all with the same prefix
        picked = strategy.pick(pool, "hot system prompt")
        assert picked is not None
        picked.stats.begin()
    loads = sorted(e.stats.in_flight for e in pool)
    mean = sum(loads) / len(loads)
    assert loads[-1] <= 2.0 * mean + 1
    assert loads[-1] > loads[0]  # the home endpoint still got its extra share


def test_cache_aware_light_load_keeps_affinity() -> None:
    pool = endpoints(4)
    strategy = make_strategy("cache_aware", cap=2.0, min_load=4)
    home = strategy.pick(pool, "prefix")
    assert home is not None
    home.stats.in_flight = 3  # far above 2 x mean, but within min_load
    assert strategy.pick(pool, "prefix") is home


# --------------------------------------------------------------------------- priority


def test_priority_fails_over_in_configured_order() -> None:
    pool = endpoints(3)
    strategy = make_strategy("priority")
    assert pick_names(strategy, pool, 3) == ["e0"] * 3
    assert strategy.pick(pool[1:]) is pool[1]  # e0 unhealthy: filtered out by the caller
    assert strategy.pick(pool, exclude={"e0", "e1"}) is pool[2]  # a retry
    ordered = make_strategy("priority", order=["e2", "e0"])
    assert ordered.pick(pool) is pool[2]
    assert ordered.pick(pool[:2]) is pool[0]
    assert ordered.pick(pool[1:2]) is pool[1]  # unlisted names come last


# --------------------------------------------------------------------------- endpoint


def test_endpoint_availability_names_the_reason() -> None:
    clock = [0.0]
    breaker = CircuitBreaker(BreakerSettings(consecutive_failures=1), clock=lambda: clock[0])

    async def probe() -> None:
        return None

    health = HealthChecker(probe)
    endpoint = Endpoint("gpu1", "http://gpu1", breaker=breaker, health=health)
    assert endpoint.available() and endpoint.unavailable_reason() is None
    assert breaker.name == "gpu1"
    breaker.record_failure()
    assert not endpoint.available()
    assert endpoint.unavailable_reason() == "circuit open (next probe in 5.0 s)"
    clock[0] = 5.0
    assert endpoint.available()
    assert breaker.allow()
    assert endpoint.unavailable_reason() == "circuit half_open (probe in progress)"
    breaker.record_success()
    health._healthy = False
    health.last_error = "ConnectError: refused"
    assert endpoint.unavailable_reason() == "unhealthy: ConnectError: refused"
    with pytest.raises(ValueError, match="weight must be >= 1"):
        Endpoint("bad", None, weight=0)


def test_weighted_retries_share_the_rest_and_leave_the_cycle_intact() -> None:
    pool = endpoints(3, weights=[3, 2, 1])
    strategy, untouched = make_strategy("weighted"), make_strategy("weighted")
    assert pick_names(strategy, pool, 6) == pick_names(untouched, pool, 6)  # one whole cycle
    # retries that exclude e0 split 2:1 among the others, smoothly
    retries = [strategy.pick(pool, exclude={"e0"}) for _ in range(30)]
    assert Counter(names(retries)) == {"e1": 20, "e2": 10}
    # whole retry cycles leave the counters as they were: the main sequence carries on unchanged
    assert pick_names(strategy, pool, 60) == pick_names(untouched, pool, 60)
