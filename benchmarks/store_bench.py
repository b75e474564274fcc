"""What PostgreSQL adds over SQLite on the A2A path, measured in one run.

`junction --mode serve` twice (access log off), one on an SQLite file and one on a throwaway
PostgreSQL cluster on loopback (tests/postgres.py: initdb, pg_ctl, fsync off as a CI box would
run it; a production server with fsync on adds its commit latency), both in front of the same
fast agent (benchmarks/a2a_bench.py's, answering at once), and this client calling the agent
directly and through each Junction's `/a2a/agents/bench`, round robin request by request at
concurrency 1; then throughput at concurrency 16 through each. Reports p50/p99, the added time
over direct for each store, and PostgreSQL's added p50 minus SQLite's.

    python benchmarks/store_bench.py [--requests 2000] [--seconds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

import aiohttp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.a2a_bench import free_port, pct, send_once, throughput
from tests.postgres import postgres_server


def start_junction(
    tmp: str, name: str, store_url: str, agent_url: str, port: int
) -> subprocess.Popen[bytes]:
    config = os.path.join(tmp, f"{name}.yaml")
    with open(config, "w") as file:
        file.write(
            f"store: {{url: '{store_url}'}}\n"
            f"a2a_agents:\n  bench: {{url: '{agent_url}'}}\n"
            "logging: {access_log: false, level: warning}\n"
        )
    junction = shutil.which("junction") or os.path.join(os.path.dirname(sys.executable), "junction")
    log = open(os.path.join(tmp, f"{name}.log"), "wb")  # noqa: SIM115 (the child keeps it)
    process = subprocess.Popen(
        [junction, "--mode", "serve", "--config", config, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    with open(os.path.join(tmp, f"{name}.log")) as file:
        tail = file.read()[-2000:]
    raise RuntimeError(f"junction on {name} did not answer within 60 s:\n{tail}")


async def measure(urls: dict[str, str], requests: int, seconds: float) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        for _ in range(200):
            for url in urls.values():
                await send_once(session, url)
        samples: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(requests):
            for name, url in urls.items():
                samples[name].append(await send_once(session, url))
        rates = {name: await throughput(session, url, 16, seconds) for name, url in urls.items()}
    results: dict[str, Any] = {}
    for name, values in samples.items():
        results[f"{name}_p50_ms"] = pct(values, 0.5)
        results[f"{name}_p99_ms"] = pct(values, 0.99)
        results[f"{name}_rps_c16"] = rates[name]
    for name in ("sqlite", "postgresql"):
        results[f"{name}_added_p50_ms"] = results[f"{name}_p50_ms"] - results["direct_p50_ms"]
        results[f"{name}_rps_vs_direct"] = rates[name] / rates["direct"]
    results["postgresql_minus_sqlite_p50_ms"] = (
        results["postgresql_p50_ms"] - results["sqlite_p50_ms"]
    )
    results["postgresql_over_sqlite_p50"] = results["postgresql_p50_ms"] / results["sqlite_p50_ms"]
    results["postgresql_over_sqlite_rps_c16"] = rates["postgresql"] / rates["sqlite"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    agent_port, sqlite_port, pg_port = free_port(), free_port(), free_port()
    bench = os.path.join(ROOT, "benchmarks", "a2a_bench.py")
    with tempfile.TemporaryDirectory() as tmp, postgres_server() as postgres:
        agent = subprocess.Popen(
            [sys.executable, bench, "--serve-agent", str(agent_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert agent.stdout is not None and agent.stdout.readline().strip() == "READY"
        agent_url = f"http://127.0.0.1:{agent_port}"
        children = [agent]
        try:
            children.append(
                start_junction(
                    tmp, "sqlite", f"sqlite:///{tmp}/junction.db", agent_url, sqlite_port
                )
            )
            children.append(
                start_junction(tmp, "postgresql", postgres.database(), agent_url, pg_port)
            )
            results = asyncio.run(
                measure(
                    {
                        "direct": agent_url + "/",
                        "sqlite": f"http://127.0.0.1:{sqlite_port}/a2a/agents/bench",
                        "postgresql": f"http://127.0.0.1:{pg_port}/a2a/agents/bench",
                    },
                    args.requests,
                    args.seconds,
                )
            )
        finally:
            for child in children:
                child.terminate()
                child.wait(30)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"A2A SendMessage through junction --mode serve, fast agent, c=1, {args.requests} each:")
    print(f"  direct p50 {results['direct_p50_ms']:.3f} ms")
    for name in ("sqlite", "postgresql"):
        print(
            f"  {name:<10} p50 {results[f'{name}_p50_ms']:.3f} ms (added {results[f'{name}_added_p50_ms']:.3f} ms),"
            f" p99 {results[f'{name}_p99_ms']:.3f} ms; c=16 {results[f'{name}_rps_vs_direct']:.2f} of direct"
        )
    print(
        f"  PostgreSQL vs SQLite: p50 +{results['postgresql_minus_sqlite_p50_ms']:.3f} ms"
        f" (x{results['postgresql_over_sqlite_p50']:.2f}), c=16 throughput"
        f" x{results['postgresql_over_sqlite_rps_c16']:.2f}"
    )


if __name__ == "__main__":
    main()
