"""`junction --mode bridge` between a real IDE pipe and a real `junction --mode serve` process.

The test plays the IDE over the bridge's stdin/stdout; the bridge talks WebSocket to a serve-mode
Junction (API key auth, the fake OpenAI server as its backend). Servers are killed and restarted
on the same port to check that drops are answered and reported, never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette

from tests.acp.wire import HANG_GUARD, ClientError, WireClient
from tests.router_core.llm_servers import (
    Call,
    Fault,
    OpenAIServer,
    Received,
    Reply,
    openai_server,
)
from tests.transports.servers import serve_app, ws_url
from transports import MessageStream, NdjsonStream, Oversized, websocket_route

JUNCTION = str(Path(sys.executable).with_name("junction"))
ROOT = Path(__file__).resolve().parents[1]
KEY = "bridge-test-key-1"


# -- processes ------------------------------------------------------------------------------------


@dataclass
class Proc:
    """A subprocess whose stderr is drained continuously (a full pipe would block its logging)."""

    process: asyncio.subprocess.Process
    stderr: list[str] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _drain: asyncio.Task[None] | None = None

    def start_draining(self) -> None:
        self._drain = asyncio.create_task(self._read_stderr())

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.stderr.append(line.decode(errors="replace"))
            self._changed.set()
        self._changed.set()

    @property
    def log(self) -> str:
        return "".join(self.stderr)

    async def wait_log(self, pattern: str) -> re.Match[str]:
        """The first stderr line matching `pattern` (fails the test if the process ends first)."""
        async with asyncio.timeout(HANG_GUARD):
            while True:
                found = re.search(pattern, self.log)
                if found:
                    return found
                if self._drain is not None and self._drain.done():
                    raise AssertionError(f"{pattern!r} never appeared on stderr:\n{self.log}")
                self._changed.clear()
                await self._changed.wait()

    async def exit_code(self) -> int:
        async with asyncio.timeout(HANG_GUARD):
            code = await self.process.wait()
            if self._drain is not None:
                await self._drain
        return code

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.exit_code()


def serve_config(tmp_path: Path, model: OpenAIServer) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(
        f"server: {{api_keys: [{KEY}]}}\n"
        f'store: {{url: "sqlite:///{tmp_path / "j.db"}"}}\n'
        f'backends: {{fake: {{type: openai, url: "{model.url}/v1", models: [m1]}}}}\n'
        "acp: {default_model: m1}\n"
    )
    return path


async def start_serve(config: Path, port: int = 0) -> tuple[Proc, int]:
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "--mode",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "JUNCTION_LOG_FORMAT": "plain"},
    )
    served = Proc(process)
    served.start_draining()
    found = await served.wait_log(r"listening on http://[\d.]+:(\d+)")
    return served, int(found.group(1))


async def start_bridge(
    url: str,
    *,
    token: str | None = KEY,
    config: Path | None = None,
    attempts: int | None = None,
    delay: float = 0.05,
) -> Proc:
    """The real `junction --mode bridge`; with `attempts`, the launcher that also sets the
    reconnect schedule small enough for the reconnect tests."""
    if attempts is None:
        argv = [str(Path(sys.executable).with_name("junction")), "--mode", "bridge"]
        argv += ["--connect", url]
    else:
        argv = [sys.executable, "-m", "tests.bridge_launcher", "--connect", url]
        argv += ["--delay", str(delay), "--attempts", str(attempts)]
    if token is not None:
        argv += ["--token", token]
    if config is not None:
        argv += ["--config", str(config)]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        limit=2**20,
        env={**os.environ, "JUNCTION_LOG_FORMAT": "plain", "JUNCTION_CONFIG": ""},
    )
    bridge = Proc(process)
    bridge.start_draining()
    return bridge


class Recording:
    """The IDE's end of the bridge's pipes, keeping every message the bridge wrote."""

    def __init__(self, bridge: Proc) -> None:
        process = bridge.process
        assert process.stdout is not None and process.stdin is not None
        self._stream = NdjsonStream(process.stdout, process.stdin)
        self.seen: list[dict[str, Any]] = []

    async def receive(self) -> bytes | Oversized | None:
        message = await self._stream.receive()
        if isinstance(message, bytes):
            self.seen.append(orjson.loads(message))
        return message

    async def send(self, message: bytes) -> None:
        await self._stream.send(message)

    async def aclose(self) -> None:
        await self._stream.aclose()


@dataclass
class Ide:
    bridge: Proc
    client: WireClient
    wire: Recording


@contextlib.asynccontextmanager
async def ide_over_bridge(url: str, **options: Any) -> AsyncIterator[Ide]:
    bridge = await start_bridge(url, **options)
    wire = Recording(bridge)
    client = WireClient(wire)
    client.start()
    try:
        yield Ide(bridge, client, wire)
    finally:
        await client.aclose()
        await bridge.kill()


@pytest.fixture
async def model() -> AsyncIterator[OpenAIServer]:
    async with openai_server(models=["m1"]) as server:
        yield server


@pytest.fixture
async def serve(tmp_path: Path, model: OpenAIServer) -> AsyncIterator[int]:
    served, port = await start_serve(serve_config(tmp_path, model))
    yield port
    await served.kill()


def acp_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/acp"


def no_traceback(proc: Proc) -> None:
    assert "Traceback" not in proc.log, proc.log


def held(release: asyncio.Event, asked: asyncio.Event) -> Callable[[dict[str, Any]], Any]:
    """A permission handler that answers only once `release` is set (the user is thinking)."""

    async def handler(params: dict[str, Any]) -> dict[str, Any]:
        asked.set()
        await release.wait()
        return {"outcome": {"outcome": "selected", "optionId": "allow_once"}}

    return handler


# -- a session through the bridge -----------------------------------------------------------------


async def test_session_streams_and_agent_requests_cross_the_bridge(
    tmp_path: Path, model: OpenAIServer, serve: int
) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    model.script(
        [
            Reply(text="Hello there, IDE!", chunk_size=3),
            Reply(tool_calls=[Call("write_text_file", {"path": str(target), "content": "new\n"})]),
            Reply(text="Done."),
        ]
    )
    async with ide_over_bridge(acp_url(serve)) as ide:
        client = ide.client
        init = await client.initialize()
        assert init["protocolVersion"] == 1
        sid = await client.new_session(tmp_path)
        first = await client.prompt(sid, "say hi")
        assert first["result"] == {"stopReason": "end_turn"}
        assert client.text() == "Hello there, IDE!"
        assert len(client.of_kind("agent_message_chunk")) > 1

        second = await client.prompt(sid, "write it")
        assert second["result"] == {"stopReason": "end_turn"}
        methods = [r["method"] for r in client.agent_requests]
        assert "fs/read_text_file" in methods  # the diff's old text comes from the IDE's buffer
        assert methods.count("session/request_permission") == 1
        assert methods.index("session/request_permission") < methods.index("fs/write_text_file")
        assert client.agent_requests[-1]["method"] == "fs/write_text_file"
        assert client.agent_requests[-1]["params"]["path"] == str(target)
        assert target.read_text() == "new\n"
        assert [u.get("status") for u in client.of_kind("tool_call_update")] == [
            "in_progress",
            "completed",
        ]
        assert client.text().endswith("Done.")
        assert "Wrote 4 bytes" in model.chat_requests[2].body["messages"][-1]["content"]

        await ide.wire.aclose()  # stdin EOF
        assert await ide.bridge.exit_code() == 0
    no_traceback(ide.bridge)


async def test_stdin_eof_lets_the_answer_in_flight_out_then_exits_0(serve: int) -> None:
    bridge = await start_bridge(acp_url(serve))
    assert bridge.process.stdin is not None and bridge.process.stdout is not None
    request = {"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {"protocolVersion": 1}}
    bridge.process.stdin.write(orjson.dumps(request) + b"\n")
    bridge.process.stdin.close()
    async with asyncio.timeout(HANG_GUARD):
        out = await bridge.process.stdout.read()
    assert await bridge.exit_code() == 0
    replies = [orjson.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in replies] == [7]
    assert replies[0]["result"]["protocolVersion"] == 1
    no_traceback(bridge)


async def test_bad_input_oversized_line_answered_locally_garbage_by_the_remote(
    tmp_path: Path, serve: int
) -> None:
    config = tmp_path / "bridge.yaml"
    config.write_text("server: {max_message_bytes: 2048}\n")
    async with ide_over_bridge(acp_url(serve), config=config) as ide:
        await ide.wire.send(b'{"jsonrpc": "2.0", "id": 1, "method": "x", "pad": "' + b"a" * 5000)
        await ide.wire.send(b"{not json")
        await ide.client.wait_for(lambda: len(ide.wire.seen) >= 2)
        oversized, garbage = ide.wire.seen[:2]
        assert oversized["id"] == 1  # answers the request it refused
        assert oversized["error"]["code"] == -32600
        assert "exceeds the limit of 2048 bytes" in oversized["error"]["message"]
        assert garbage["id"] is None and garbage["error"]["code"] == -32700
        assert (await ide.client.initialize())["protocolVersion"] == 1  # the connection stayed
    no_traceback(ide.bridge)


# -- failures at start ----------------------------------------------------------------------------


async def test_refused_token_exits_1_with_one_clear_line(serve: int) -> None:
    bridge = await start_bridge(acp_url(serve), token="wrong-token-here")
    assert await bridge.exit_code() == 1
    assert re.search(r"refused the token \(HTTP 40[13]\)", bridge.log), bridge.log
    assert "wrong-token-here" not in bridge.log
    no_traceback(bridge)

    bridge = await start_bridge(acp_url(serve), token=None)
    assert await bridge.exit_code() == 1
    assert "refused the connection without a token" in bridge.log
    no_traceback(bridge)


async def test_unreachable_server_exits_1_with_one_clear_line() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bridge = await start_bridge(acp_url(port))
    assert await bridge.exit_code() == 1
    assert f"cannot reach ws://127.0.0.1:{port}/acp" in bridge.log
    no_traceback(bridge)


# -- drops ----------------------------------------------------------------------------------------


async def test_server_killed_mid_turn_answers_and_reports_then_exits_1(
    tmp_path: Path, model: OpenAIServer
) -> None:
    served, port = await start_serve(serve_config(tmp_path, model))
    target = tmp_path / "out.txt"
    model.script(
        [Reply(tool_calls=[Call("write_text_file", {"path": str(target), "content": "x"})])]
    )
    release, asked = asyncio.Event(), asyncio.Event()
    try:
        async with ide_over_bridge(acp_url(port), attempts=2) as ide:
            client = ide.client
            client.handlers["session/request_permission"] = held(release, asked)
            await client.initialize()
            sid = await client.new_session(tmp_path)
            prompt = client.start_request(
                "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "go"}]}
            )
            async with asyncio.timeout(HANG_GUARD):
                await asyncio.wait(
                    {asyncio.ensure_future(asked.wait()), prompt}, return_when="FIRST_COMPLETED"
                )
            assert asked.is_set(), prompt.result()
            (permission_id,) = [
                r["id"]
                for r in client.agent_requests
                if r["method"] == "session/request_permission"
            ]

            await served.kill()

            response = await prompt
            assert response["error"]["code"] == -32603
            assert "lost for good" in response["error"]["message"]
            assert response["error"]["data"]["reason"] == "remote_connection_lost"
            assert response["error"]["data"]["reconnected"] is False
            cancels = [m for m in ide.wire.seen if m.get("method") == "$/cancel_request"]
            assert cancels == [
                {
                    "jsonrpc": "2.0",
                    "method": "$/cancel_request",
                    "params": {"requestId": permission_id},
                }
            ]
            release.set()  # the user answers too late: the bridge drops it, nothing breaks
            assert await ide.bridge.exit_code() == 1
            log = ide.bridge.log
            assert "connection to" in log and "lost" in log
            assert "reconnect attempt 2 of 2" in log
            assert "could not reconnect after 2 attempts" in log
            assert not target.exists()
        no_traceback(ide.bridge)
    finally:
        await served.kill()


async def test_server_restarted_on_the_same_port_bridge_reconnects(
    tmp_path: Path, model: OpenAIServer
) -> None:
    config = serve_config(tmp_path, model)
    served, port = await start_serve(config)
    calling = asyncio.Event()

    def hang(received: Received) -> Reply:
        calling.set()
        return Reply(fault=Fault.hang())

    model.script([hang, Reply(text="Back again.")])
    try:
        async with ide_over_bridge(acp_url(port), attempts=40) as ide:
            client = ide.client
            await client.initialize()
            sid = await client.new_session(tmp_path)
            prompt = client.start_request(
                "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "hang"}]}
            )
            async with asyncio.timeout(HANG_GUARD):
                await calling.wait()  # the turn is running; its model call hangs
            await served.kill()
            await ide.bridge.wait_log("lost")
            served, _ = await start_serve(config, port)

            response = await prompt
            assert response["error"]["code"] == -32603
            assert "lost and re-established" in response["error"]["message"]
            assert response["error"]["data"]["reconnected"] is True
            await ide.bridge.wait_log("reconnected to")

            # The remote connection is new: the IDE initializes and loads the session again.
            await client.initialize()
            await client.call(
                "session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
            )
            again = await client.prompt(sid, "again")
            assert again["result"] == {"stopReason": "end_turn"}, again
            assert client.text().endswith("Back again.")
            assert ide.bridge.process.returncode is None
        no_traceback(ide.bridge)
    finally:
        await served.kill()


async def test_prompt_on_the_new_connection_without_load_gets_the_remotes_error(
    tmp_path: Path, model: OpenAIServer
) -> None:
    """After a reconnect the old session is not attached: the remote says so, not the bridge."""
    config = serve_config(tmp_path, model)
    served, port = await start_serve(config)
    try:
        async with ide_over_bridge(acp_url(port), attempts=40) as ide:
            client = ide.client
            await client.initialize()
            sid = await client.new_session(tmp_path)
            await served.kill()
            await ide.bridge.wait_log("lost")
            served, _ = await start_serve(config, port)
            await ide.bridge.wait_log("reconnected to")
            with pytest.raises(ClientError) as refused:
                await client.call(
                    "session/prompt",
                    {"sessionId": sid, "prompt": [{"type": "text", "text": "hi"}]},
                )
            assert refused.value.data is None or "remote_connection_lost" not in str(
                refused.value.data
            )
        no_traceback(ide.bridge)
    finally:
        await served.kill()


# -- a scripted remote: close codes and request ids across a reconnect ----------------------------


async def next_message(ide: Recording, count: int) -> dict[str, Any]:
    """The `count`-th message (1-based) the bridge wrote to the IDE, once it is there."""
    async with asyncio.timeout(HANG_GUARD):
        while len(ide.seen) < count:
            message = await ide.receive()
            assert message is not None, "the bridge closed stdout"
    return ide.seen[count - 1]


async def test_reused_request_id_is_renamed_and_a_late_answer_never_reaches_the_new_remote() -> (
    None
):
    """The remote numbers requests per connection: an old, unanswered permission request and a
    new one share id 1. The IDE's late answer to the old one must not answer the new one."""
    received: list[dict[str, Any]] = []
    connections = 0

    async def remote(stream: MessageStream) -> None:
        nonlocal connections
        connections += 1
        ask = {"jsonrpc": "2.0", "id": 1, "method": "session/request_permission", "params": {}}
        await stream.send(orjson.dumps(ask))
        if connections == 1:
            raise RuntimeError("the remote crashes")  # the route closes with 1011: a drop
        message = await stream.receive()
        assert isinstance(message, bytes)
        received.append(orjson.loads(message))
        # returning closes with 1000: the remote is done for good

    app = Starlette(routes=[websocket_route("/acp", remote)])
    async with serve_app(app) as base:
        bridge = await start_bridge(ws_url(base, "/acp"), token=None, attempts=5)
        ide = Recording(bridge)
        try:
            first = await next_message(ide, 1)
            assert first["id"] == 1 and first["method"] == "session/request_permission"
            cancel = await next_message(ide, 2)
            assert cancel == {
                "jsonrpc": "2.0",
                "method": "$/cancel_request",
                "params": {"requestId": 1},
            }
            second = await next_message(ide, 3)
            assert second["method"] == "session/request_permission"
            assert second["id"] == "junction-bridge:1:1"

            late = {"jsonrpc": "2.0", "id": 1, "result": {"outcome": {"outcome": "cancelled"}}}
            await ide.send(orjson.dumps(late))
            answer = {"jsonrpc": "2.0", "id": second["id"], "result": {"which": "new"}}
            await ide.send(orjson.dumps(answer))

            assert await bridge.exit_code() == 1
        finally:
            await bridge.kill()
    assert received == [{"jsonrpc": "2.0", "id": 1, "result": {"which": "new"}}]
    assert connections == 2
    assert "lost (WebSocket code 1011)" in bridge.log
    assert "reconnected to" in bridge.log
    assert "dropping the IDE's answer to request 1" in bridge.log
    assert "the remote Junction closed the connection (WebSocket code 1000)" in bridge.log
    no_traceback(bridge)
