"""What PostgreSQL adds over SQLite on the A2A and ACP paths, measured in one run.

`junction --mode serve` twice (access log off), one on an SQLite file and one on a throwaway
PostgreSQL cluster on loopback (tests/postgres.py: initdb, pg_ctl, fsync off as a CI box would
run it; a production server with fsync on adds its commit latency), both in front of the same
fast agent (benchmarks/a2a_bench.py's, answering at once), and this client calling the agent
directly and through each Junction's `/a2a/agents/bench`, round robin request by request at
concurrency 1; then throughput at concurrency 16 through each. Reports p50/p99, the added time
over direct for each store, and PostgreSQL's added p50 minus SQLite's.

    python benchmarks/store_bench.py [--requests 2000] [--seconds 5] [--json]

`--path acp`: the ACP path instead. `junction --mode stdio` twice, as an editor runs it, one on
an SQLite file and one on the PostgreSQL cluster, in front of the test suite's fake
OpenAI-compatible model server (a short answer at once); a `session/prompt` to its answer
(each turn stores the prompt and the answer in the session's history), alternating between
the two agents at concurrency 1; p50/p99 of each and PostgreSQL's added p50 minus SQLite's.

    python benchmarks/store_bench.py --path acp [--requests 300] [--json]
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
from typing import Any

import aiohttp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.a2a_bench import free_port, pct, send_once, throughput
from benchmarks.serve_mode import start_serve
from tests.postgres import postgres_server


def start_junction(
    tmp: str, name: str, store_url: str, agent_url: str, port: int
) -> subprocess.Popen[bytes]:
    config = (
        f"store: {{url: '{store_url}'}}\n"
        f"a2a_agents:\n  bench: {{url: '{agent_url}'}}\n"
        "logging: {access_log: false, level: warning}\n"
    )
    return start_serve(tmp, name, config, port=port)[0]


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


async def acp_turns(requests: int) -> dict[str, Any]:
    """Turn time through `junction --mode stdio` on each store, alternating turn by turn."""
    from pathlib import Path

    from benchmarks.acp_bench import Client
    from tests.router_core.llm_servers import Reply, openai_server

    with tempfile.TemporaryDirectory() as tmp, postgres_server() as postgres:
        async with openai_server(models=["m1"]) as server:
            server.default = Reply(text="Hello there, this is a short answer.", usage=(5, 5))
            stores = {"sqlite": f"sqlite:///{tmp}/sessions.db", "postgresql": postgres.database()}
            agents: dict[str, tuple[Any, Client, str]] = {}
            junction = shutil.which("junction") or os.path.join(
                os.path.dirname(sys.executable), "junction"
            )
            try:
                for name, url in stores.items():
                    config = Path(tmp) / f"{name}.yaml"
                    config.write_text(
                        f"store: {{url: '{url}'}}\n"
                        f"backends: {{fake: {{type: openai, url: '{server.url}/v1', models: [m1]}}}}\n"
                        "acp: {default_model: m1}\nlogging: {level: error}\n"
                    )
                    process = await asyncio.create_subprocess_exec(
                        junction, "--mode", "stdio", "--config", str(config),
                        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=tmp,
                    )  # fmt: skip
                    client = Client(process)
                    agents[name] = (process, client, "")
                    await client.request(
                        "initialize", {"protocolVersion": 1, "clientCapabilities": {}}
                    )
                    new = await client.request("session/new", {"cwd": tmp, "mcpServers": []})
                    agents[name] = (process, client, new["result"]["sessionId"])

                async def turn(name: str, index: int) -> float:
                    _, client, sid = agents[name]
                    started = time.perf_counter()
                    answer = await client.request(
                        "session/prompt",
                        {"sessionId": sid, "prompt": [{"type": "text", "text": f"hi {index}"}]},
                    )
                    elapsed = time.perf_counter() - started
                    assert answer["result"]["stopReason"] == "end_turn", answer
                    return elapsed

                for index in range(20):  # imports, connections and caches warm up first
                    for name in stores:
                        await turn(name, index)
                samples: dict[str, list[float]] = {name: [] for name in stores}
                for index in range(requests):
                    for name in stores:
                        samples[name].append(await turn(name, index))
            finally:
                for process, client, _ in agents.values():
                    assert process.stdin is not None
                    process.stdin.close()
                    await process.wait()
                    client.reader.cancel()
    results: dict[str, Any] = {}
    for name, values in samples.items():
        results[f"{name}_p50_ms"] = pct(values, 0.5)
        results[f"{name}_p99_ms"] = pct(values, 0.99)
    results["postgresql_minus_sqlite_p50_ms"] = (
        results["postgresql_p50_ms"] - results["sqlite_p50_ms"]
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--path", choices=("a2a", "acp"), default="a2a")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.path == "acp":
        results = asyncio.run(acp_turns(args.requests or 300))
        if args.json:
            print(json.dumps(results, indent=2))
            return
        print(
            f"ACP session/prompt through junction --mode stdio, fake model, c=1, {args.requests or 300} each:"
        )
        for name in ("sqlite", "postgresql"):
            print(
                f"  {name:<10} p50 {results[f'{name}_p50_ms']:.3f} ms, p99 {results[f'{name}_p99_ms']:.3f} ms"
            )
        print(f"  PostgreSQL vs SQLite: p50 +{results['postgresql_minus_sqlite_p50_ms']:.3f} ms")
        return
    args.requests = args.requests or 2000
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
        children: list[subprocess.Popen[Any]] = [agent]
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
