"""MCP gateway benchmark: the same upstream called directly and through Junction, in one run.

    python benchmarks/mcp_bench.py [--calls 300] [--only stdio,http,list,cpu,http-cpu,catalog]

For a stdio upstream (an `mcp` SDK server) and a Streamable HTTP upstream (server-everything):
`tools/call` latency at concurrency 1 (p50 ratio, target <= 2.0x direct) and throughput at
concurrency 16 (ratio, target >= 0.5). Then `tools/list` through Junction across 20 upstreams x
50 tools when nothing changed (target <= 5 ms), next to the same 1000 tools listed by one `mcp`
SDK server directly: the SDK client's own work (parsing a ~150 KB message, building 1000 `Tool`
models) is in both, so "added" is what Junction costs. "wire" times the same request through the
client's dispatcher without the typed result (the JSON-RPC message is still parsed).
Clients are the `mcp` SDK; Junction runs as its own process (`--mode mcp` over stdio, or `/mcp`
under uvicorn). Ratios only mean something within one run on one machine; on a shared machine
the `cpu` step (Junction's CPU per call; `http-cpu` for `/mcp`) is the steady figure. `JUNCTION_MCP_FAST_LANE=0` in
the environment measures the SDK's path alone (no fast lane, no raw upstream channel).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway._sdk import create_mcp_http_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mcp_gateway.conftest import SERVERS, NodeHttpServer, free_port, wait_port

JUNCTION_MCP = (
    "import sys; from pathlib import Path; from junction.config import load_config; "
    "from junction.modes.mcp_stdio import run_mcp_stdio; sys.exit(run_mcp_stdio(load_config(Path(sys.argv[1]))))"
)
JUNCTION_HTTP = (
    "import sys, uvicorn; from pathlib import Path; from junction.config import load_config; "
    "from junction.build import gateway_inputs; from mcp_gateway import Gateway, http_app; "
    "specs, options = gateway_inputs(load_config(Path(sys.argv[1]))); "
    "app = http_app(Gateway(specs, options), manage_gateway=True); "
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[2]), log_level='warning')"
)


def write_config(servers: dict[str, Any], mcp: dict[str, Any] | None = None) -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        config = {"mcp_servers": servers, "logging": {"level": "warning"}, "mcp": mcp or {}}
        json.dump(config, handle)
    return Path(handle.name)


def stdio(command: list[str]) -> StdioServerParameters:
    return StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))


@contextlib.asynccontextmanager
async def http_client(url: str) -> AsyncIterator[Client]:
    async with create_mcp_http_client() as http:
        transport = streamable_http_client(url, http_client=http, max_sse_event_size=None)
        async with Client(transport, mode="legacy") as client:
            yield client


async def measure(
    client: Client, tool: str, args: dict[str, Any], calls: int
) -> tuple[float, float]:
    """(p50 latency in ms at c=1, calls/s at c=16)."""
    for _ in range(20):
        await client.call_tool(tool, args)
    latencies = []
    for _ in range(calls):
        start = time.perf_counter()
        await client.call_tool(tool, args)
        latencies.append(time.perf_counter() - start)
    remaining = calls * 2

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await client.call_tool(tool, args)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(16):
            tg.start_soon(worker)
    throughput = calls * 2 / (time.perf_counter() - start)
    return statistics.median(latencies) * 1000, throughput


def report(name: str, direct: tuple[float, float], junction: tuple[float, float]) -> None:
    print(
        f"{name:6} c=1 p50: direct {direct[0]:.2f} ms, via Junction {junction[0]:.2f} ms "
        f"-> {junction[0] / direct[0]:.2f}x (target <= 2.0) | c=16: direct {direct[1]:.0f}/s, "
        f"via Junction {junction[1]:.0f}/s -> {junction[1] / direct[1]:.2f} (target >= 0.5)"
    )


async def bench_stdio(calls: int) -> None:
    upstream = [sys.executable, SERVERS, "ok"]
    config = write_config({"ok": {"command": upstream[0], "args": upstream[1:]}})
    async with Client(stdio(upstream), mode="legacy") as client:
        direct = await measure(client, "echo", {"message": "hi"}, calls)
    via = [sys.executable, "-c", JUNCTION_MCP, str(config)]
    async with Client(stdio(via), mode="legacy") as client:
        junction = await measure(client, "ok__echo", {"message": "hi"}, calls)
    report("stdio", direct, junction)


@contextlib.contextmanager
def http_gateway() -> Iterator[tuple[NodeHttpServer, subprocess.Popen[bytes], str]]:
    """server-everything over Streamable HTTP and Junction's `/mcp` in front of it: (the
    upstream, Junction's process, Junction's `/mcp` URL)."""
    upstream = NodeHttpServer("streamableHttp")
    upstream.start()
    port = free_port()
    config = write_config({"web": {"url": upstream.url}})
    gateway = subprocess.Popen([sys.executable, "-c", JUNCTION_HTTP, str(config), str(port)])
    try:
        wait_port(port, gateway)
        yield upstream, gateway, f"http://127.0.0.1:{port}/mcp"
    finally:
        gateway.terminate()
        gateway.wait()
        upstream.stop()


async def bench_http(calls: int) -> None:
    with http_gateway() as (upstream, _, url):
        async with http_client(upstream.url) as client:
            direct = await measure(client, "echo", {"message": "hi"}, calls)
        async with http_client(url) as client:
            await client.list_tools()
            junction = await measure(client, "web__echo", {"message": "hi"}, calls)
        report("http", direct, junction)


def serve_tools(count: int) -> None:
    """`--serve-tools N`: one `mcp` SDK server listing N tools shaped like servers.py's `many`."""
    from tests.mcp_gateway.servers import raw_tools_server

    schema = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}
    tools = [
        {
            "name": f"s{i // 50:02}__tool_{i % 50:02}",
            "description": f"Tool {i % 50}.",
            "inputSchema": schema,
        }
        for i in range(count)
    ]
    from mcp.server.stdio import stdio_server

    async def run() -> None:
        server = raw_tools_server(tools)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(run)


