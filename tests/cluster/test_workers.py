"""`server.workers: N`: N forked `junction --mode serve` workers on one listening socket, under
one supervisor: both answer on the one port (the `x-junction-replica` header names the worker),
a killed worker is started again, SIGTERM drains every worker (a request in flight finishes),
and workers that cannot start are one clear line and exit code 4."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import orjson

from tests.cluster.harness import HANG_GUARD
from tests.router_core.llm_servers import FakeLLMServer, Reply, openai_server
from tests.test_bridge import JUNCTION, Proc

CHAT = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


def config(tmp_path: Path, store: str, model: FakeLLMServer | None = None) -> Path:
    path = tmp_path / "junction.json"
    doc: dict[str, object] = {"server": {"port": 0, "workers": 2}, "store": {"url": store}}
    if model is not None:
        doc["backends"] = {"fake": {"type": "openai", "url": f"{model.url}/v1", "models": ["m1"]}}
    path.write_bytes(orjson.dumps(doc))
    return path


async def start(path: Path) -> Proc:
    process = await asyncio.create_subprocess_exec(
        JUNCTION, "--mode", "serve", "--config", str(path),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "JUNCTION_LOG_FORMAT": "plain"},
    )  # fmt: skip
    proc = Proc(process)
    proc.start_draining()
    return proc


async def logged(proc: Proc, pattern: str) -> re.Match[str]:
    async with asyncio.timeout(HANG_GUARD * 3):  # a loaded machine starts workers slowly
        while (found := re.search(pattern, proc.log)) is None:
            assert proc.process.returncode is None, proc.log
            await asyncio.sleep(0.05)
    return found


async def workers_answering(url: str, want: int) -> set[str]:
    """Worker names seen answering, over fresh connections, until `want` distinct ones did."""
    seen: set[str] = set()
    async with asyncio.timeout(HANG_GUARD):
        while len(seen) < want:
            async with httpx.AsyncClient() as http:  # a new connection each round
                answers = await asyncio.gather(*(http.get(f"{url}/health/live") for _ in range(8)))
            seen |= {a.headers["x-junction-replica"] for a in answers}
    return seen


async def test_two_workers_share_a_port_restart_and_drain(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        proc = await start(config(tmp_path, f"sqlite:///{tmp_path / 'j.db'}", model))
        try:
            port = (await logged(proc, r"listening on http://127\.0\.0\.1:(\d+)")).group(1)
            pids = (await logged(proc, r"2 workers serving \(pids (\d+) (\d+)\)")).groups()
            url = f"http://127.0.0.1:{port}"
            both = await workers_answering(url, 2)

            victim = int(pids[1])
            os.kill(victim, signal.SIGKILL)
            restarted = await logged(proc, r"worker 2 serving again \(pids (\d+) (\d+)\)")
            after = await workers_answering(url, 2)

            model.default = Reply(text="slow answer", latency=2.0)
            async with httpx.AsyncClient(timeout=HANG_GUARD) as http:
                in_flight = asyncio.ensure_future(
                    http.post(f"{url}/v1/chat/completions", json=CHAT)
                )
                async with asyncio.timeout(HANG_GUARD):
                    while not model.chat_requests:  # noqa: ASYNC110 (another process)
                        await asyncio.sleep(0.02)
                proc.process.send_signal(signal.SIGTERM)
                answered = await in_flight
            code = await proc.exit_code()
        finally:
            await proc.kill()
    assert len(both) == 2 and all(name.endswith(tuple(pids)) for name in both)
    assert restarted.group(2) != str(victim) and restarted.group(1) == pids[0]
    assert after == {n for n in after if n.endswith(restarted.groups())} and len(after) == 2
    assert answered.status_code == 200
    assert answered.json()["choices"][0]["message"]["content"] == "slow answer"
    assert code == 0
    assert proc.log.count("Finished server process") == 2  # both drained and stopped


async def test_workers_that_cannot_start_say_why_once(tmp_path: Path) -> None:
    memory = await start(config(tmp_path, "sqlite:///:memory:"))
    assert await memory.exit_code() == 4
    assert "server.workers: 2 needs a store every worker can open" in memory.log

    broken = await start(config(tmp_path, "sqlite:////proc/no-such-dir/j.db"))
    assert await broken.exit_code() == 4
    lines = [ln for ln in broken.stderr if ln.startswith("junction: server.workers")]
    assert lines == [
        "junction: server.workers: worker 1 of 2 could not start (exit code 3); its log says "
        "why; stopping the others\n"
    ]
    assert "Started server process" in broken.log and broken.log.count("Started server") == 1


async def test_two_workers_on_one_sqlite_file_keep_every_task(tmp_path: Path) -> None:
    """SQLite in WAL mode across worker processes on one host: concurrent SendMessage calls
    (batches of 40, until both workers have answered some) are all stored, and either worker
    lists all of them."""
    from tests.a2a.harness import sdk_agent, send_params

    with sdk_agent("echoer") as agent:
        path = config(tmp_path, f"sqlite:///{tmp_path / 'j.db'}")
        doc = orjson.loads(path.read_bytes())
        doc["a2a_agents"] = {"echoer": {"url": agent}}
        path.write_bytes(orjson.dumps(doc))
        proc = await start(path)
        try:
            port = (await logged(proc, r"listening on http://127\.0\.0\.1:(\d+)")).group(1)
            await logged(proc, r"2 workers serving")
            url = f"http://127.0.0.1:{port}/a2a"

            async def send(http: httpx.AsyncClient, i: int) -> httpx.Response:
                body = {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "SendMessage",
                    "params": send_params(f"echo {i}", "echoer"),
                }
                return await http.post(url, json=body, headers={"A2A-Version": "1.0"})

            sent: list[httpx.Response] = []
            limits = httpx.Limits(max_connections=16, max_keepalive_connections=0)
            async with httpx.AsyncClient(timeout=HANG_GUARD, limits=limits) as http:
                async with asyncio.timeout(HANG_GUARD):  # until both workers have written
                    while len({r.headers["x-junction-replica"] for r in sent}) < 2:
                        batch = range(len(sent), len(sent) + 40)
                        sent += await asyncio.gather(*(send(http, i) for i in batch))
            listings: dict[str, int] = {}
            async with asyncio.timeout(HANG_GUARD):
                while len(listings) < 2:  # ListTasks from both workers, fresh connections
                    async with httpx.AsyncClient() as http:
                        body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks",
                                "params": {"pageSize": 100}}  # fmt: skip
                        answer = await http.post(url, json=body, headers={"A2A-Version": "1.0"})
                    listings[answer.headers["x-junction-replica"]] = answer.json()["result"][
                        "totalSize"
                    ]
        finally:
            proc.process.send_signal(signal.SIGTERM)
            code = await proc.exit_code()
    workers = {r.headers["x-junction-replica"] for r in sent}
    completed = [r.json()["result"]["task"]["status"]["state"] for r in sent]
    assert len(workers) == 2  # both wrote
    assert completed == ["TASK_STATE_COMPLETED"] * len(sent)
    assert list(listings.values()) == [len(sent), len(sent)]
    assert code == 0
