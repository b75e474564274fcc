"""A2A hub overhead: the same agent called directly and through the hub, in one run.

By default, what users run: `junction --mode serve` (its middleware, metrics, access log to a
file, SQLite store in a temp dir) with an a2a-sdk agent (tests/a2a/peers/sdk_agent.py, the
official SDK from its own venv under $JUNCTION_CI_CACHE) registered as `bench`, and this client
(one pooled aiohttp session) calling the agent directly and through `/a2a/agents/bench`,
alternating, at concurrency 1: p50 and p99 each way, the added time and the ratio.

    python benchmarks/a2a_bench.py [--requests 2000] [--json] [--no-access-log] [--profile DIR]
                                   [--agent sdk|fast]

`--agent fast` puts the aiohttp agent that answers at once (below) behind serve mode instead,
so the added time is not hidden in the SDK agent's own variance; `--agent-delay SECONDS` makes
it wait before answering, which shows what an idle gap alone costs the process in between.

The hub's whole calls to the agent (SendMessage, GetTask, CancelTask) go over
`router_core.exchange`; `--upstream aiohttp` makes serve mode (only) take aiohttp instead, the
path used when a proxy applies, for a before/after comparison. `--client-cpu` measures just that
client, both ways, CPU per call in this process:

    python benchmarks/a2a_bench.py --client-cpu

`--profile DIR` runs serve mode under py-spy (`pip install py-spy`) and writes its stacks there
as `serve.folded` (collapsed stacks: grep them, or feed them to flamegraph.pl / speedscope).

`--hub routes` measures the older harness: the hub's routes alone under uvicorn (no serve-mode
middleware) in front of a fast aiohttp agent that answers at once, with throughput at c=16 and
time to the first streamed event:

    python benchmarks/a2a_bench.py --hub routes [--requests 2000] [--seconds 5] [--loop uvloop]
    python benchmarks/a2a_bench.py --no-sockets

`--no-sockets` measures only what the hub's own code costs: its Starlette app is called as ASGI in
this process (an in-process agent registered with `add_local` answers at once), at concurrency 16,
against a bare Starlette JSON route doing the least a JSON-RPC reply needs, both in the same run.
CPU time per request, so a busy machine (others' tests) skews it far less than throughput.

`--loop uvloop` runs the hub's event loop on uvloop (if installed; the agent and this client
stay on asyncio), to measure what that dependency would buy.

Targets: SendMessage added p50 at concurrency 1 through `/a2a/agents/{name}` of serve mode
<= 1 ms (issue 15); with `--hub routes` (issue 5): added p50 <= 2 ms, throughput at
concurrency 16 >= 0.5 x direct, SendStreamingMessage added time to first event <= 2 ms.
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
import uuid
from typing import Any

import aiohttp
import orjson

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# -- the fast agent (child process) ------------------------------------------------------------


def serve_agent(port: int, delay: float = 0.0) -> None:
    from aiohttp import web

    base = f"http://127.0.0.1:{port}"
    card = {
        "name": "fast",
        "description": "answers at once",
        "version": "1",
        "supportedInterfaces": [
            {"url": f"{base}/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "echo", "name": "echo", "description": "echo", "tags": ["echo"]}],
    }
    counter = itertools.count()

    def task(message: dict[str, Any], state: str) -> dict[str, Any]:
        n = next(counter)
        return {
            "id": f"task-{n}",
            "contextId": f"ctx-{n}",
            "status": {"state": state},
            "artifacts": [{"artifactId": "a", "parts": message.get("parts", [])}],
            "history": [message],
        }

    async def get_card(request: web.Request) -> web.Response:
        return web.json_response(card)

    async def rpc(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        message = body["params"]["message"]
        if delay:
            await asyncio.sleep(delay)
        if body["method"] == "SendStreamingMessage":
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            t = task(message, "TASK_STATE_WORKING")
            await response.write(
                b"data: "
                + orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": {"task": t}})
                + b"\n\n"
            )
            done = {
                "statusUpdate": {
                    "taskId": t["id"],
                    "contextId": t["contextId"],
                    "status": {"state": "TASK_STATE_COMPLETED"},
                }
            }
            await response.write(
                b"data: "
                + orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": done})
                + b"\n\n"
            )
            await response.write_eof()
            return response
        result = {"task": task(message, "TASK_STATE_COMPLETED")}
        return web.Response(
            body=orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_get("/.well-known/agent-card.json", get_card)
    app.router.add_post("/", rpc)
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        print=lambda *_: print("READY", flush=True),
        access_log=None,
    )


# -- the hub (child process) -------------------------------------------------------------------


def serve_hub(port: int, agent_url: str, db: str, loop: str = "asyncio") -> None:
    import logging

    import uvicorn
    from starlette.applications import Starlette

    from a2a import AgentSpec, Hub, HubSettings, SqliteTaskStore

    logging.basicConfig(level=logging.WARNING)
    hub = Hub(SqliteTaskStore(db), HubSettings())

    async def run() -> None:
        await hub.start({"fast": AgentSpec(url=agent_url)})
        config = uvicorn.Config(
            Starlette(routes=hub.routes()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
            await asyncio.sleep(0.01)
        print("READY", flush=True)
        await task
        await hub.close()

    if loop == "uvloop":
        import uvloop

        uvloop.run(run())
    else:
        asyncio.run(run())


# -- the client --------------------------------------------------------------------------------


# -- the hub's client to the agent: router_core.exchange (shipped) vs aiohttp (the fallback) ------


def install_aiohttp_upstream() -> None:
    """For a before/after comparison: the hub's whole calls to agents take aiohttp, the path
    they take when a proxy applies (serve mode's, under `--upstream aiohttp`, from the
    `sitecustomize` put on its PYTHONPATH)."""
    from router_core.exchange import Exchanges

    Exchanges.usable = lambda self, url: False  # type: ignore[method-assign]


async def client_cpu(url: str, rounds: int, per_round: int) -> dict[str, float]:
    """CPU of this process per SendMessage call to the agent at `url`: the hub's client as
    shipped (`AgentConnection` on `router_core.exchange`) and on aiohttp (the same connection
    with the shared session injected, as when a proxy applies), alternating round by round."""
    from a2a.upstream import AgentConnection
    from router_core.http import close_session, get_session

    shipped = AgentConnection(url, "1.0")
    on_aiohttp = AgentConnection(url, "1.0", session=get_session)

    def params() -> dict[str, Any]:
        return orjson.loads(sdk_body())["params"]  # type: ignore[no-any-return]

    async def exchange_call() -> None:
        await shipped.call("SendMessage", params())

    async def aiohttp_call() -> None:
        await on_aiohttp.call("SendMessage", params())

    costs: dict[str, list[float]] = {"aiohttp": [], "exchange": []}
    calls = {"aiohttp": aiohttp_call, "exchange": exchange_call}
    for call in calls.values():
        for _ in range(200):
            await call()
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.process_time()
            for _ in range(per_round):
                await call()
            costs[name].append((time.process_time() - started) / per_round * 1e6)
    await close_session()
    return {f"{name}_us": statistics.median(values) for name, values in costs.items()}


def aiohttp_upstream_path(tmp: str) -> str:
    """A directory whose `sitecustomize` runs `install_aiohttp_upstream` at start-up."""
    path = os.path.join(tmp, "aiohttp-upstream")
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "sitecustomize.py"), "w") as file:
        file.write(
            f"import sys\nsys.path.insert(0, {ROOT!r})\n"
            "from benchmarks.a2a_bench import install_aiohttp_upstream\n"
            "install_aiohttp_upstream()\n"
        )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "READY":
        process.kill()
        raise RuntimeError(f"child {args[0]} did not start: {line!r}")
    return process


def body(method: str) -> bytes:
    message = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"text": "hello " * 8}],
    }
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"message": message}}
    )


HEADERS = {"Content-Type": "application/json", "A2A-Version": "1.0"}


async def send_once(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with session.post(url, data=body("SendMessage"), headers=HEADERS) as response:
        reply = orjson.loads(await response.read())
    assert "result" in reply, reply
    return time.perf_counter() - started


async def first_event(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with session.post(
        url, data=body("SendStreamingMessage"), headers={**HEADERS, "Accept": "text/event-stream"}
    ) as response:
        buffer = b""
        elapsed = None
        async for chunk in response.content.iter_any():
            buffer += chunk.replace(b"\r\n", b"\n")  # sse-starlette ends lines with CRLF
            if elapsed is None and b"\n\n" in buffer:
                elapsed = time.perf_counter() - started
                assert b'"task"' in buffer.split(b"\n\n", 1)[0], buffer[:200]
    assert elapsed is not None
    return elapsed


async def latency(fn: Any, session: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    for _ in range(50):
        await fn(session, url)
    return [await fn(session, url) for _ in range(count)]


async def throughput(
    session: aiohttp.ClientSession, url: str, concurrency: int, seconds: float
) -> float:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await send_once(session, url)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - started)


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def measure(direct: str, hub: str, requests: int, seconds: float) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        results: dict[str, Any] = {}
        # interleave direct and hub runs so drift (thermal, page cache) hits both alike
        d1 = await latency(send_once, session, direct, requests)
        h1 = await latency(send_once, session, hub, requests)
        results["send_p50_direct_ms"] = p50(d1)
        results["send_p50_hub_ms"] = p50(h1)
        results["send_added_p50_ms"] = p50(h1) - p50(d1)
        td = await throughput(session, direct, 16, seconds)
        th = await throughput(session, hub, 16, seconds)
        results["send_rps_c16_direct"] = td
        results["send_rps_c16_hub"] = th
        results["send_throughput_ratio_c16"] = th / td
        sd = await latency(first_event, session, direct, requests // 2)
        sh = await latency(first_event, session, hub, requests // 2)
        results["stream_ttfe_p50_direct_ms"] = p50(sd)
        results["stream_ttfe_p50_hub_ms"] = p50(sh)
        results["stream_added_ttfe_p50_ms"] = p50(sh) - p50(sd)
        return results


# -- serve mode, as users run it -------------------------------------------------------------


def peer_python() -> str:
    cache = os.environ.get("JUNCTION_CI_CACHE") or os.path.expanduser("~/.cache/junction-ci")
    python = os.path.join(cache, "peers", "a2a-sdk", "bin", "python")
    if not os.path.exists(python):
        raise SystemExit(f"the a2a-sdk peer is not installed ({python}): run `bash .ci/run` once")
    return python


def ready(process: subprocess.Popen[str], what: str) -> subprocess.Popen[str]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if line.strip() != "READY":
        process.kill()
        raise RuntimeError(f"{what} did not start: {line!r}")
    return process


def start_junction(
    tmp: str, agent_url: str, port: int, access_log: bool, profile: str | None
) -> subprocess.Popen[bytes]:
    """`junction --mode serve` with the agent registered as `bench`."""
    from benchmarks.serve_mode import start_serve

    config = (
        f"store: {{url: 'sqlite:///{tmp}/junction.db'}}\n"
        f"a2a_agents:\n  bench: {{url: '{agent_url}'}}\n"
        f"logging: {{access_log: {'true' if access_log else 'false'}}}\n"
    )
    return start_serve(tmp, "junction", config, port=port, profile=profile)[0]


def sdk_body() -> bytes:
    message = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"text": "echo " + "hello " * 8}],
    }
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message": message}}
    )


async def sdk_send(session: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with session.post(url, data=sdk_body(), headers=HEADERS) as response:
        reply = orjson.loads(await response.read())
    elapsed = time.perf_counter() - started
    assert reply.get("result", {}).get("task", {}).get("artifacts"), reply
    return elapsed


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) process `pid` has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure_serve(direct: str, through: str, requests: int, pid: int) -> dict[str, Any]:
    """c=1, direct and through alternating request by request, so drift hits both alike; and
    Junction's own CPU time per request through it."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=4)) as session:
        for _ in range(100):
            await sdk_send(session, direct)
            await sdk_send(session, through)
        d: list[float] = []
        t: list[float] = []
        cpu = cpu_seconds(pid)
        for _ in range(requests):
            d.append(await sdk_send(session, direct))
            t.append(await sdk_send(session, through))
        cpu = cpu_seconds(pid) - cpu
    results: dict[str, Any] = {"junction_cpu_per_request_us": cpu / requests * 1e6}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        results[f"direct_{name}_ms"] = pct(d, q)
        results[f"through_{name}_ms"] = pct(t, q)
        results[f"added_{name}_ms"] = pct(t, q) - pct(d, q)
    results["ratio_p50"] = results["through_p50_ms"] / results["direct_p50_ms"]
    return results