async def time_lists(client: Client, rounds: int) -> tuple[list[float], list[float]]:
    """(typed `list_tools` timings, wire timings) for one client, interleaved."""
    first = await client.list_tools()
    assert len(first.tools) == 1000, len(first.tools)
    typed: list[float] = []
    wire: list[float] = []
    dispatcher = client.session._dispatcher
    for _ in range(rounds):
        start = time.perf_counter()
        await client.list_tools()
        typed.append(time.perf_counter() - start)
        start = time.perf_counter()
        await dispatcher.send_raw_request("tools/list", None, {})
        wire.append(time.perf_counter() - start)
    return typed, wire


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def bench_list(rounds: int) -> None:
    servers = {
        f"s{i:02}": {"command": sys.executable, "args": [SERVERS, "many"]} for i in range(20)
    }
    via = [sys.executable, "-c", JUNCTION_MCP, str(write_config(servers))]
    async with Client(stdio(via), mode="legacy") as client:
        typed, wire = await time_lists(client, rounds)
    one = [sys.executable, __file__, "--serve-tools", "1000"]
    async with Client(stdio(one), mode="legacy") as client:
        direct_typed, direct_wire = await time_lists(client, rounds)
    print(
        f"tools/list, 20 upstreams x 50 tools (1000 tools, unchanged): "
        f"p50 {p50_ms(typed):.2f} ms, p90 {sorted(typed)[int(rounds * 0.9)] * 1000:.2f} ms "
        f"(target <= 5 ms) | same 1000 tools from one SDK server directly: p50 "
        f"{p50_ms(direct_typed):.2f} ms -> added {p50_ms(typed) - p50_ms(direct_typed):.2f} ms"
        f" | wire p50: via Junction {p50_ms(wire):.2f} ms, direct {p50_ms(direct_wire):.2f} ms"
    )


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def _newest_child() -> int:
    """This process's newest child (the Junction the SDK client just spawned)."""
    me, children = str(os.getpid()), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[1] == me:
                    children.append(int(entry.name))
    return max(children)


