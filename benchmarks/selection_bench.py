"""Cost of one selection-strategy pick over 64 endpoints, against the 20 µs budget.

Each strategy picks from the same pool (mixed weights, loads and latencies, every endpoint
measured) with a rotating key: session ids for `consistent_hash`, 2 KiB prompts for
`cache_aware`. "retry" is a second pick for the same request excluding the endpoint the first
chose, as a failover does (timed as pick + retry, minus the pick). The ratio
is pick cost / 20 µs (below 1 meets the target). The ring rebuild a new endpoint triggers
in `consistent_hash`/`cache_aware` is timed separately: it is paid once per membership change,
not per pick.

    python benchmarks/selection_bench.py [--endpoints 64] [--number 20000] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import timeit
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from router_core import STRATEGY_NAMES, Endpoint, make_strategy

TARGET_US = 20.0


def make_pool(count: int) -> list[Endpoint[None]]:
    rng = random.Random(42)
    pool = [Endpoint(f"backend-{i:02d}", None, weight=1 + i % 4) for i in range(count)]
    for endpoint in pool:
        endpoint.stats.in_flight = rng.randrange(8)
        endpoint.stats.observe_ttft(rng.uniform(0.05, 0.5))
        endpoint.stats.succeed(rng.uniform(0.2, 3.0))
    return pool


def make_keys(strategy: str) -> list[str]:
    if strategy == "cache_aware":
        return [f"system prompt family {i}: " + "be helpful and precise. " * 90 for i in range(256)]
    return [f"session-{i:08x}" for i in range(1024)]


def per_pick_us(call: Callable[[], object], number: int) -> float:
    call()  # warm caches (rings, counters) as a running router would have
    best = min(timeit.repeat(call, number=number, repeat=5))
    return best / number * 1e6


def time_strategy(name: str, pool: list[Endpoint[None]], number: int) -> tuple[float, float]:
    """(pick µs, retry pick µs): a retry excludes the endpoint the pick before it chose."""
    options: dict[str, Any] = {"seed": 1} if name in ("random", "power_of_two") else {}
    strategy = make_strategy(name, **options)
    keys = itertools.cycle(make_keys(name))

    def pick() -> object:
        return strategy.pick(pool, next(keys))

    def pick_then_retry() -> object:
        key = next(keys)
        first = strategy.pick(pool, key)
        assert first is not None
        return strategy.pick(pool, key, (first.name,))

    pick_us = per_pick_us(pick, number)
    pair_us = per_pick_us(pick_then_retry, number)
    return pick_us, max(0.0, pair_us - pick_us)


def bench(count: int, number: int) -> dict[str, Any]:
    pool = make_pool(count)
    rows = []
    for name in STRATEGY_NAMES:
        pick_us, retry_us = time_strategy(name, pool, number)
        rows.append(
            {
                "strategy": name,
                "pick_us": round(pick_us, 2),
                "retry_pick_us": round(retry_us, 2),
                "target_us": TARGET_US,
                "ratio": round(pick_us / TARGET_US, 3),
                "retry_ratio": round(retry_us / TARGET_US, 3),
            }
        )
    # membership change: a new endpoint joins, the ring is rebuilt once
    grown = [*pool, Endpoint("backend-new", None)]
    rebuilds = []
    for _ in range(5):
        strategy = make_strategy("consistent_hash")
        strategy.pick(pool, "warm")
        started = timeit.default_timer()
        strategy.pick(grown, "k")
        rebuilds.append(timeit.default_timer() - started)
    return {
        "endpoints": count,
        "rows": rows,
        "ring_rebuild_ms": round(min(rebuilds) * 1e3, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=64)
    parser.add_argument("--number", type=int, default=20_000, help="picks per timing repeat")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = bench(args.endpoints, args.number)
    if args.json:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Selection pick cost, {result['endpoints']} endpoints (target {TARGET_US:g} µs)"
    )
    for column in ("strategy", "pick µs", "target µs", "ratio", "retry pick µs", "retry ratio"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in result["rows"]:
        table.add_row(
            row["strategy"],
            f"{row['pick_us']:.2f}",
            f"{row['target_us']:g}",
            f"{row['ratio']:.3f}",
            f"{row['retry_pick_us']:.2f}",
            f"{row['retry_ratio']:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(
        f"consistent_hash ring rebuild when an endpoint joins ({result['endpoints'] + 1} x 160 "
        f"points): {result['ring_rebuild_ms']:.2f} ms, once per membership change"
    )


if __name__ == "__main__":
    main()