def run_serve_mode(args: argparse.Namespace) -> None:
    agent_port, junction_port = free_port(), free_port()
    script = os.path.join(ROOT, "tests", "a2a", "peers", "sdk_agent.py")
    with tempfile.TemporaryDirectory() as tmp:
        if args.agent == "fast":
            agent = spawn("--serve-agent", str(agent_port), str(args.agent_delay))
        else:
            command = [peer_python(), script, "--port", str(agent_port), "--name", "bench"]
            agent = ready(
                subprocess.Popen(command, stdout=subprocess.PIPE, text=True), "the a2a-sdk agent"
            )
        agent_url = f"http://127.0.0.1:{agent_port}"
        if args.upstream == "aiohttp":  # the Junction process (only) takes the fallback
            inherited = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = os.pathsep.join(
                [aiohttp_upstream_path(tmp), *([inherited] if inherited else [])]
            )
        try:
            junction = start_junction(
                tmp, agent_url, junction_port, not args.no_access_log, args.profile
            )
            try:
                results = asyncio.run(
                    measure_serve(
                        agent_url + "/",
                        f"http://127.0.0.1:{junction_port}/a2a/agents/bench",
                        args.requests,
                        junction.pid,
                    )
                )
            finally:
                junction.send_signal(2)  # SIGINT: py-spy writes its profile when the child ends
                junction.wait(60)
        finally:
            agent.terminate()
            agent.wait(10)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    log = "off" if args.no_access_log else "on"
    client = ", agent calls on aiohttp (the fallback)" if args.upstream == "aiohttp" else ""
    print(
        f"junction --mode serve (access log {log}{client}), {args.agent} agent, SendMessage, c=1, {args.requests} each way:"
    )
    for name in ("p50", "p99"):
        print(
            f"  {name}: direct {results[f'direct_{name}_ms']:.3f} ms, through /a2a/agents/bench {results[f'through_{name}_ms']:.3f} ms, added {results[f'added_{name}_ms']:.3f} ms"
        )
    print(f"  ratio p50 {results['ratio_p50']:.2f}; target: added p50 <= 1 ms")
    print(
        f"  Junction's CPU per request through it: {results['junction_cpu_per_request_us']:.0f} us"
    )


