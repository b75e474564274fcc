"""The aggregate served: `junction --mode mcp` as a real subprocess, `/mcp` on a real uvicorn
port, each driven by the `mcp` SDK client in both protocol eras, and the MCP Inspector CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import pytest_asyncio
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_gateway import Gateway, http_app
from mcp_gateway._sdk import create_mcp_http_client
from tests.mcp_gateway.conftest import SERVERS, fault, free_port, hosted
from tests.peers import npm_bin

pytestmark = pytest.mark.asyncio(loop_scope="module")
MIB = 1024 * 1024
ERAS = ["legacy", "2026-07-28"]


def junction_mcp_command(config: Path) -> list[str]:
    """The real `junction --mode mcp`, as an MCP client configures it."""
    return [
        str(Path(sys.executable).with_name("junction")),
        "--mode",
        "mcp",
        "--config",
        str(config),
    ]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("junction") / "junction.yaml"
    path.write_text(
        json.dumps(
            {
                "mcp_servers": {
                    "ok": {"command": sys.executable, "args": [SERVERS, "ok"]},
                    "everything": {"command": str(npm_bin("mcp-server-everything"))},
                    "broken": {"command": sys.executable, "args": [SERVERS, "exit"]},
                }
            }
        )
    )
    return path


def stdio_params(config: Path) -> StdioServerParameters:
    command = junction_mcp_command(config)
    return StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def exercise(client: Client) -> None:
    """What every downstream client checks, whatever the transport and era."""
    names = {t.name for t in (await client.list_tools()).tools}
    assert {"ok__echo", "everything__echo", "ok__rich"} <= names
    assert not any(n.startswith("broken__") for n in names)
    assert text(await client.call_tool("ok__echo", {"message": "hi"})) == "hi"
    rich = await client.call_tool("ok__rich")
    assert rich.is_error and rich.structured_content == {
        "answer": 42,
        "nested": {"list": [1, 2, 3]},
    }
    assert [c.type for c in rich.content] == ["text", "image", "resource"]
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    await client.call_tool("ok__progress", {}, progress_callback=on_progress)
    assert seen == [1, 2, 3]
    with pytest.raises(MCPError, match="Unknown tool: 'ok__nope'") as info:
        await client.call_tool("ok__nope", {})
    assert info.value.error.code == types.INVALID_PARAMS
    wrong = await client.call_tool("ok__add", {"a": "one", "b": 2})
    assert wrong.is_error and "'one' is not of type 'integer'" in text(wrong)
    big = await client.call_tool("ok__big", {"size": 10 * MIB})
    assert len(text(big)) == 10 * MIB
    resources = {r.uri for r in (await client.list_resources()).resources}
    assert "test://note" in resources
    note = await client.read_resource("test://note")
    assert note.contents[0].text == "content of test://note"  # type: ignore[union-attr]
    prompt = await client.get_prompt("ok__greet")
    assert prompt.messages


# --------------------------------------------------------------------------- stdio


@pytest.mark.parametrize("mode", ERAS)
async def test_sdk_client_over_stdio(config: Path, mode: str) -> None:
    async with Client(stdio_params(config), mode=mode) as client:
        assert client.protocol_version == ("2025-11-25" if mode == "legacy" else mode)
        await exercise(client)


async def test_stdio_bad_input_keeps_the_process_up(config: Path) -> None:
    async with Client(stdio_params(config), mode="legacy") as client:
        # Over server.max_message_bytes (16 MiB): refused unread, answered to this request.
        with pytest.raises(MCPError, match="exceeds the limit of 16777216 bytes"):
            await client.call_tool("ok__echo", {"message": "x" * (20 * MIB)})
        with pytest.raises(TimeoutError):
            await _slow_with_deadline(client)  # the client gives up: Junction cancels upstream
        assert text(await client.call_tool("ok__echo", {"message": "alive"})) == "alive"


async def _slow_with_deadline(client: Client) -> None:
    with anyio.fail_after(0.5):
        await client.call_tool("ok__slow", {"seconds": 30})


@pytest.mark.parametrize("mode", ERAS)
async def test_list_changed_reaches_stdio_clients(config: Path, mode: str) -> None:
    changes: list[str] = []

    async def on_message(message: Any) -> None:
        if getattr(message, "method", "") == "notifications/tools/list_changed":
            changes.append("tools")

    async def grown(client: Client) -> bool:
        names = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
        return "ok__grown0" in names

    async with Client(stdio_params(config), mode=mode, message_handler=on_message) as client:
        await client.list_tools()
        if mode == "legacy":
            await client.call_tool("ok__grow", {})
            with anyio.fail_after(10):
                while not (changes and await grown(client)):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
        else:
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("ok__grow", {})
                with anyio.fail_after(10):
                    async for _event in subscription:
                        if await grown(client):
                            break


async def test_sigterm_exits_cleanly_and_takes_the_children(config: Path) -> None:
    command = junction_mcp_command(config)
    async with await anyio.open_process(command, stderr=subprocess.DEVNULL) as process:
        assert process.stdin is not None and process.stdout is not None
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "ok__pid", "arguments": {}},
        }
        await process.stdin.send((json.dumps(init) + "\n").encode())
        await process.stdin.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        await process.stdin.send((json.dumps(call) + "\n").encode())
        buffer = b""
        replies: dict[Any, Any] = {}
        with anyio.fail_after(30):
            while 2 not in replies:  # list_changed notifications may come first
                buffer += await process.stdout.receive()
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    message = json.loads(line)
                    replies[message.get("id")] = message
        child = int(replies[2]["result"]["content"][0]["text"])
        process.terminate()
        assert await process.wait() == 0
    with anyio.fail_after(10):
        while _alive(child):  # noqa: ASYNC110
            await anyio.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- HTTP


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http_url() -> AsyncIterator[str]:
    gateway = Gateway([fault("ok", "ok"), fault("everything", "ok")])
    async with hosted(gateway):
        await gateway.wait_settled(20)
        port = free_port()
        app = http_app(gateway)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        async with hosted(_Serving(server)):
            yield f"http://127.0.0.1:{port}/mcp"


class _Serving:
    def __init__(self, server: uvicorn.Server) -> None:
        self.server = server
        self.task: Any = None

    async def __aenter__(self) -> _Serving:
        import asyncio

        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.task


def _http_client(url: str, key: str | None = "test-key") -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))


@pytest.mark.parametrize("mode", ERAS)
async def test_sdk_client_over_http(http_url: str, mode: str) -> None:
    async with create_mcp_http_client(headers={"Authorization": "Bearer test-key"}) as http:
        async with Client(
            streamable_http_client(http_url, http_client=http, max_sse_event_size=None), mode=mode
        ) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"ok__echo", "everything__echo"} <= names
            assert text(await client.call_tool("everything__echo", {"message": "x"})) == "x"
            big = await client.call_tool("ok__big", {"size": 2 * MIB})
            assert len(text(big)) == 2 * MIB
            with pytest.raises(MCPError, match="Unknown tool"):
                await client.call_tool("nope", {})


async def test_http_20_mib_body_is_refused(http_url: str) -> None:
    import httpx

    async with httpx.AsyncClient(headers={"Authorization": "Bearer test-key"}) as http:
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "ok__echo", "arguments": {"message": "x" * (20 * MIB)}},
        }
        response = await http.post(
            http_url, json=body, headers={"Accept": "application/json, text/event-stream"}
        )
        assert response.status_code == 413


# --------------------------------------------------------------------------- MCP Inspector CLI


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_inspector_cli_lists_and_calls(config: Path, tmp_path: Path) -> None:
    launcher = tmp_path / "junction-mcp"
    launcher.write_text(
        "#!/bin/sh\nexec " + " ".join(f"'{part}'" for part in junction_mcp_command(config)) + "\n"
    )
    launcher.chmod(launcher.stat().st_mode | stat.S_IEXEC)
    inspector = str(npm_bin("mcp-inspector-cli"))
    listed = subprocess.run(
        [inspector, "--cli", str(launcher), "--method", "tools/list"],
        capture_output=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr.decode()
    names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert {"ok__echo", "everything__get-sum"} <= names
    called = subprocess.run(
        [
            inspector,
            "--cli",
            str(launcher),
            "--method",
            "tools/call",
            "--tool-name",
            "everything__get-sum",
            "--tool-arg",
            "a=2",
            "--tool-arg",
            "b=3",
        ],
        capture_output=True,
        timeout=60,
    )
    assert called.returncode == 0, called.stderr.decode()
    assert "5" in json.loads(called.stdout)["content"][0]["text"]
