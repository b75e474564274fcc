"""SIGTERM in the middle of a streaming ACP turn, an MCP call and an A2A stream.

A real `junction --mode serve` process with `server.shutdown_grace_seconds: 1`, a fake model that
streams slowly, a stdio MCP server with a slow tool and a real a2a-sdk agent whose task keeps
working until cancelled. Each client must get a proper ending (not a hang, not a bare
disconnect), the process must exit 0, its MCP child must be gone, and a restart on the same
store must find the ACP session and the A2A task.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse

from tests.a2a.harness import sdk_agent
from tests.router_core.llm_servers import Reply, openai_server
from tests.test_serve_mode import Served, start
from transports import MessageStream, connect_streamable, connect_websocket

HANG_GUARD = 30.0
"""Upper bound on every wait: a hang fails the test instead of the CI job."""

SERVERS = Path(__file__).parent / "mcp_gateway" / "servers.py"
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
A2A_HEADERS = {"A2A-Version": "1.0"}


# -- ACP over WebSocket ---------------------------------------------------------------------------


class AcpClient:
    """A bare ACP client over a WebSocket: requests by id, every other message kept in order."""

    def __init__(self, stream: MessageStream) -> None:
        self.stream = stream
        self.replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.updates: list[dict[str, Any]] = []
        self.update_seen = asyncio.Event()
        self.closed = asyncio.Event()
        self._next = 0
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while (raw := await self.stream.receive()) is not None:
                assert isinstance(raw, bytes)
                message = orjson.loads(raw)
                if "id" in message and "method" not in message:
                    future = self.replies.get(message["id"])
                    if future is not None and not future.done():
                        future.set_result(message)
                elif message.get("method") == "session/update":
                    self.updates.append(message["params"])
                    self.update_seen.set()
        finally:
            self.closed.set()

    def send(self, method: str, params: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Send a request; the future holds its whole reply (`result` or `error`)."""
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[self._next] = future
        message = {"jsonrpc": "2.0", "id": self._next, "method": method, "params": params}
        asyncio.get_running_loop().create_task(self.stream.send(orjson.dumps(message)))
        return future

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        reply = await asyncio.wait_for(self.send(method, params), HANG_GUARD)
        assert "result" in reply, reply
        return reply["result"]

    async def aclose(self) -> None:
        await self.stream.aclose()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


@asynccontextmanager
async def acp_client(served: Served) -> AsyncIterator[AcpClient]:
    client = AcpClient(await connect_websocket(f"ws://127.0.0.1:{served.port}/acp"))
    try:
        await client.call("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
        yield client
    finally:
        await client.aclose()


# -- MCP over Streamable HTTP (raw JSON-RPC) --------------------------------------------------------


class McpClient:
    def __init__(self, http: httpx.AsyncClient, base: str) -> None:
        self.http = http
        self.url = f"{base}/mcp"
        self.headers = dict(MCP_HEADERS)

    async def open(self) -> None:
        init = await self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "shutdown-test", "version": "1"},
            },
        )
        assert "result" in init, init
        await self.http.post(
            self.url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=self.headers,
        )

    async def request(self, method: str, params: dict[str, Any], request_id: int = 1) -> Any:
        """One request; its JSON-RPC reply (from a JSON body or an SSE stream)."""
        response = await self.http.post(
            self.url,
            json={"jsonrpc": "2.0", "id": request_id, "method": method, "params": params},
            headers=self.headers,
        )
        if "mcp-session-id" in response.headers:
            self.headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
            self.headers["MCP-Protocol-Version"] = "2025-11-25"
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            messages = [
                orjson.loads(line[5:])
                for line in response.text.splitlines()
                if line.startswith("data:") and line[5:].strip()
            ]
            replies = [m for m in messages if m.get("id") == request_id]
            assert replies, f"no reply in {response.text!r}"
            return replies[-1]
        return response.json()


# -- the scenario ---------------------------------------------------------------------------------


