"""Throughput of `junction --mode serve` with `server.workers: 2` vs 1, measured in one run.

Four kinds of process: the zero-latency OpenAI-compatible upstream of benchmarks/router_bench.py,
Junction with one worker, Junction with two (the same config but `server.workers`; access log
off, SQLite store, both listening the whole time), and the load generator posting
`/v1/chat/completions` over `--concurrency` keep-alive connections: `wrk` (Debian's package,
C, one thread) when it is installed, which leaves more of a small machine to Junction, else
this script (aiohttp, one pooled session per round; `--client aiohttp` forces it). Rounds alternate one
worker / two workers, so load from elsewhere on the machine falls on both alike; reports each
one's median requests/s, their ratio (two / one), and the CPU time Junction's processes spent
per request (from /proc, all workers summed).

On a machine with C cores the ceiling is what is left of them once the upstream and the load
generator have theirs: on a 2-core box they share the cores with Junction, so two workers can
at best take the share one worker leaves idle.

    python benchmarks/workers_bench.py [--seconds 3] [--rounds 5] [--concurrency 32] [--json]
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
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import aiohttp

from benchmarks.router_bench import BODY, MODEL, rate, spawn


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_junction(tmp: str, workers: int, upstream: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = os.path.join(tmp, f"w{workers}.yaml")
    with open(config, "w") as file:
        file.write(
            f"server: {{port: {port}, workers: {workers}}}\n"
            f"store: {{url: 'sqlite:///{tmp}/w{workers}.db'}}\n"
            f"backends: {{up: {{type: openai, url: '{upstream}/v1', models: [{MODEL}]}}}}\n"
            "logging: {access_log: false, level: warning}\n"
        )
    junction = shutil.which("junction") or os.path.join(os.path.dirname(sys.executable), "junction")
    log = open(os.path.join(tmp, f"w{workers}.log"), "wb")  # noqa: SIM115 (the child keeps it)
    process = subprocess.Popen(
        [junction, "--mode", "serve", "--config", config], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        raise SystemExit(f"junction with {workers} workers did not start: see {log.name}")
    seen: set[str] = set()
    while len(seen) < workers and time.monotonic() < deadline:  # every worker up
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as r:
            seen.add(r.headers.get("x-junction-replica", ""))
    return process, port


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its children (the workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    children = f"/proc/{pid}/task/{pid}/children"
    if os.path.exists(children):
        pids += [int(p) for p in open(children).read().split()]  # noqa: SIM115
    for one in pids:
        with open(f"/proc/{one}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[%s]]
wrk.headers["Content-Type"] = "application/json"
"""


async def wrk_rate(url: str, seconds: float, concurrency: int, script: str) -> float:
    process = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", script, url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    for line in out.decode().splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise SystemExit(f"wrk said:\n{out.decode()}")


async def measure(urls: dict[int, str], pids: dict[int, int], args: Any) -> dict[str, Any]:
    rates: dict[int, list[float]] = {1: [], 2: []}
    cpu: dict[int, list[float]] = {1: [], 2: []}
    script = os.path.join(args.tmp, "post.lua")

    async def one_round(url: str, seconds: float) -> float:
        if args.client == "wrk":
            return await wrk_rate(url, seconds, args.concurrency, script)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
            return await rate(session, url, seconds, args.concurrency)

    for workers in (1, 2):  # warm up: connections, imports, caches
        await one_round(urls[workers], 1.0)
    for i in range(args.rounds):
        for workers in (1, 2) if i % 2 == 0 else (2, 1):
            before = tree_cpu(pids[workers])
            done = await one_round(urls[workers], args.seconds)
            spent = tree_cpu(pids[workers]) - before
            rates[workers].append(done)
            cpu[workers].append(spent / (done * args.seconds) * 1e6)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    return {
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "client": args.client,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "one_worker_rps": round(one),
        "two_workers_rps": round(two),
        "ratio": round(two / one, 2),
        "cpu_us_per_request": {
            "one_worker": round(statistics.median(cpu[1])),
            "two_workers": round(statistics.median(cpu[2])),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--client", choices=["wrk", "aiohttp"], default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    args.client = args.client or ("wrk" if shutil.which("wrk") else "aiohttp")
    upstream, upstream_port = spawn("--serve", "upstream")
    started: list[subprocess.Popen[bytes]] = [upstream]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = f"http://127.0.0.1:{upstream_port}"
            one, port1 = start_junction(tmp, 1, base)
            started.append(one)
            two, port2 = start_junction(tmp, 2, base)
            started.append(two)
            urls = {
                1: f"http://127.0.0.1:{port1}/v1/chat/completions",
                2: f"http://127.0.0.1:{port2}/v1/chat/completions",
            }
            args.tmp = tmp
            with open(os.path.join(tmp, "post.lua"), "w") as file:
                file.write(WRK_SCRIPT % BODY.decode())
            result = asyncio.run(measure(urls, {1: one.pid, 2: two.pid}, args))
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(30)
    if args.json:
        print(json.dumps(result))
        return
    print(f"cores {result['cores']}, load average {result['load_avg_1m']} (1 min)")
    print(
        f"/v1/chat/completions ({args.client}) at concurrency {args.concurrency}, "
        f"{args.rounds} alternating "
        f"rounds of {args.seconds:g} s: 1 worker {result['one_worker_rps']} req/s, "
        f"2 workers {result['two_workers_rps']} req/s, ratio {result['ratio']}"
    )
    cpu = result["cpu_us_per_request"]
    print(
        f"Junction CPU per request: 1 worker {cpu['one_worker']} us, 2 workers {cpu['two_workers']} us"
    )


if __name__ == "__main__":
    main()
