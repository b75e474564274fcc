"""What Junction's router adds in front of an OpenAI-compatible upstream: direct vs through
Junction's `/v1/chat/completions`, measured in the same run.

Three processes: a zero-latency upstream (uvicorn, raw ASGI, one process), Junction's OpenAI
surface (uvicorn or Granian, one worker process, one backend), and this load generator (aiohttp, one
pooled session). Figures are ratios or paired differences, never bare times:

- non-streaming, concurrency 1: requests alternate direct / through; the added latency is the
  per-pair difference, reported as p50 and p99 (targets: p50 <= 1 ms);
- non-streaming, concurrency 32: requests/s through Junction / requests/s direct, from
  alternating rounds (target >= 0.5);
- streaming, 64 chunks 20 ms apart: added time to first chunk by paired subtraction at
  concurrency 1 (p50, target <= 2 ms; also shown for 64 streams started at once), and the
  added inter-chunk gap p99 with 64 concurrent streams (target <= 3 ms).

A fourth process is Junction as users run it, `junction --mode serve` (its middleware: access
guard, metrics, access log to a file, replica and trace handling; the same one backend): its
added p50 at c=1 and its throughput at c=32 are reported beside the bare routes', so what the
serve-mode stack costs on top of the router is read off in the same run (issue 19: the router's
goal is +0.5 ms through serve mode).

A fifth process, a minimal ASGI server + aiohttp pass-through proxy with no routing at all, runs
in the throughput rounds as a reference: the gap between it and direct is the cost of the
stack (ASGI server, HTTP client, an extra hop on the same cores), the gap between it and
Junction is Junction's own.

    python benchmarks/router_bench.py [--pairs 2000] [--seconds 3] [--stream-pairs 200] [--json]
                                      [--no-access-log]

Environment (Junction's process and the reference proxy always get the same server and loop, so
the comparison between them stays fair; the upstream and the client stay on uvicorn / asyncio):

- ROUTER_BENCH_LOOP=asyncio|uvloop|rloop: their event loop (default asyncio; serve mode runs on
  uvloop when it is installed; rloop is the `rloop` package, Rust, experimental);
- ROUTER_BENCH_SERVER=uvicorn|granian: their ASGI server (default uvicorn, as serve mode; granian
  is Granian's ASGI interface, one worker, embedded in the process's own loop as uvicorn is,
  HTTP/1 only; it is not a dependency of Junction: install it to try it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiohttp
import orjson
import uvicorn

MODEL = "bench-model"
CHUNKS = 64
CHUNK_GAP = 0.020
BODY = orjson.dumps(
    {"model": MODEL, "messages": [{"role": "user", "content": "Say hello in one word."}]}
)
STREAM_BODY = orjson.dumps(
    {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Count slowly."}],
        "stream": True,
    }
)


def listening_socket() -> socket.socket:
    """A loopback listener; IPPROTO_TCP given explicitly so asyncio turns Nagle off on the
    accepted connections (it checks `proto`, which a bare socket() leaves at 0)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def run_uvicorn(app: Any, sock: socket.socket) -> None:
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    print(sock.getsockname()[1], flush=True)
    await server.serve(sockets=[sock])


async def run_granian(app: Any, sock: socket.socket) -> None:
    """Granian's ASGI worker on the running loop (its embedded server: one worker, one Rust
    runtime thread, no lifespan, like `run_uvicorn`). Granian binds the port itself."""
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    port = sock.getsockname()[1]
    sock.close()
    server = Server(
        app,
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGINL,
        http=HTTPModes.http1,
        websockets=False,
        backlog=1024,
        log_level=LogLevels.error,
    )
    print(port, flush=True)
    await server.serve()


def serve_app(main: Any) -> None:
    """Run `main()` on ROUTER_BENCH_LOOP's event loop."""
    loop = os.environ.get("ROUTER_BENCH_LOOP", "asyncio")
    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    elif loop == "rloop":
        import rloop

        with asyncio.Runner(loop_factory=rloop.new_event_loop) as runner:
            runner.run(main())
    elif loop == "asyncio":
        asyncio.run(main())
    else:
        raise SystemExit(f"ROUTER_BENCH_LOOP={loop!r}: use asyncio, uvloop or rloop")