# -- in process: the hub's own cost, no sockets ---------------------------------------------------


def asgi_post(body_bytes: bytes) -> tuple[dict[str, Any], Any, Any, list[dict[str, Any]]]:
    """scope, receive and send for one POST /a2a, and the list the reply's messages land in."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/a2a",
        "raw_path": b"/a2a",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"a2a-version", b"1.0"),
            (b"content-length", str(len(body_bytes)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }
    messages = [{"type": "http.request", "body": body_bytes, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    out: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    return scope, receive, send, out


async def cpu_per_request(app: Any, batches: int = 7, per_batch: int = 1000) -> float:
    """Microseconds of this process's CPU per request at concurrency 16 (the best batch)."""
    bodies = [body("SendMessage") for _ in range(16 * per_batch)]

    async def one(data: bytes) -> None:
        scope, receive, send, out = asgi_post(data)
        await app(scope, receive, send)
        assert b'"result"' in out[-1]["body"], out

    for data in bodies[:500]:
        await one(data)
    best = float("inf")
    for _ in range(batches):
        started = time.process_time()
        for i in range(per_batch):
            await asyncio.gather(*(one(d) for d in bodies[i * 16 : (i + 1) * 16]))
        best = min(best, (time.process_time() - started) / (16 * per_batch) * 1e6)
    return best


