"""What owner forwarding adds: an MCP `tools/call` on a legacy (2025-11-25) session sent to the
replica that owns the session vs the same call sent to another replica, which carries it to the
owner (junction/http/forward.py), in one run.

Two `junction --mode serve` replicas on one throwaway redis-server (`cluster.redis_url`, loopback,
Debian's `redis-server`) and one SQLite file, each with the `mcp` SDK server of
tests/mcp_gateway/servers.py (`ok`) as its upstream; one session opened on replica A; then
`--calls` rounds, each calling `ok__echo` once on A (local) and once on B (forwarded), over one
keep-alive aiohttp connection per replica, one call at a time. Reports each path's p50 and p90,
the added p50 and the ratio.

    python benchmarks/forward_bench.py [--calls 400] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mcp_gateway.conftest import SERVERS, free_port, wait_port

JUNCTION = str(Path(sys.executable).with_name("junction"))
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def start_redis(tmp: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (bash .ci/run installs it)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", tmp],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, process)
    return process, f"redis://127.0.0.1:{port}/0"


def start_replica(tmp: str, name: str, redis: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = Path(tmp) / f"{name}.json"
    config.write_text(
        json.dumps(
            {
                "server": {"port": port},
                "store": {"url": f"sqlite:///{tmp}/j.db"},
                "cluster": {"redis_url": redis},
                "mcp_servers": {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}},
                "logging": {"access_log": False, "level": "warning"},
            }
        )
    )
    process = subprocess.Popen(
        [JUNCTION, "--mode", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "JUNCTION_REPLICA_ID": name},
    )
    wait_port(port, process, 60)
    return process, port


async def ready(http: aiohttp.ClientSession, base: str) -> None:
    for _ in range(600):
        async with http.get(f"{base}/health/ready") as reply:
            if reply.status == 200:
                return
        await asyncio.sleep(0.05)
    raise SystemExit(f"{base} did not become ready")


async def measure(calls: int, ports: tuple[int, int]) -> dict[str, Any]:
    local, other = (f"http://127.0.0.1:{port}" for port in ports)
    async with aiohttp.ClientSession() as a, aiohttp.ClientSession() as b:
        await ready(a, local)
        await ready(b, other)
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "bench", "version": "1"},
            },
        }
        async with a.post(f"{local}/mcp", json=init, headers=ACCEPT) as reply:
            session = reply.headers["mcp-session-id"]
            await reply.read()
        headers = {**ACCEPT, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"}
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with a.post(f"{local}/mcp", json=done, headers=headers) as reply:
            await reply.read()

        async def call(http: aiohttp.ClientSession, base: str, n: int) -> float:
            body = {
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {"name": "ok__echo", "arguments": {"message": "hi"}},
            }
            started = time.perf_counter()
            async with http.post(f"{base}/mcp", json=body, headers=headers) as reply:
                text = await reply.text()
            elapsed = time.perf_counter() - started
            if reply.status != 200 or '"hi"' not in text:
                raise SystemExit(f"{base}: {reply.status} {text[:200]}")
            return elapsed

        for n in range(20):  # warm both paths (connections, the owner lookup, the upstream)
            await call(a, local, n)
            await call(b, other, n)
        direct: list[float] = []
        carried: list[float] = []
        for n in range(calls):
            direct.append(await call(a, local, 1000 + 2 * n))
            carried.append(await call(b, other, 1001 + 2 * n))

    def quantiles(values: list[float]) -> tuple[float, float]:
        cuts = statistics.quantiles(values, n=10)
        return statistics.median(values) * 1000, cuts[8] * 1000

    (p50_local, p90_local), (p50_fwd, p90_fwd) = quantiles(direct), quantiles(carried)
    return {
        "calls": calls,
        "local_p50_ms": round(p50_local, 3),
        "local_p90_ms": round(p90_local, 3),
        "forwarded_p50_ms": round(p50_fwd, 3),
        "forwarded_p90_ms": round(p90_fwd, 3),
        "added_p50_ms": round(p50_fwd - p50_local, 3),
        "ratio_p50": round(p50_fwd / p50_local, 2),
        "load_avg": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            redis, url = start_redis(tmp)
            processes.append(redis)
            first, port_a = start_replica(tmp, "a", url)
            processes.append(first)
            second, port_b = start_replica(tmp, "b", url)
            processes.append(second)
            result = asyncio.run(measure(args.calls, (port_a, port_b)))
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(30)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"tools/call, c=1, {result['calls']} calls each (load avg {result['load_avg']}):\n"
        f"  on the owner     p50 {result['local_p50_ms']:.3f} ms  p90 {result['local_p90_ms']:.3f} ms\n"
        f"  on another       p50 {result['forwarded_p50_ms']:.3f} ms  p90 {result['forwarded_p90_ms']:.3f} ms\n"
        f"  added p50 {result['added_p50_ms']:.3f} ms, ratio {result['ratio_p50']:.2f}"
    )


if __name__ == "__main__":
    main()