async def run_server(app: Any) -> None:
    """Serve `app` with ROUTER_BENCH_SERVER's server on a fresh loopback port."""
    server = os.environ.get("ROUTER_BENCH_SERVER", "uvicorn")
    if server == "granian":
        await run_granian(app, listening_socket())
    elif server == "uvicorn":
        await run_uvicorn(app, listening_socket())
    else:
        raise SystemExit(f"ROUTER_BENCH_SERVER={server!r}: use uvicorn or granian")


# -- the upstream (child process) ---------------------------------------------------------------

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
    }
)


def _chunk(index: int) -> bytes:
    doc = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": f"{index} "}, "finish_reason": None}],
    }
    return b"data: " + orjson.dumps(doc) + b"\n\n"


STREAM_CHUNKS = [_chunk(i) for i in range(CHUNKS)]
STREAM_END = (
    b"data: "
    + orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": MODEL,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
    )
    + b"\n\ndata: [DONE]\n\n"
)
MODELS = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]})


async def upstream_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": MODELS})
        return
    if b'"stream":true' not in body:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": COMPLETION})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream")],
        }
    )
    for i, chunk in enumerate(STREAM_CHUNKS):
        if i:
            await asyncio.sleep(CHUNK_GAP)
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": STREAM_END})


def serve_upstream() -> None:
    asyncio.run(run_uvicorn(upstream_app, listening_socket()))


# -- Junction (child process) -------------------------------------------------------------------


def serve_junction(upstream: str) -> None:
    from starlette.applications import Starlette

    from router_core import BackendSpec, HealthCheckSettings, Router, RouterSettings
    from router_core.routes import openai_routes

    async def main() -> None:
        spec = BackendSpec(name="upstream", type="openai", url=upstream, models=[MODEL])
        settings = RouterSettings(health=HealthCheckSettings(enabled=False))
        async with Router([spec], settings) as router:
            app = Starlette(routes=openai_routes(router))
            await run_server(app)

    serve_app(main)


# -- reference: the smallest pass-through proxy on the same stack (child process) ---------------


def serve_reference(upstream: str) -> None:
    """The ASGI server + one pooled aiohttp session, no routing, no checks: what the stack alone
    costs, so Junction's own share of the gap to direct can be read off."""
    target = f"{upstream}/v1/chat/completions"
    state: dict[str, aiohttp.ClientSession] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        session = state.get("session")
        if session is None:
            session = state["session"] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0)
            )
        headers = {"Content-Type": "application/json"}
        async with session.post(target, data=body, headers=headers) as response:
            kind = response.headers.get("Content-Type", "application/json").encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]}
            )
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    serve_app(lambda: run_server(app))


# -- Junction as users run it (child process) ----------------------------------------------------


def start_serve_mode(
    upstream: str, tmp: str, access_log: bool
) -> tuple[subprocess.Popen[bytes], int]:
    """`junction --mode serve` with one OpenAI backend."""
    from benchmarks.serve_mode import start_serve

    return start_serve(
        tmp,
        "junction",
        f"store: {{url: 'sqlite:///{tmp}/junction.db'}}\n"
        f"backends:\n  upstream: {{type: openai, url: '{upstream}/v1', models: [{MODEL}]}}\n"
        f"logging: {{access_log: {'true' if access_log else 'false'}}}\n",
    )


# -- load generator -----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def one(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with session.post(url, data=BODY, headers={"Content-Type": "application/json"}) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}")
    return time.perf_counter() - started


async def paired(session: aiohttp.ClientSession, direct: str, through: str, pairs: int) -> Any:
    for _ in range(200):  # warm both paths (connections, caches)
        await one(session, direct)
        await one(session, through)
    diffs: list[float] = []
    overheads: list[float] = []
    for i in range(pairs):
        if i % 2:
            t_through = await one(session, through)
            t_direct = await one(session, direct)
        else:
            t_direct = await one(session, direct)
            t_through = await one(session, through)
        diffs.append((t_through - t_direct) * 1000)
        overheads.append(t_direct * 1000)
    return {
        "added_p50_ms": round(pct(diffs, 0.50), 3),
        "added_p99_ms": round(pct(diffs, 0.99), 3),
        "direct_p50_ms": round(statistics.median(overheads), 3),
    }


async def rate(session: aiohttp.ClientSession, url: str, seconds: float, workers: int) -> float:
    done, elapsed = await run_for(session, url, seconds, workers)
    return done / elapsed


