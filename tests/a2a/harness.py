"""Real peers for the A2A tests: official-SDK agents and clients in their own venv, a webhook
receiver, and the hub itself under uvicorn on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from a2a import Hub, HubSettings, SqliteTaskStore
from a2a.settings import AgentSpec, PushSettings
from tests.peers import python_peer
from tests.transports.servers import serve_app

PEERS = Path(__file__).parent / "peers"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def sdk_agent(
    name: str, version: str = "1.0", skills: tuple[str, ...] = (), *extra: str
) -> Iterator[str]:
    """Run tests/a2a/peers/sdk_agent.py; yields its base URL."""
    port = free_port()
    args = [
        str(python_peer("a2a-sdk")),
        str(PEERS / "sdk_agent.py"),
        "--port",
        str(port),
        "--name",
        name,
        "--version",
        version,
    ]
    for skill in skills:
        args += ["--skill", skill]
    args += list(extra)
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "READY", f"agent {name} did not start: {line!r}"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


class SdkClient:
    """tests/a2a/peers/sdk_client.py as a subprocess: one command line in, one answer line out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.info: dict[str, Any] = {}
        """The script's ready line (sdk_rest_client.py names the SDK transport it chose)."""

    async def call(self, op: str, timeout: float = 30, **args: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(orjson.dumps({"op": op, **args}) + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert line, "the SDK client exited"
        return orjson.loads(line)

    async def ok(self, op: str, **args: Any) -> Any:
        answer = await self.call(op, **args)
        assert "ok" in answer, answer
        return answer["ok"]


@asynccontextmanager
async def sdk_client(
    url: str, version: str, script: str = "sdk_client.py", *, token: str | None = None
) -> AsyncIterator[SdkClient]:
    """An SDK client script from tests/a2a/peers (`sdk_rest_client.py` for HTTP+JSON); `token`
    is sent as a bearer API key."""
    env = {**os.environ, **({"A2A_BEARER": token} if token else {})}
    process = await asyncio.create_subprocess_exec(
        str(python_peer("a2a-sdk")),
        str(PEERS / script),
        url,
        version,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    client = SdkClient(process)
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), 30)
        client.info = orjson.loads(ready)
        assert client.info.get("ok") == "ready", ready
        yield client
    finally:
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()


class Webhooks:
    """A webhook receiver: records every POST; `mode` makes it fail or hang."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.arrived = asyncio.Event()
        self.mode = "ok"
        self.failures_left = 0
        self.attempts = 0

    async def endpoint(self, request: Request) -> Response:
        self.attempts += 1
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.failures_left > 0:
            self.failures_left -= 1
            return Response(status_code=500)
        self.received.append((dict(request.headers), orjson.loads(await request.body())))
        self.arrived.set()
        return Response(status_code=200)

    async def wait_for(self, predicate: Any, timeout: float = 10) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for headers, body in self.received:
                    if predicate(headers, body):
                        return headers, body
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[Webhooks, str]]:
    hooks = Webhooks()
    app = Starlette(routes=[Route("/hook", hooks.endpoint, methods=["POST"])])
    async with serve_app(app) as base:
        yield hooks, f"{base}/hook"


def hub_settings(**overrides: Any) -> HubSettings:
    push = PushSettings(
        allow_insecure_loopback=True, backoff=0.05, max_backoff=0.2, timeout=1.0, max_attempts=3
    )
    return HubSettings(push=push, card_timeout=2.0, **overrides)


@asynccontextmanager
async def running_hub(
    agents: dict[str, str], db: str | os.PathLike[str], **settings: Any
) -> AsyncIterator[tuple[Hub, str]]:
    hub = Hub(SqliteTaskStore(db), hub_settings(**settings))
    await hub.start({name: AgentSpec(url=url) for name, url in agents.items()})
    try:
        async with serve_app(Starlette(routes=hub.routes())) as base:
            yield hub, base
    finally:
        await hub.close()


def task_of(events: list[Any]) -> dict[str, Any]:
    """The task in a list of stream events (or send results)."""
    for event in events:
        if "task" in event:
            return dict(event["task"])
    raise AssertionError(f"no task in {events}")


def texts(task: dict[str, Any]) -> list[str]:
    """Every text part of a task's artifacts, in order."""
    return [p.get("text", "") for a in task.get("artifacts", []) for p in a.get("parts", [])]


async def rpc(base: str, method: str, params: Any, path: str = "/a2a") -> Any:
    """One 1.0 JSON-RPC call: the reply, or the list of SSE replies of a stream."""
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            base + path,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers={"A2A-Version": "1.0"},
        )
        if response.headers["content-type"].startswith("text/event-stream"):
            return [
                orjson.loads(line[5:])
                for line in response.text.splitlines()
                if line.startswith("data:")
            ]
        return response.json()


def send_params(text: str, agent: str) -> dict[str, Any]:
    """SendMessage params for `text`, routed to `agent` by name."""
    return {
        "message": {
            "messageId": text,
            "role": "ROLE_USER",
            "parts": [{"text": text}],
            "metadata": {"agent": agent},
        }
    }


class Recorder:
    """A pass-through proxy in front of a real agent that keeps the headers of each request;
    the agent's card is served with its URLs pointing at the proxy, so callers stay on it."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.requests: list[tuple[str, dict[str, str]]] = []

    async def endpoint(self, request: Request) -> Response:
        self.requests.append((request.url.path, dict(request.headers)))
        keep = {"content-type", "a2a-version", "accept"}
        headers = {k: v for k, v in request.headers.items() if k in keep}
        async with httpx.AsyncClient(timeout=20) as http:
            answer = await http.request(
                request.method,
                self.target + request.url.path,
                params=dict(request.query_params),
                content=await request.body(),
                headers=headers,
            )
        media = answer.headers.get("content-type", "application/json")
        content = answer.content
        if request.url.path.endswith("agent-card.json"):
            own = str(request.base_url).rstrip("/")
            content = content.replace(self.target.encode(), own.encode())
        return Response(content, status_code=answer.status_code, media_type=media)


@asynccontextmanager
async def recording_proxy(target: str) -> AsyncIterator[tuple[Recorder, str]]:
    """`Recorder` served on loopback; yields it and its base URL."""
    recorder = Recorder(target)
    verbs = ["GET", "POST", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", recorder.endpoint, methods=verbs)])
    async with serve_app(app) as base:
        yield recorder, base