async def in_process() -> dict[str, float]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from a2a import Hub, HubSettings, SqliteTaskStore

    card = {
        "name": "fast",
        "skills": [{"id": "echo", "name": "echo", "description": "", "tags": []}],
    }
    ids = itertools.count()

    class Fast:
        """An in-process agent answering at once with a completed task."""

        version = "1.0"

        async def call(self, method: str, params: dict[str, Any]) -> Any:
            return {
                "task": {
                    "id": f"t{next(ids)}",
                    "contextId": "c",
                    "status": {"state": "TASK_STATE_COMPLETED"},
                    "artifacts": [{"artifactId": "a", "parts": [{"text": "ok"}]}],
                    "history": [params["message"]],
                }
            }

        def stream(self, method: str, params: dict[str, Any]) -> Any:
            raise NotImplementedError

    async def bare(request: Request) -> Response:
        message = orjson.loads(await request.body())
        task = {"id": "t", "contextId": "c", "status": {"state": "TASK_STATE_COMPLETED"}}
        reply = {"jsonrpc": "2.0", "id": message["id"], "result": {"task": task}}
        return Response(orjson.dumps(reply), media_type="application/json")

    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(SqliteTaskStore(os.path.join(tmp, "bench.db")), HubSettings())
        await hub.start()
        await hub.registry.add_local("fast", card, Fast())
        try:
            floor = await cpu_per_request(Starlette(routes=[Route("/a2a", bare, methods=["POST"])]))
            cost = await cpu_per_request(Starlette(routes=hub.routes()))
        finally:
            await hub.close()
    return {"bare_us": floor, "hub_us": cost, "hub_over_bare": cost / floor}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-agent":
        serve_agent(int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-hub":
        serve_hub(int(sys.argv[2]), sys.argv[3], sys.argv[4], *sys.argv[5:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--no-sockets", action="store_true")
    parser.add_argument("--hub", choices=("serve", "routes"), default="serve")
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument("--profile", metavar="DIR")
    parser.add_argument(
        "--agent", choices=("sdk", "fast"), default="sdk", help="serve mode's upstream agent"
    )
    parser.add_argument(
        "--client-cpu",
        action="store_true",
        help="only the hub's client to the agent: router_core.exchange vs aiohttp, CPU a call",
    )
    parser.add_argument(
        "--upstream",
        choices=("exchange", "aiohttp"),
        default="exchange",
        help="aiohttp: the hub's whole calls to the agent on aiohttp (as when a proxy applies), "
        "for a before/after comparison; default: as shipped (router_core.exchange)",
    )
    parser.add_argument(
        "--agent-delay",
        type=float,
        default=0.0,
        help="seconds the fast agent waits before it answers (what an idle gap costs the hub)",
    )
    args = parser.parse_args()
    if args.client_cpu:
        import uvloop

        port = free_port()
        agent = spawn("--serve-agent", str(port))
        try:
            costs = uvloop.run(client_cpu(f"http://127.0.0.1:{port}/", 16, 400))
        finally:
            agent.terminate()
            agent.wait(10)
        print(
            f"CPU per SendMessage call to the instant agent, c=1, uvloop: router_core.exchange (shipped) {costs['exchange_us']:.0f} us, aiohttp (the fallback) {costs['aiohttp_us']:.0f} us"
        )
        return
    if args.hub == "serve" and not args.no_sockets:
        run_serve_mode(args)
        return
    if args.no_sockets:
        import uvloop

        costs = uvloop.run(in_process())
        print(
            f"CPU per SendMessage at c=16, in process: bare Starlette JSON route {costs['bare_us']:.0f} us, hub {costs['hub_us']:.0f} us, hub/bare {costs['hub_over_bare']:.2f}"
        )
        return
    agent_port, hub_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        agent = spawn("--serve-agent", str(agent_port))
        hub = spawn(
            "--serve-hub",
            str(hub_port),
            f"http://127.0.0.1:{agent_port}",
            os.path.join(tmp, "bench.db"),
            args.loop,
        )
        try:
            results = asyncio.run(
                measure(
                    f"http://127.0.0.1:{agent_port}/",
                    f"http://127.0.0.1:{hub_port}/a2a",
                    args.requests,
                    args.seconds,
                )
            )
        finally:
            for process in (hub, agent):
                process.terminate()
                process.wait(10)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"SendMessage p50 c=1: direct {results['send_p50_direct_ms']:.3f} ms, hub {results['send_p50_hub_ms']:.3f} ms, added {results['send_added_p50_ms']:.3f} ms (target <= 2)"
    )
    print(
        f"SendMessage c=16: direct {results['send_rps_c16_direct']:.0f} req/s, hub {results['send_rps_c16_hub']:.0f} req/s, ratio {results['send_throughput_ratio_c16']:.2f} (target >= 0.5)"
    )
    print(
        f"SendStreamingMessage first event p50: direct {results['stream_ttfe_p50_direct_ms']:.3f} ms, hub {results['stream_ttfe_p50_hub_ms']:.3f} ms, added {results['stream_added_ttfe_p50_ms']:.3f} ms (target <= 2)"
    )


if __name__ == "__main__":
    main()