async def run_for(
    session: aiohttp.ClientSession, url: str, seconds: float, workers: int
) -> tuple[int, float]:
    """(requests done, seconds taken) by `workers` loops posting to `url` for `seconds`."""
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await one(session, url)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done, time.perf_counter() - started


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process, all threads (Linux /proc; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


async def throughput(
    session: aiohttp.ClientSession,
    urls: dict[str, str],
    pids: dict[str, int],
    seconds: float,
) -> dict[str, Any]:
    """Alternating rounds (direct, Junction, reference proxy) so drift hits all three alike.

    Also the CPU time the serving process spent per request in its own rounds (the upstream's
    in the direct rounds): unlike req/s, it hardly moves when other work shares the machine."""
    for url in urls.values():
        await rate(session, url, 0.5, 32)
    rates: dict[str, list[float]] = {name: [] for name in urls}
    cpu: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(3):
        for name, url in urls.items():
            before = cpu_seconds(pids[name])
            done, elapsed = await run_for(session, url, seconds, 32)
            after = cpu_seconds(pids[name])
            rates[name].append(done / elapsed)
            if before is not None and after is not None and done:
                cpu[name].append((after - before) / done * 1e6)
    mean = {name: statistics.mean(values) for name, values in rates.items()}
    d = mean["direct"]
    result: dict[str, Any] = {
        "direct_rps": round(d),
        "through_rps": round(mean["through"]),
        "serve_rps": round(mean["serve"]),
        "reference_rps": round(mean["reference"]),
        "ratio": round(mean["through"] / d, 3),
        "serve_ratio": round(mean["serve"] / d, 3),
        "reference_proxy_ratio": round(mean["reference"] / d, 3),
    }
    if all(cpu.values()):
        result["cpu_us_per_request"] = {
            "upstream": round(statistics.mean(cpu["direct"])),
            "junction": round(statistics.mean(cpu["through"])),
            "serve": round(statistics.mean(cpu["serve"])),
            "reference": round(statistics.mean(cpu["reference"])),
        }
    return result


async def one_stream(session: aiohttp.ClientSession, url: str) -> tuple[float, list[float]]:
    started = time.perf_counter()
    arrivals: list[float] = []
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=STREAM_BODY, headers=headers) as response:
        async for _ in response.content.iter_any():
            arrivals.append(time.perf_counter())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return arrivals[0] - started, gaps


async def streams(session: aiohttp.ClientSession, url: str, count: int) -> tuple[float, float]:
    """(TTFT p50, inter-chunk gap p99) in ms over `count` streams started together."""
    results = await asyncio.gather(*(one_stream(session, url) for _ in range(count)))
    ttfts = [r[0] * 1000 for r in results]
    gaps = [g * 1000 for r in results for g in r[1]]
    return pct(ttfts, 0.5), pct(gaps, 0.99)


async def first_chunk(session: aiohttp.ClientSession, url: str) -> float:
    """Time to the first chunk of one stream, then the stream is dropped."""
    started = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    async with session.post(url, data=STREAM_BODY, headers=headers) as response:
        await response.content.readany()
        elapsed = time.perf_counter() - started
        response.close()
    return elapsed


async def streaming(
    session: aiohttp.ClientSession, direct: str, through: str, pairs: int
) -> dict[str, Any]:
    """Added TTFT by paired subtraction at concurrency 1; then 64 streams at once each way."""
    for _ in range(10):
        await first_chunk(session, direct)
        await first_chunk(session, through)
    diffs = []
    for i in range(pairs):
        order = (direct, through) if i % 2 == 0 else (through, direct)
        first, second = [await first_chunk(session, url) for url in order]
        t_direct, t_through = (first, second) if order[0] == direct else (second, first)
        diffs.append((t_through - t_direct) * 1000)
    # one round each way first, so both paths start with 64 pooled keep-alive connections
    await streams(session, direct, 64)
    await streams(session, through, 64)
    d_ttft, d_gap = await streams(session, direct, 64)
    t_ttft, t_gap = await streams(session, through, 64)
    return {
        "added_ttft_c1_p50_ms": round(pct(diffs, 0.5), 3),
        "added_ttft_c1_p99_ms": round(pct(diffs, 0.99), 3),
        "direct_ttft_c64_p50_ms": round(d_ttft, 3),
        "added_ttft_c64_p50_ms": round(t_ttft - d_ttft, 3),
        "direct_gap_c64_p99_ms": round(d_gap, 3),
        "added_gap_c64_p99_ms": round(t_gap - d_gap, 3),
    }


