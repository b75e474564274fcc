"""`junction --mode serve` as an operator runs it: a real process, real HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from tests.router_core.llm_servers import Reply, openai_server
from transports import HandshakeRefusedError, connect_streamable, connect_websocket

JUNCTION = str(Path(sys.executable).with_name("junction"))


@dataclass
class Served:
    process: asyncio.subprocess.Process
    base: str
    port: int
    lines: list[str] = field(default_factory=list)
    """Junction's stderr after the listening line, as `drain` reads it."""
    _read: int = 0
    _pump: asyncio.Task[None] | None = None
    _grew: asyncio.Event = field(default_factory=asyncio.Event)

    def drain(self) -> None:
        """Read stderr from now on, into `lines`: a pipe nobody reads fills (64 KiB of log
        lines: readiness polls on a busy machine are enough) and blocks Junction's next write,
        shutdown included."""
        self._pump = asyncio.ensure_future(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode(errors="replace"))
            self._grew.set()
        self._grew.set()

    async def next_line(self) -> str:
        """The next stderr line not yet returned here ('' once Junction closed stderr)."""
        assert self._pump is not None, "drain() first"
        while self._read >= len(self.lines):
            if self._pump.done():
                return ""
            self._grew.clear()
            await self._grew.wait()
        self._read += 1
        return self.lines[self._read - 1]

    async def stderr(self) -> str:
        """All of stderr after the listening line (waits for Junction to close it)."""
        assert self._pump is not None, "drain() first"
        await self._pump
        return "".join(self.lines)


async def start(tmp_path: Path, config: str = "", *args: str) -> Served:
    path = tmp_path / "junction.yaml"
    # Each test its own store: the default one in the user data dir is shared across runs.
    if "store:" not in config:
        config = f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n{config}"
    path.write_text(config)
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "--mode",
        "serve",
        "--config",
        str(path),
        "--port",
        "0",
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "JUNCTION_LOG_FORMAT": "plain"},
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, "junction exited before listening"
            found = re.search(r"listening on http://(\S+):(\d+)", line)
            if found:
                host, port = found.group(1), int(found.group(2))
                host = f"[{host}]" if ":" in host else "127.0.0.1"
                served = Served(process, f"http://{host}:{port}", port)
                served.drain()
                return served


async def stop(served: Served) -> int:
    if served.process.returncode is None:
        served.process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(served.process.wait(), 30)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    running = await start(tmp_path)
    yield running
    await stop(running)


async def test_health_answers(served: Served) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.get(f"{served.base}/health")
    assert reply.status_code == 200
    assert reply.json()["status"] == "healthy"


async def test_json_rpc_over_websocket_reaches_the_peer(served: Served) -> None:
    client = await connect_websocket(f"ws://127.0.0.1:{served.port}/acp")
    try:
        await client.send(
            b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}'
        )
        reply = orjson.loads(await asyncio.wait_for(client.receive(), 10))  # type: ignore[arg-type]
        assert reply["id"] == 1 and reply["result"]["protocolVersion"] == 1
        await client.send(b"{broken")
        reply = orjson.loads(await asyncio.wait_for(client.receive(), 10))  # type: ignore[arg-type]
        assert reply["id"] is None and reply["error"]["code"] == -32700
    finally:
        await client.aclose()


async def test_json_rpc_over_streamable_http_reaches_the_peer(served: Served) -> None:
    client = await connect_streamable(f"{served.base}/acp")
    try:
        await client.send(
            b'{"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": 1}}'
        )
        reply = orjson.loads(await asyncio.wait_for(client.receive(), 10))  # type: ignore[arg-type]
        assert reply["id"] == 0 and reply["result"]["protocolVersion"] == 1
        await client.send(b'{"jsonrpc": "2.0", "id": "s", "method": "no/such", "params": {}}')
        reply = orjson.loads(await asyncio.wait_for(client.receive(), 10))  # type: ignore[arg-type]
        assert reply["id"] == "s" and reply["error"]["code"] == -32601
    finally:
        await client.aclose()


async def test_the_old_sse_protocol_is_gone(served: Served) -> None:
    """`/acp/events` and `/acp/messages` (Junction's own SSE protocol before ACP's remote
    transport) are not served: a client of it learns so at once."""
    async with httpx.AsyncClient() as http:
        events = await http.get(f"{served.base}/acp/events")
        posted = await http.post(f"{served.base}/acp/messages?connection=x", json={})
    assert events.status_code == 404 and posted.status_code == 404


async def test_forged_host_header_is_refused_on_loopback(served: Served) -> None:
    async with httpx.AsyncClient() as http:
        forged = await http.get(f"{served.base}/acp", headers={"Host": "evil.example"})
        cross_origin = await http.get(
            f"{served.base}/acp", headers={"Origin": "http://evil.example"}
        )
    assert forged.status_code == 403
    assert cross_origin.status_code == 403


async def test_api_keys_are_required_and_checked(tmp_path: Path) -> None:
    served = await start(tmp_path, "server: {api_keys: [k-one, k-two]}\n")
    try:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{served.base}/health")).status_code == 200
            missing = await http.get(f"{served.base}/acp")
            wrong = await http.get(f"{served.base}/acp", headers={"Authorization": "Bearer nope"})
            assert missing.status_code == 401 and wrong.status_code == 401
            assert b"k-one" not in wrong.content and b"k-two" not in wrong.content
        with pytest.raises(HandshakeRefusedError):
            await connect_websocket(f"ws://127.0.0.1:{served.port}/acp", token="nope")
        client = await connect_websocket(f"ws://127.0.0.1:{served.port}/acp", token="k-two")
        await client.send(b'{"jsonrpc": "2.0", "id": 1, "method": "x"}')
        reply = orjson.loads(await asyncio.wait_for(client.receive(), 10))  # type: ignore[arg-type]
        assert reply["error"]["code"] == -32601
        await client.aclose()
    finally:
        assert await stop(served) == 0