async def bench_cpu(calls: int) -> None:
    """CPU the Junction process spends per `tools/call` (stdio upstream, both client
    generations): unlike the latency ratio it holds on a busy machine, where other
    processes take the cores the timed path waits for."""
    upstream = [sys.executable, SERVERS, "ok"]
    config = write_config({"ok": {"command": upstream[0], "args": upstream[1:]}})
    via = [sys.executable, "-c", JUNCTION_MCP, str(config)]
    for mode in ("legacy", "2026-07-28"):
        async with Client(stdio(via), mode=mode) as client:
            for _ in range(50):
                await client.call_tool("ok__echo", {"message": "hi"})
            pid = _newest_child()
            before = _cpu_seconds(pid)
            for _ in range(calls):
                await client.call_tool("ok__echo", {"message": "hi"})
            now = _cpu_seconds(pid)
            user, system = now[0] - before[0], now[1] - before[1]
        print(
            f"cpu    {mode:10} client: {(user + system) / calls * 1e6:.0f} us of Junction CPU "
            f"per call (user {user / calls * 1e6:.0f}, system {system / calls * 1e6:.0f})"
        )


async def bench_http_cpu(calls: int) -> None:
    """CPU the Junction process behind `/mcp` spends per `tools/call` relayed to a Streamable
    HTTP upstream (server-everything), next to the client's and the upstream's own."""
    with http_gateway() as (upstream, gateway, url):
        assert upstream.process is not None
        async with http_client(url) as client:
            for _ in range(50):
                await client.call_tool("web__echo", {"message": "hi"})
            pids = {
                "Junction": gateway.pid,
                "upstream": upstream.process.pid,
                "client": os.getpid(),
            }
            before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            for _ in range(calls):
                await client.call_tool("web__echo", {"message": "hi"})
            spent = {name: sum(_cpu_seconds(pid)) - sum(before[name]) for name, pid in pids.items()}
        print(
            "http-cpu per call: "
            + ", ".join(f"{name} {seconds / calls * 1e6:.0f} us" for name, seconds in spent.items())
        )


def _size(message: Any) -> int:
    return len(json.dumps(message, separators=(",", ":")))


async def bench_catalog() -> None:
    """Bytes each way of a client's `tools/list` across 20 upstreams x 50 tools, with every
    tool listed and in catalog mode, and what finding and describing one tool costs there."""
    servers = {
        f"s{i:02}": {"command": sys.executable, "args": [SERVERS, "many"]} for i in range(20)
    }
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for mode in (False, True):
        via = [
            sys.executable,
            "-c",
            JUNCTION_MCP,
            str(write_config(servers, {"catalog_mode": mode})),
        ]
        async with Client(stdio(via), mode="legacy") as client:
            listed = await client.session._dispatcher.send_raw_request("tools/list", {}, {})
            line = (
                f"catalog mode {'on ' if mode else 'off'}: tools/list {_size(request)} B out, "
                f"{_size(listed)} B back ({len(listed['tools'])} tools)"
            )
            if mode:
                search = {"name": "search_tools", "arguments": {"query": "tool 7"}}
                found = await client.session._dispatcher.send_raw_request("tools/call", search, {})
                first = found["structuredContent"]["tools"][0]["name"]
                describe = {"name": "describe_tool", "arguments": {"name": first}}
                described = await client.session._dispatcher.send_raw_request(
                    "tools/call", describe, {}
                )
                line += (
                    f" | finding one tool: search_tools {_size(search)} B out, {_size(found)} B "
                    f"back; describe_tool {_size(describe)} B out, {_size(described)} B back"
                )
            print(line)


async def main(calls: int, only: set[str]) -> None:
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("stdio", lambda: bench_stdio(calls)),
        ("http", lambda: bench_http(calls)),
        ("list", lambda: bench_list(100)),
        ("cpu", lambda: bench_cpu(max(calls, 1000))),
        ("http-cpu", lambda: bench_http_cpu(max(calls, 500))),
        ("catalog", bench_catalog),
    ]
    for name, step in steps:
        if name in only:
            await step()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve-tools":
        serve_tools(int(sys.argv[2]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument(
        "--only", default="stdio,http,list,cpu,http-cpu,catalog", help="comma-separated steps"
    )
    args = parser.parse_args()
    anyio.run(main, args.calls, set(args.only.split(",")))
