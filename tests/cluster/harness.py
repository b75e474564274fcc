"""Several `junction --mode serve` replicas on one PostgreSQL database and one Redis, behind a
real HAProxy (round robin, no stickiness), all on loopback; the a2a-sdk as the agent behind
them and as the client in front (each in its own process, from the SDK's venv)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.a2a.harness import free_port
from tests.peers import python_peer
from tests.test_bridge import JUNCTION, Proc

PEERS = Path(__file__).parent / "peers"
HANG_GUARD = 30.0
"""Longest wait for anything here (a guard against a hang, not a measurement)."""


@dataclass
class Replica:
    name: str
    port: int
    config: Path
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        process = await asyncio.create_subprocess_exec(
            JUNCTION, "--mode", "serve", "--config", str(self.config), "--port", str(self.port),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={**os.environ, "JUNCTION_LOG_FORMAT": "plain", "JUNCTION_REPLICA_ID": self.name},
        )  # fmt: skip
        self.proc = Proc(process)
        self.proc.start_draining()
        async with asyncio.timeout(HANG_GUARD * 3):  # a loaded CI machine starts them slowly
            while "listening on http://" not in self.proc.log:
                assert process.returncode is None, self.proc.log
                await asyncio.sleep(0.05)


def replica_config(
    path: Path, store: str, redis: str, agent: str, *, lease: float = 3.0, grace: int = 10
) -> Path:
    path.write_text(
        orjson.dumps(
            {
                "server": {"shutdown_grace_seconds": grace},
                "store": {"url": store},
                "cluster": {"redis_url": redis, "relay_lease_seconds": lease},
                "a2a": {
                    "push": {"allow_insecure_loopback": True, "lease": 2, "resume_interval": 0.5}
                },
                "a2a_agents": {"ticker": {"url": agent}},
            }
        ).decode()
    )
    return path


@contextlib.asynccontextmanager
async def haproxy(tmp: Path, replicas: list[Replica]) -> AsyncIterator[str]:
    """Debian's haproxy in the foreground: round robin, every request balanced on its own, a
    replica that refuses connections skipped (checks every 300 ms, three failed ones mark it
    down, and a refused request is redispatched meanwhile; a slow check answer is not a failed
    one, or a busy machine would take live replicas out of the rotation the tests predict)."""
    binary = shutil.which("haproxy")
    assert binary, "haproxy is not installed: run `bash .ci/run` (.ci/peers.d/haproxy.sh)"
    port = free_port()
    servers = "\n".join(
        f"  server {r.name} 127.0.0.1:{r.port} check inter 300 fall 3 rise 2" for r in replicas
    )
    config = tmp / "haproxy.cfg"
    config.write_text(
        "global\n  maxconn 512\n"
        "defaults\n  mode http\n  timeout connect 1s\n  timeout check 5s\n  timeout client 60s\n"
        "  timeout server 60s\n  retries 3\n  option redispatch 1\n"
        f"frontend a2a\n  bind 127.0.0.1:{port}\n  default_backend replicas\n"
        "backend replicas\n  balance roundrobin\n  option httpchk GET /health/live\n"
        f"{servers}\n"
    )
    process = await asyncio.create_subprocess_exec(
        binary, "-f", str(config), "-db", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(HANG_GUARD):
            while True:
                assert process.returncode is None, f"haproxy exited: {config.read_text()}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/health/live")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield url
    finally:
        process.terminate()
        await process.wait()


@contextlib.contextmanager
def ticker_agent() -> Any:
    port = free_port()
    process = subprocess.Popen(
        [str(python_peer("a2a-sdk")), str(PEERS / "ticker_agent.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "READY", "the ticker agent did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


@dataclass
class ClusterClient:
    """tests/cluster/peers/cluster_client.py: commands in, answers and stream events out."""

    process: asyncio.subprocess.Process
    answers: dict[int, asyncio.Queue[Any]] = field(default_factory=dict)
    stream: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None
    counter: int = 0

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            item = orjson.loads(line)
            if "n" in item:
                self.answers.setdefault(item["n"], asyncio.Queue()).put_nowait(item)
            else:
                self.stream.put_nowait(item)

    def send(self, op: str, **args: Any) -> int:
        assert self.process.stdin is not None
        self.counter += 1
        self.process.stdin.write(orjson.dumps({"n": self.counter, "op": op, **args}) + b"\n")
        self.answers.setdefault(self.counter, asyncio.Queue())
        return self.counter

    async def next(self, n: int) -> Any:
        async with asyncio.timeout(HANG_GUARD):
            return await self.answers[n].get()

    async def call(self, op: str, **args: Any) -> tuple[Any, str]:
        """(result, replica) of one command."""
        answer = await self.next(self.send(op, **args))
        assert "ok" in answer, answer
        return answer["ok"], answer["replica"]

    async def streamed(self) -> Any:
        async with asyncio.timeout(HANG_GUARD):
            return await self.stream.get()


@contextlib.asynccontextmanager
async def cluster_client(url: str) -> AsyncIterator[ClusterClient]:
    process = await asyncio.create_subprocess_exec(
        str(python_peer("a2a-sdk")), str(PEERS / "cluster_client.py"), url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    client = ClusterClient(process)
    client.reader = asyncio.create_task(client._read())
    try:
        ready = await client.streamed()
        assert ready == {"ready": True}, ready
        yield client
    finally:
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()
        client.reader.cancel()