def spawn(*args: str) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *args], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return process, port


async def measure(
    args: argparse.Namespace, urls: dict[str, str], pids: dict[str, int]
) -> dict[str, Any]:
    """`urls` and `pids` by name: direct (the upstream), through (the bare routes), serve
    (serve mode), reference (the minimal proxy)."""
    direct, through, serve = urls["direct"], urls["through"], urls["serve"]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(100):  # wait for both to answer
            try:
                await one(session, direct)
                await one(session, through)
                await one(session, serve)
                break
            except (aiohttp.ClientError, RuntimeError):
                await asyncio.sleep(0.1)
        return {
            "c1": await paired(session, direct, through, args.pairs),
            "c1_serve": await paired(session, direct, serve, args.pairs),
            "c32": await throughput(
                session,
                urls,
                pids,
                args.seconds,
            ),
            "streaming": await streaming(session, direct, through, args.stream_pairs),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--stream-pairs", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-access-log", action="store_true", help="serve mode's access log off")
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        if args.serve[0] == "upstream":
            serve_upstream()
        elif args.serve[0] == "reference":
            serve_reference(args.serve[1])
        else:
            serve_junction(args.serve[1])
        return
    upstream, upstream_port = spawn("--serve", "upstream")
    base = f"http://127.0.0.1:{upstream_port}"
    junction, junction_port = spawn("--serve", "junction", base)
    reference, reference_port = spawn("--serve", "reference", base)
    with tempfile.TemporaryDirectory() as tmp:
        serve, serve_port = start_serve_mode(base, tmp, not args.no_access_log)
        try:
            results = asyncio.run(
                measure(
                    args,
                    {
                        "direct": f"{base}/v1/chat/completions",
                        "through": f"http://127.0.0.1:{junction_port}/v1/chat/completions",
                        "serve": f"http://127.0.0.1:{serve_port}/v1/chat/completions",
                        "reference": f"http://127.0.0.1:{reference_port}/v1/chat/completions",
                    },
                    {
                        "direct": upstream.pid,
                        "through": junction.pid,
                        "serve": serve.pid,
                        "reference": reference.pid,
                    },
                )
            )
        finally:
            for process in (serve, reference, junction, upstream):
                process.terminate()
                process.wait(10)
    setup = {
        "server": os.environ.get("ROUTER_BENCH_SERVER", "uvicorn"),
        "loop": os.environ.get("ROUTER_BENCH_LOOP", "asyncio"),
    }
    if args.json:
        print(json.dumps({"setup": setup, **results}, indent=2))
        return
    c1, c32, st = results["c1"], results["c32"], results["streaming"]
    sc1 = results["c1_serve"]
    print(f"Junction's routes and reference proxy on {setup['server']} + {setup['loop']}")
    print(
        f"non-streaming c=1   added p50 {c1['added_p50_ms']} ms (target <= 1), "
        f"p99 {c1['added_p99_ms']} ms; direct p50 {c1['direct_p50_ms']} ms"
    )
    log = "off" if args.no_access_log else "on"
    print(
        f"  serve mode        added p50 {sc1['added_p50_ms']} ms (goal <= 0.5), "
        f"p99 {sc1['added_p99_ms']} ms (junction --mode serve, access log {log})"
    )
    print(
        f"non-streaming c=32  through/direct {c32['ratio']} (target >= 0.5); "
        f"{c32['through_rps']} vs {c32['direct_rps']} req/s; "
        f"reference proxy/direct {c32['reference_proxy_ratio']}"
    )
    print(f"  serve mode        through/direct {c32['serve_ratio']}; {c32['serve_rps']} req/s")
    if "cpu_us_per_request" in c32:
        cpu = c32["cpu_us_per_request"]
        print(
            f"CPU per request     Junction {cpu['junction']} us (serve mode {cpu['serve']} us), "
            f"reference proxy "
            f"{cpu['reference']} us, upstream {cpu['upstream']} us (c=32 rounds)"
        )
    print(
        f"streaming           added TTFT p50 {st['added_ttft_c1_p50_ms']} ms at c=1 "
        f"(target <= 2), {st['added_ttft_c64_p50_ms']} ms at 64 streams; "
        f"added inter-chunk p99 at 64 streams {st['added_gap_c64_p99_ms']} ms (target <= 3)"
    )


if __name__ == "__main__":
    main()
