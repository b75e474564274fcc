"""ACP agent figures in one run: cold start, first session, added time to first token, cancel
latency.

- cold start, as an editor starts it: spawn `junction --mode stdio --config ...` (a config with
  two MCP servers and one backend), send `initialize`, and `session/new` right after its answer;
  median of N for spawn -> `initialize` answered and spawn -> `session/new` answered, next to
  a bare Python process answering `initialize` with a fixed line (the interpreter's own floor),
  with the import-time breakdown of what Junction loads before answering (`-X importtime`);
- added TTFT: `session/prompt` to the first `agent_message_chunk`, minus a direct streaming
  request (router_core's OpenAI backend) to the same local fake model server to its first delta;
- cancel latency: `session/cancel` during a stream to the prompt's `cancelled` response.

    python benchmarks/acp_bench.py [--runs 10] [--prompts 40] [--json]

The model is the test suite's fake OpenAI-compatible server on loopback; the agent is a child
process on stdio exactly as an IDE launches it (`--serve CONFIG` is that child's entry point
for the turn figures).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INITIALIZE = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":1,'
    b'"clientCapabilities":{}}}\n'
)


EARLY_STAGE = (
    "import os, sys\n"
    "from junction.modes import acp_early\n"
    "acp_early._image_prompts(acp_early._config_path(['--config', sys.argv[1]], os.environ))\n"
    "from acp.handshake import initialize_result\n"
    "from junction.version import __version__\n"
    "initialize_result(version=__version__)\n"
)
"""What `junction --mode stdio` runs before it answers `initialize` (junction.entry's early
stage, without reading stdin). Config, pydantic and the agent load after the answer."""

WITHOUT_HINT = (
    "import sys\n"
    "from junction.modes import acp_stdio\n"
    "acp_stdio.static_models = lambda config: None\n"
    "from junction.entry import main\n"
    "sys.exit(main())\n"
)
"""`junction` as it was before the first session was offered the config's own models while
the router starts (`AgentRuntime.models_hint`): `session/new` waits for the router. Run in the
same measurement, for the comparison."""


async def direct_child(url: str, count: int) -> list[float]:
    """The child for the direct path: stream from the model server, time the first delta."""
    from router_core import OpenAIBackend, TextDelta, close_session
    from router_core.types import ChatRequest, Message

    backend = OpenAIBackend("direct", f"{url}/v1")
    times = []
    for index in range(count + 3):  # the first three warm the connection pool
        request = ChatRequest(
            model="m1", messages=[Message(role="user", content=f"hi {index}")], stream=True
        )
        started = time.perf_counter()
        first = 0.0
        async for event in backend.stream(request):  # read to the end, as the agent does
            if isinstance(event, TextDelta) and not first:
                first = time.perf_counter()
        if index >= 3:
            times.append(first - started)
    await close_session()
    return times


def serve(config_path: str) -> int:
    """The child: the ACP agent on stdio (what `junction --mode stdio` runs)."""
    from junction.config import load_config
    from junction.modes.acp_stdio import run_acp_stdio

    return run_acp_stdio(load_config(Path(config_path)))


def write_config(directory: Path, model_url: str) -> Path:
    """One backend and two MCP servers (the test suite's stdio server), as an editor's config."""
    server = ROOT / "tests" / "mcp_gateway" / "servers.py"
    mcp = "".join(
        f"  {name}: {{command: '{sys.executable}', args: ['{server}', ok]}}\n" for name in "ab"
    )
    path = directory / "junction.yaml"
    path.write_text(
        f"store: {{url: 'sqlite:///{directory / 'sessions.db'}'}}\n"
        f"backends: {{fake: {{type: openai, url: '{model_url}/v1', models: [m1]}}}}\n"
        f"mcp_servers:\n{mcp}"
        "acp: {default_model: m1}\nlogging: {level: error}\n"
    )
    return path


def agent_argv(config: Path, *extra: str) -> list[str]:
    return [sys.executable, *extra, str(Path(__file__).resolve()), "--serve", str(config)]


# -- cold start -----------------------------------------------------------------------------------

FLOOR = (
    "import sys; sys.stdin.buffer.readline(); "
    'sys.stdout.write(\'{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1}}\\n\'); '
    "sys.stdout.flush(); sys.stdin.buffer.readline()"
)
"""A Python process that answers `initialize` and does nothing else: the interpreter's floor."""

NEW_SESSION = (
    b'{"jsonrpc":"2.0","id":2,"method":"session/new","params":{"cwd":"%s","mcpServers":[]}}\n'
)


def cold_start(argv: list[str], runs: int, *, session: bool) -> tuple[list[float], list[float]]:
    """Spawn -> `initialize` answered, and (with `session`) spawn -> `session/new` answered."""
    initialized, created = [], []
    for _ in range(runs):
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(INITIALIZE)
        child.stdin.flush()
        line = child.stdout.readline()
        initialized.append(time.perf_counter() - started)
        assert b'"protocolVersion":1' in line, line
        if session:
            child.stdin.write(NEW_SESSION % str(ROOT).encode())
            child.stdin.flush()
            while b'"id":2' not in (line := child.stdout.readline()):
                assert line, "the agent closed stdout before answering session/new"
            created.append(time.perf_counter() - started)
            assert b'"sessionId"' in line, line
        child.stdin.close()
        child.wait(timeout=30)
    return initialized, created


def import_breakdown(config: Path) -> list[tuple[str, float]]:
    """Packages loaded before the `initialize` answer, by the import time spent in each."""
    argv = [sys.executable, "-X", "importtime", "-c", EARLY_STAGE, str(config)]
    err = subprocess.run(argv, capture_output=True, cwd=ROOT, check=True).stderr
    totals: dict[str, float] = {}
    for line in err.decode().splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = line[len("import time:") :].split("|")
        if not own.strip().isdigit():
            continue  # the header
        root = name.strip().split(".")[0]
        totals[root] = totals.get(root, 0.0) + int(own) / 1e6  # self time: no double counting
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)