def config_for(tmp_path: Path, model_url: str, agent_url: str) -> str:
    return (
        f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n"
        "server: {shutdown_grace_seconds: 1}\n"
        "backends:\n"
        f"  fake: {{type: openai, url: '{model_url}/v1', models: [m1]}}\n"
        "acp: {default_model: m1}\n"
        "mcp_servers:\n"
        f"  slowsrv: {{command: {sys.executable}, args: ['{SERVERS}', 'ok']}}\n"
        "a2a_agents:\n"
        f"  worker: {{url: '{agent_url}'}}\n"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead; only a parent that never reaps it keeps it in the table.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def tool_named(mcp: McpClient, suffix: str) -> str:
    async with asyncio.timeout(HANG_GUARD):
        while True:
            reply = await mcp.request("tools/list", {}, request_id=2)
            names = [t["name"] for t in reply["result"]["tools"]]
            found = [n for n in names if n.endswith(suffix) and n.startswith("slowsrv")]
            if found:
                return str(found[0])
            await asyncio.sleep(0.2)


async def a2a_events(
    http: httpx.AsyncClient, base: str, events: list[dict[str, Any]], started: asyncio.Event
) -> str:
    """SendStreamingMessage through the hub; every `data:` payload into `events`; how it ended."""
    body = {
        "jsonrpc": "2.0",
        "id": "stream",
        "method": "SendStreamingMessage",
        "params": {
            "message": {
                "messageId": "shutdown-test",
                "role": "ROLE_USER",
                "parts": [{"text": "wait"}],
                "metadata": {"agent": "worker"},
            }
        },
    }
    try:
        async with aconnect_sse(http, "POST", f"{base}/a2a", json=body, headers=A2A_HEADERS) as es:
            async for sse in es.aiter_sse():
                events.append(orjson.loads(sse.data))
                started.set()
    except httpx.HTTPError as exc:
        return f"broken: {type(exc).__name__}: {exc}"
    return "ended"


def state_of(event: dict[str, Any]) -> str | None:
    result = event.get("result") or {}
    if "task" in result:
        return str(result["task"]["status"]["state"])
    if "statusUpdate" in result:
        return str(result["statusUpdate"]["status"]["state"])
    return None


@pytest.mark.timeout(180)
async def test_sigterm_mid_stream_ends_every_surface_cleanly(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        # About 1,100 chunks 0.1 s apart: the turn is still streaming whenever SIGTERM lands.
        model.default = Reply(text="slow words " * 400, chunk_size=4, chunk_delay=0.1)
        with sdk_agent("worker") as agent_url:
            config = config_for(tmp_path, model.url, agent_url)
            served = await start(tmp_path, config)
            try:
                ended = await sigterm_mid_stream(served, tmp_path)
            finally:
                if served.process.returncode is None:
                    served.process.kill()
                    await served.process.wait()

            assert ended.exit_code == 0, ended.stderr
            # ACP: the prompt answered before the WebSocket closed normally.
            assert ended.prompt.get("result") == {"stopReason": "cancelled"}, ended.prompt
            assert ended.ws_close in (1000, 1001), ended.ws_close
            # MCP: the call in flight got a JSON-RPC error, not a cut connection.
            assert isinstance(ended.mcp, dict), ended.mcp
            assert ended.mcp["id"] == 4 and isinstance(ended.mcp["error"]["code"], int)
            assert ended.mcp["error"]["message"]
            # A2A: the stream ended with a status event that says why, the task still working.
            assert ended.a2a == "ended", ended.a2a
            last = ended.a2a_events[-1]["result"]["statusUpdate"]
            assert last["taskId"] == ended.task_id
            assert last["metadata"]["junction"]["shutdown"] is True
            assert last["status"]["state"] == "TASK_STATE_WORKING"
            assert "shutting down" in last["status"]["message"]["parts"][0]["text"]
            # No orphan: the stdio MCP server is gone with junction.
            assert not alive(ended.mcp_child), "the MCP child outlived junction"
            assert "Traceback" not in ended.stderr, ended.stderr

            await check_restart(tmp_path, config, ended)


@dataclass
class Ended:
    """How each client saw the shutdown."""

    exit_code: int | None = None
    session_id: str = ""
    prompt: dict[str, Any] = field(default_factory=dict)
    ws_close: int | None = None
    mcp_child: int = 0
    mcp: Any = None
    a2a: str = ""
    a2a_events: list[dict[str, Any]] = field(default_factory=list)
    task_id: str | None = None
    stderr: str = ""


async def sigterm_mid_stream(served: Served, tmp_path: Path) -> Ended:
    ended = Ended()
    async with httpx.AsyncClient(timeout=HANG_GUARD) as http, acp_client(served) as acp:
        # MCP: the upstream's pid (to look for an orphan later), then a slow call in flight.
        mcp = McpClient(http, served.base)
        await mcp.open()
        pid_reply = await mcp.request("tools/call", {"name": await tool_named(mcp, "pid")}, 3)
        ended.mcp_child = int(pid_reply["result"]["content"][0]["text"])
        slow_tool = await tool_named(mcp, "slow")
        slow = asyncio.create_task(
            mcp.request("tools/call", {"name": slow_tool, "arguments": {"seconds": 120}}, 4)
        )

        # A2A: a task that keeps working until cancelled, streamed through the hub.
        a2a_started = asyncio.Event()
        stream = asyncio.create_task(a2a_events(http, served.base, ended.a2a_events, a2a_started))

        # ACP: a prompt whose answer streams slowly.
        session = await acp.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
        ended.session_id = session["sessionId"]
        prompt = acp.send(
            "session/prompt",
            {"sessionId": ended.session_id, "prompt": [{"type": "text", "text": "talk slowly"}]},
        )
        async with asyncio.timeout(HANG_GUARD):
            await acp.update_seen.wait()
            await a2a_started.wait()
        await asyncio.sleep(0.5)  # let the MCP call reach its upstream
        assert not prompt.done() and not slow.done() and not stream.done()

        served.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(HANG_GUARD):
            ended.exit_code = await served.process.wait()
            ended.mcp = (await asyncio.gather(slow, return_exceptions=True))[0]
            ended.a2a = await stream
            await acp.closed.wait()
        ended.prompt = prompt.result() if prompt.done() else {"no answer": True}
        ended.ws_close = acp.stream.close_code  # type: ignore[attr-defined]
        ended.task_id = next(
            (e["result"]["task"]["id"] for e in ended.a2a_events if "task" in e["result"]), None
        )
        ended.stderr = await served.stderr()
    return ended


async def check_restart(tmp_path: Path, config: str, ended: Ended) -> None:
    """The store is intact: the ACP session loads with its prompt, the A2A task is readable."""
    served = await start(tmp_path, config)
    try:
        async with acp_client(served) as acp:
            await acp.call(
                "session/load",
                {"sessionId": ended.session_id, "cwd": str(tmp_path), "mcpServers": []},
            )
            said = [
                u["update"]["content"].get("text")
                for u in acp.updates
                if u["update"].get("sessionUpdate") == "user_message_chunk"
            ]
            assert "talk slowly" in said, acp.updates
        async with httpx.AsyncClient(timeout=HANG_GUARD) as http:
            reply = await http.post(
                f"{served.base}/a2a",
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "GetTask",
                    "params": {"id": ended.task_id},
                },
                headers=A2A_HEADERS,
            )
        task = reply.json()["result"]
        assert task["id"] == ended.task_id
        assert task["status"]["state"] == "TASK_STATE_WORKING"  # left running at its agent
        assert task["history"][0]["parts"] == [{"text": "wait"}]
    finally:
        served.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(served.process.wait(), HANG_GUARD) == 0


async def test_sigterm_mid_prompt_over_acp_http_answers_cancelled(tmp_path: Path) -> None:
    """ACP's Streamable HTTP transport on `/acp` too: the prompt answers before the stream ends."""
    async with openai_server(models=["m1"]) as model:
        model.default = Reply(text="slow words " * 400, chunk_size=4, chunk_delay=0.1)
        served = await start(
            tmp_path,
            "server: {shutdown_grace_seconds: 1}\n"
            f"backends: {{fake: {{type: openai, url: '{model.url}/v1', models: [m1]}}}}\n"
            "acp: {default_model: m1}\n",
        )
        acp = AcpClient(await connect_streamable(f"{served.base}/acp"))
        try:
            await acp.call("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
            session = await acp.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            prompt = acp.send(
                "session/prompt",
                {"sessionId": session["sessionId"], "prompt": [{"type": "text", "text": "go"}]},
            )
            await asyncio.wait_for(acp.update_seen.wait(), HANG_GUARD)
            served.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(served.process.wait(), HANG_GUARD) == 0
            await asyncio.wait_for(acp.closed.wait(), HANG_GUARD)
            assert prompt.done(), "the prompt got no answer"
            assert prompt.result().get("result") == {"stopReason": "cancelled"}, prompt.result()
        finally:
            await acp.aclose()
            if served.process.returncode is None:
                served.process.kill()
                await served.process.wait()
