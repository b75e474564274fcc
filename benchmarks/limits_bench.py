"""What rate limits cost on the `/v1` hot path: the same `junction --mode serve` with limits off,
with limits counted in memory, and with limits counted in Redis, against one zero-latency
upstream, measured in the same run. Figures are ratios and paired differences, never bare
times:

- concurrency 32: requests/s with limits / requests/s without, from alternating rounds;
- concurrency 1: added latency per request (p50, p99) by paired subtraction.

Every process serves the same key; "on" gives it a requests-per-minute limit far above what the
run sends, so every call is counted and none refused. Needs `redis-server` on PATH (Debian's,
as .ci/peers.d/redis.sh installs), started here on a free loopback port without persistence.

    python benchmarks/limits_bench.py [--pairs 1000] [--seconds 3] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.router_bench import BODY, MODEL, pct, spawn

HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer bench-key"}
JUNCTION = str(Path(sys.executable).with_name("junction"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_junction(tmp: Path, name: str, upstream: str, extra: dict[str, Any]) -> tuple[Any, str]:
    limits = {"requests_per_minute": 10_000_000} if extra else None
    doc: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp}/{name}.db"},
        "server": {"api_keys": [{"key": "bench-key", "name": "bench", "limits": limits}]},
        "backends": {"up": {"type": "openai", "url": f"{upstream}/v1", "models": [MODEL]}},
        "routing": {"health": {"enabled": False}},
        "logging": {"access_log": False},
        **extra,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    process = subprocess.Popen(
        [JUNCTION, "--mode", "serve", "--config", str(path), "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        found = re.search(r"listening on http://\S+:(\d+)", line)
        if found:
            return process, f"http://127.0.0.1:{found.group(1)}/v1/chat/completions"
    raise SystemExit(f"junction ({name}) exited before listening")


async def one(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with session.post(url, data=BODY, headers=HEADERS) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    return time.perf_counter() - started


async def rate(session: aiohttp.ClientSession, url: str, seconds: float, workers: int) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await one(session, url)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done / (time.perf_counter() - started)


async def measure(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for url in urls.values():  # warm every path
            for _ in range(200):
                await one(session, url)
        rates: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(args.rounds):
            for name, url in urls.items():
                rates[name].append(await rate(session, url, args.seconds, 32))
        off = sum(rates["off"])
        results: dict[str, Any] = {
            "throughput_ratio_c32": {
                name: round(sum(values) / off, 3) for name, values in rates.items() if name != "off"
            }
        }
        added: dict[str, dict[str, float]] = {}
        for name in ("memory", "redis"):
            diffs: list[float] = []
            for i in range(args.pairs):
                first, second = (urls[name], urls["off"]) if i % 2 else (urls["off"], urls[name])
                a = await one(session, first)
                b = await one(session, second)
                on, without = (a, b) if i % 2 else (b, a)
                diffs.append((on - without) * 1000)
            added[name] = {
                "added_p50_ms": round(pct(diffs, 0.5), 3),
                "added_p99_ms": round(pct(diffs, 0.99), 3),
            }
        results["added_latency_c1"] = added
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        redis_port = free_port()
        redis = subprocess.Popen(
            [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp_dir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        upstream, upstream_port = spawn("--serve", "upstream")
        base = f"http://127.0.0.1:{upstream_port}"
        processes: list[Any] = [redis, upstream]
        try:
            urls: dict[str, str] = {}
            for name, extra in (
                ("off", {}),
                ("memory", {"cluster": {}}),
                ("redis", {"cluster": {"redis_url": f"redis://127.0.0.1:{redis_port}/0"}}),
            ):
                process, urls[name] = start_junction(tmp, name, base, extra)
                processes.append(process)
            results = asyncio.run(measure(args, urls))
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(10)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, ratio in results["throughput_ratio_c32"].items():
        print(f"c=32 throughput, limits in {name} / limits off: {ratio}")
    for name, figures in results["added_latency_c1"].items():
        print(f"c=1 added latency, limits in {name}: p50 {figures['added_p50_ms']} ms, "
              f"p99 {figures['added_p99_ms']} ms")  # fmt: skip


if __name__ == "__main__":
    main()