# -- a tiny client for the stdio agent ------------------------------------------------------------


class Client:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.next_id = 10
        self.waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.on_update: asyncio.Future[float] | None = None
        self.sending: set[asyncio.Future[None]] = set()
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            message = json.loads(line)
            if message.get("method") == "session/update":
                kind = message["params"]["update"]["sessionUpdate"]
                waiter = self.on_update
                if kind == "agent_message_chunk" and waiter is not None and not waiter.done():
                    waiter.set_result(time.perf_counter())
            elif "id" in message and "method" not in message:
                self.waiters.pop(message["id"]).set_result(message)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    def request(self, method: str, params: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        self.next_id += 1
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters[self.next_id] = waiter
        sending = asyncio.ensure_future(
            self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        )
        self.sending.add(sending)
        sending.add_done_callback(self.sending.discard)
        return waiter


async def measure_turns(config: Path, server: Any, prompts: int) -> dict[str, list[float]]:
    from tests.router_core.llm_servers import Reply

    process = await asyncio.create_subprocess_exec(
        *agent_argv(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    client = Client(process)
    await client.request("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
    new = await client.request("session/new", {"cwd": str(ROOT), "mcpServers": []})
    sid = new["result"]["sessionId"]
    server.default = Reply(text="Hello there, this is a short answer.", usage=(5, 5))
    through: list[float] = []
    cancels: list[float] = []

    async def agent_ttft(index: int) -> float:
        loop = asyncio.get_running_loop()
        client.on_update = loop.create_future()
        started = time.perf_counter()
        done = client.request(
            "session/prompt",
            {"sessionId": sid, "prompt": [{"type": "text", "text": f"hi {index}"}]},
        )
        first = await client.on_update
        await done
        return first - started

    # The direct client is a child process too, so both paths cross the same process boundary.
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "--direct",
        server.url,
        "--prompts",
        str(prompts),
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, _ = await child.communicate()
    direct = json.loads(out)
    for warm in range(3):  # imports, connections and caches warm up first
        await agent_ttft(warm)
    for index in range(prompts):
        through.append(await agent_ttft(index))

    for index in range(max(5, prompts // 4)):
        server.script([Reply(text="z" * 5000, chunk_size=1, chunk_delay=0.002)])
        loop = asyncio.get_running_loop()
        client.on_update = loop.create_future()
        done = client.request(
            "session/prompt",
            {"sessionId": sid, "prompt": [{"type": "text", "text": f"long {index}"}]},
        )
        await client.on_update
        started = time.perf_counter()
        await client.send(
            {"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": sid}}
        )
        response = await done
        cancels.append(time.perf_counter() - started)
        assert response["result"]["stopReason"] == "cancelled", response
    assert process.stdin is not None
    process.stdin.close()
    await process.wait()
    client.reader.cancel()
    return {"direct": direct, "through": through, "cancel": cancels}


async def run(runs: int, prompts: int) -> dict[str, Any]:
    from tests.router_core.llm_servers import openai_server

    with tempfile.TemporaryDirectory() as tmp:
        async with openai_server(models=["m1"]) as server:
            config = write_config(Path(tmp), server.url)
            junction = [str(Path(sys.executable).with_name("junction")), "--mode", "stdio"]
            starts, sessions = await asyncio.to_thread(
                cold_start, [*junction, "--config", str(config)], runs, session=True
            )
            _, unhinted = await asyncio.to_thread(
                cold_start,
                [sys.executable, "-c", WITHOUT_HINT, "--mode", "stdio", "--config", str(config)],
                runs,
                session=True,
            )
            floor, _ = await asyncio.to_thread(
                cold_start, [sys.executable, "-c", FLOOR], runs, session=False
            )
            breakdown = await asyncio.to_thread(import_breakdown, config)
            turns = await measure_turns(config, server, prompts)
    direct = statistics.median(turns["direct"])
    through = statistics.median(turns["through"])
    return {
        "cold_start_median_s": statistics.median(starts),
        "cold_start_runs_s": starts,
        "first_session_median_s": statistics.median(sessions),
        "first_session_runs_s": sessions,
        "first_session_without_hint_median_s": statistics.median(unhinted),
        "python_floor_median_s": statistics.median(floor),
        "cold_start_vs_floor": statistics.median(starts) / statistics.median(floor),
        "imports_before_initialize_s": breakdown[:12],
        "ttft_direct_median_ms": direct * 1e3,
        "ttft_through_median_ms": through * 1e3,
        "ttft_added_ms": (through - direct) * 1e3,
        "ttft_ratio": through / direct,
        "cancel_latency_median_ms": statistics.median(turns["cancel"]) * 1e3,
        "cancel_latency_max_ms": max(turns["cancel"]) * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--direct", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.direct:
        print(json.dumps(asyncio.run(direct_child(args.direct, args.prompts))))
        return 0
    result = asyncio.run(run(args.runs, args.prompts))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"cold start (spawn -> initialize response), median of {args.runs}: "
        f"{result['cold_start_median_s'] * 1e3:.0f} ms "
        f"(a bare Python process: {result['python_floor_median_s'] * 1e3:.0f} ms, "
        f"x{result['cold_start_vs_floor']:.1f})"
    )
    print(
        "first session (spawn -> session/new response, sent right after initialize's): "
        f"{result['first_session_median_s'] * 1e3:.0f} ms (waiting for the router instead: "
        f"{result['first_session_without_hint_median_s'] * 1e3:.0f} ms)"
    )
    print("  imported before the answer (import time by package):")
    for name, seconds in result["imports_before_initialize_s"]:
        print(f"    {name:24s} {seconds * 1e3:7.1f} ms")
    print(
        f"time to first token: direct {result['ttft_direct_median_ms']:.2f} ms, "
        f"through the agent {result['ttft_through_median_ms']:.2f} ms, "
        f"added {result['ttft_added_ms']:.2f} ms (x{result['ttft_ratio']:.2f})"
    )
    print(
        f"cancel latency (session/cancel -> cancelled response): median "
        f"{result['cancel_latency_median_ms']:.2f} ms, max {result['cancel_latency_max_ms']:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
