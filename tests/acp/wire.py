"""A bare ACP client for the wire-level tests: it speaks NDJSON JSON-RPC over a real pipe.

The official SDK clients (see `peers/`) cannot send malformed input, never answer a permission
request, or race two prompts on purpose; this one can. It also plays the IDE's side of `fs/*`,
`terminal/*` and `session/request_permission` with handlers a test replaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from junction.bridges.acp_services import build_runtime, serve_acp
from junction.config import JunctionConfig
from tests.transports.conftest import pipe_pair
from transports import MessageStream, Oversized

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
HANG_GUARD = 20.0
"""Upper bound on any wait in these tests: a hang fails the test instead of the CI job."""

FS_CAPS = {"fs": {"readTextFile": True, "writeTextFile": True}, "terminal": True}


class ClientError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = str(error.get("message"))
        self.data = error.get("data")


class WireClient:
    """The IDE side of one ACP connection."""

    def __init__(self, stream: MessageStream) -> None:
        self.stream = stream
        self.updates: list[dict[str, Any]] = []
        self.agent_requests: list[dict[str, Any]] = []
        self.updates_before: dict[Any, int] = {}
        """How many updates had arrived when each response (by request id) arrived."""
        self.handlers: dict[str, Handler] = {
            "fs/read_text_file": self._read,
            "fs/write_text_file": self._write,
            "session/request_permission": self._allow_once,
            "terminal/create": self._terminal_create,
            "terminal/wait_for_exit": self._terminal_wait,
            "terminal/output": self._terminal_output,
            "terminal/kill": self._terminal_kill,
            "terminal/release": self._terminal_release,
        }
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 1000
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._terminals: dict[str, subprocess.CompletedProcess[bytes]] = {}

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read_loop())

    async def aclose(self) -> None:
        await self.stream.aclose()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        for task in self._tasks:
            task.cancel()

    # -- sending --------------------------------------------------------------------------------

    async def send_raw(self, message: Any) -> None:
        await self.stream.send(message if isinstance(message, bytes) else orjson.dumps(message))

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        """Send a request and return the whole response message (result or error)."""
        self._next += 1
        request_id = self._next
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        await self.send_raw(message)
        async with asyncio.timeout(HANG_GUARD):
            return await waiter

    def start_request(self, method: str, params: Any = None) -> asyncio.Task[dict[str, Any]]:
        return asyncio.create_task(self.request(method, params))

    async def call(self, method: str, params: Any = None) -> Any:
        """Send a request; return its result, raise ClientError for an error reply."""
        response = await self.request(method, params)
        if "error" in response:
            raise ClientError(response["error"])
        return response.get("result")

    async def notify(self, method: str, params: Any = None) -> None:
        await self.send_raw({"jsonrpc": "2.0", "method": method, "params": params})

    # -- common flows ---------------------------------------------------------------------------

    async def initialize(self, capabilities: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "initialize",
            {
                "protocolVersion": 1,
                "clientCapabilities": FS_CAPS if capabilities is None else capabilities,
                "clientInfo": {"name": "wire-test", "version": "1"},
            },
        )
        return result

    async def new_session(self, cwd: Path | str, **extra: Any) -> str:
        result = await self.call("session/new", {"cwd": str(cwd), "mcpServers": [], **extra})
        return str(result["sessionId"])

    async def prompt(self, session_id: str, text: str) -> dict[str, Any]:
        return await self.request(
            "session/prompt",
            {"sessionId": session_id, "prompt": [{"type": "text", "text": text}]},
        )

    # -- observing ------------------------------------------------------------------------------

    def kinds(self, session_id: str | None = None) -> list[str]:
        return [
            u["update"]["sessionUpdate"]
            for u in self.updates
            if session_id is None or u["sessionId"] == session_id
        ]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [u["update"] for u in self.updates if u["update"]["sessionUpdate"] == kind]

    def text(self, kind: str = "agent_message_chunk") -> str:
        return "".join(u["content"].get("text", "") for u in self.of_kind(kind))

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(HANG_GUARD):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    # -- receiving ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            raw = await self.stream.receive()
            if raw is None:
                break
            assert not isinstance(raw, Oversized)
            message = orjson.loads(raw)
            if "method" in message and "id" in message:
                self.agent_requests.append(message)
                task = asyncio.create_task(self._answer(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif "method" in message:
                if message["method"] == "session/update":
                    self.updates.append(message["params"])
            else:
                self.updates_before[message.get("id")] = len(self.updates)
                waiter = self._pending.pop(message.get("id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
            self._changed.set()
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("the agent closed the connection"))

    async def _answer(self, message: dict[str, Any]) -> None:
        handler = self.handlers.get(message["method"])
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        if handler is None:
            reply["error"] = {"code": -32601, "message": "Method not found"}
        else:
            try:
                reply["result"] = await handler(message.get("params") or {})
            except ClientError as exc:
                reply["error"] = {"code": exc.code, "message": exc.message}
                if exc.data is not None:
                    reply["error"]["data"] = exc.data
        with contextlib.suppress(ConnectionError):
            await self.send_raw(reply)

    # -- the IDE's side -------------------------------------------------------------------------

    async def _read(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            text = await asyncio.to_thread(Path(params["path"]).read_text)
        except FileNotFoundError:
            raise ClientError({"code": -32002, "message": "file not found"}) from None
        return {"content": text}

    async def _write(self, params: dict[str, Any]) -> None:
        await asyncio.to_thread(Path(params["path"]).write_text, params["content"])

    async def _allow_once(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"outcome": {"outcome": "selected", "optionId": "allow_once"}}

    async def _terminal_create(self, params: dict[str, Any]) -> dict[str, Any]:
        argv = [params["command"], *params.get("args", [])]
        done = await asyncio.to_thread(
            subprocess.run, argv, cwd=params.get("cwd"), capture_output=True
        )
        terminal_id = f"term_{len(self._terminals) + 1}"
        self._terminals[terminal_id] = done
        return {"terminalId": terminal_id}

    async def _terminal_wait(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"exitCode": self._terminals[params["terminalId"]].returncode}

    async def _terminal_output(self, params: dict[str, Any]) -> dict[str, Any]:
        done = self._terminals[params["terminalId"]]
        return {
            "output": (done.stdout + done.stderr).decode(),
            "truncated": False,
            "exitStatus": {"exitCode": done.returncode},
        }

    async def _terminal_kill(self, params: dict[str, Any]) -> None:
        return None

    async def _terminal_release(self, params: dict[str, Any]) -> None:
        self._terminals.pop(params["terminalId"], None)


def agent_config(model_url: str, db: Path, *, models: tuple[str, ...] = ("m1",)) -> JunctionConfig:
    """A configuration with one OpenAI-compatible backend (the fake model server)."""
    return JunctionConfig.model_validate(
        {
            "store": {"url": f"sqlite:///{db}"},
            "backends": {
                "fake": {"type": "openai", "url": f"{model_url}/v1", "models": list(models)}
            },
            "acp": {"default_model": models[0]},
        }
    )


@asynccontextmanager
async def agent(
    config: JunctionConfig, overrides: dict[str, Any] | None = None
) -> AsyncIterator[WireClient]:
    """The agent in this process, behind a real OS pipe pair, and a client on the other end."""
    runtime = build_runtime(config, overrides)
    async with pipe_pair(64 * 1024 * 1024) as (server_side, client_side):
        served = asyncio.create_task(serve_acp(server_side, runtime))
        client = WireClient(client_side)
        client.start()
        try:
            yield client
        finally:
            await client.aclose()
            async with asyncio.timeout(HANG_GUARD):
                await served
            await runtime.aclose()