def test_non_loopback_host_without_keys_refuses_to_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [JUNCTION, "--mode", "serve", "--host", "0.0.0.0", "--config", str(tmp_path / "none.yaml")],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    (tmp_path / "none.yaml").write_text("")
    done = subprocess.run(
        [JUNCTION, "--mode", "serve", "--host", "0.0.0.0", "--config", str(tmp_path / "none.yaml")],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert b"api_keys" in done.stderr and b"Traceback" not in done.stderr


async def test_sigterm_exits_zero(tmp_path: Path) -> None:
    served = await start(tmp_path)
    assert await stop(served) == 0


async def test_every_surface_is_mounted_and_health_names_what_is_down(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        model.default = Reply(text="routed")
        config = (
            "mcp_servers:\n"
            f"  broken: {{command: {sys.executable}, args: ['-c', 'raise SystemExit(3)']}}\n"
            "a2a_agents:\n"
            "  gone: {url: 'http://127.0.0.1:9'}\n"
            "backends:\n"
            f"  fake: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
        )
        served = await start(tmp_path, config)
        await check_every_surface(served)


async def check_every_surface(served: Served) -> None:
    try:
        async with httpx.AsyncClient() as http:
            health = await http.get(f"{served.base}/health")
            for _ in range(100):  # its state cycles failed -> reconnecting while it retries
                states = health.json()["components"]
                if states["mcp_servers"]["broken"].startswith("failed"):
                    break
                await asyncio.sleep(0.1)
                health = await http.get(f"{served.base}/health")
            body = health.json()
            assert body["status"] == "degraded"
            assert set(body["down"]) == {"mcp_servers.broken", "a2a_agents.gone"}
            assert body["components"]["mcp_servers"]["broken"].startswith("failed")

            card = await http.get(f"{served.base}/.well-known/agent-card.json")
            assert card.status_code == 200 and card.json()["name"]

            initialize = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "test", "version": "1"},
                },
            }
            mcp = await http.post(
                f"{served.base}/mcp",
                json=initialize,
                headers={"Accept": "application/json, text/event-stream"},
            )
            assert mcp.status_code == 200
            assert b"serverInfo" in mcp.content

            models = await http.get(f"{served.base}/v1/models")
            assert [m["id"] for m in models.json()["data"]] == ["m1"]
            completion = await http.post(
                f"{served.base}/v1/chat/completions",
                json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert completion.status_code == 200
            assert completion.headers["x-junction-backend"] == "fake"
            assert completion.json()["choices"][0]["message"]["content"] == "routed"
            # A whole answer goes out with its length, not chunked (one write, simpler parsing).
            assert completion.headers["content-length"] == str(len(completion.content))
            assert "transfer-encoding" not in completion.headers
            assert body["components"]["backends"] == {"fake": "ready"}
    finally:
        assert await stop(served) == 0


async def test_a2a_agents_are_tools_on_serve_modes_mcp_endpoint(tmp_path: Path) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from mcp_gateway._sdk import create_mcp_http_client
    from tests.a2a.harness import sdk_agent

    with sdk_agent("helper", "1.0") as agent:
        served = await start(tmp_path, f"a2a_agents:\n  helper: {{url: '{agent}'}}\n")
        try:
            async with create_mcp_http_client() as http:
                transport = streamable_http_client(f"{served.base}/mcp", http_client=http)
                async with Client(transport) as client:
                    names = set()
                    for _ in range(50):  # the agent's card is fetched in the background
                        names = {tool.name for tool in (await client.list_tools()).tools}
                        if "a2a__helper" in names:
                            break
                        await asyncio.sleep(0.1)
                    assert "a2a__helper" in names
                    result = await client.call_tool("a2a__helper", {"message": "echo served"})
            assert not result.is_error
            assert "echo: served" in str(result.content[0])
        finally:
            assert await stop(served) == 0


async def test_a_taken_port_is_one_clear_line_and_exit_code_3(tmp_path: Path) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    path = tmp_path / "junction.yaml"
    path.write_text(f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n")
    try:
        done = await asyncio.create_subprocess_exec(
            JUNCTION,
            "--mode",
            "serve",
            "--config",
            str(path),
            "--port",
            str(port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(done.communicate(), 30)
    finally:
        taken.close()
    assert done.returncode == 3
    assert err.decode().splitlines() == [
        f"junction: 127.0.0.1:{port} is already in use (server.port, --port)"
    ]
    assert out == b""


def test_connections_accepted_on_asyncio_s_loop_have_nagle_off() -> None:
    """Where uvloop is missing (Windows), serve mode runs on asyncio's loop, which turns Nagle's
    algorithm off only for sockets whose `proto` is TCP: with it on, uvicorn's head-then-body
    writes wait ~40 ms for the client's delayed ACK on every response."""
    import socket

    from junction.modes.serve import tcp_listener

    nodelay: list[int] = []

    async def main() -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            nodelay.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listener = tcp_listener("127.0.0.1", 0)
        server = await asyncio.start_server(accepted, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(200):
                if nodelay:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    asyncio.run(main())
    assert nodelay and nodelay[0] != 0
