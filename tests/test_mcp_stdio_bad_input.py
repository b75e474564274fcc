"""`junction --mode mcp` as an MCP client runs it (a real process, real pipes), fed bad lines.

Every line that deserves an answer gets one (a client waiting on an id must never wait forever),
a line over `server.max_message_bytes` is refused without being held whole, and the process keeps
serving after all of it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

JUNCTION = str(Path(sys.executable).with_name("junction"))
LIMIT = 64 * 1024
MIB = 1024 * 1024


class McpProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.stdout = process.stdout

    async def send(self, line: bytes | Any) -> None:
        if not isinstance(line, bytes):
            line = orjson.dumps(line)
        self.stdin.write(line + b"\n")
        await self.stdin.drain()

    async def recv(self) -> Any:
        line = await asyncio.wait_for(self.stdout.readline(), 20)
        assert line, "junction closed stdout"
        return orjson.loads(line)

    async def call(self, line: bytes | Any) -> Any:
        await self.send(line)
        return await self.recv()

    async def still_serves(self) -> None:
        reply = await self.call({"jsonrpc": "2.0", "id": "alive", "method": "tools/list"})
        assert reply == {"jsonrpc": "2.0", "id": "alive", "result": {"tools": []}}
        assert self.process.returncode is None

    def peak_rss(self) -> int:
        """The process's high-water mark of resident memory, in bytes (Linux)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024


@pytest.fixture
async def mcp(tmp_path: Path) -> AsyncIterator[McpProcess]:
    config = tmp_path / "junction.yaml"
    config.write_text(f"server: {{max_message_bytes: {LIMIT}}}\n")
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "--mode",
        "mcp",
        "--config",
        str(config),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        limit=4 * MIB,
    )
    client = McpProcess(process)
    try:
        initialize = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"},
            },
        }
        assert "result" in await client.call(initialize)
        await client.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield client
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


BAD_LINES: list[tuple[Any, Any, int]] = [
    ({"id": 1, "method": "tools/list"}, 1, -32600),  # no "jsonrpc"
    ({"jsonrpc": "1.0", "id": 2, "method": "tools/list"}, 2, -32600),
    ({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": "x"}, 3, -32600),
    ({"jsonrpc": "2.0", "id": "s", "method": 5}, "s", -32600),
    ({"jsonrpc": "2.0", "id": True, "method": "tools/list"}, None, -32600),
    ({"jsonrpc": "2.0", "id": [1], "method": "tools/list"}, None, -32600),
    ({"jsonrpc": "2.0", "id": 4.5, "method": "tools/list"}, None, -32600),
    ({"method": "notifications/initialized"}, None, -32600),
    ([{"jsonrpc": "2.0", "id": 5, "method": "tools/list"}], None, -32600),  # no batches
    ([], None, -32600),
    ("just a string", None, -32600),
    ({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": 5}}, 6, -32602),
    ({"jsonrpc": "2.0", "id": 7, "method": "no/such"}, 7, -32601),
    (b"not json", None, -32700),
    (b'{"jsonrpc":"2.0","id":8,"method":"tools/list"', None, -32700),
    (b'{"jsonrpc":"2.0","id":9,"method":"tools/list","params":{"a":"\xff"}}', None, -32700),
    (b"[" * 5000 + b"]" * 5000, None, -32700),
]
"""A bad line, the id its answer carries, and the error code."""


async def test_every_bad_line_is_answered_and_serving_goes_on(mcp: McpProcess) -> None:
    for line, answer_id, code in BAD_LINES:
        reply = await mcp.call(line)
        assert reply["jsonrpc"] == "2.0", line
        assert (reply["id"], reply["error"]["code"]) == (answer_id, code), line
        assert reply["error"]["message"]
        await mcp.still_serves()


async def test_blank_lines_and_malformed_responses_get_no_answer(mcp: McpProcess) -> None:
    for line in [b"", b"   ", b"\r", b'{"jsonrpc":"2.0","id":77,"error":5}']:
        await mcp.send(line)
    await mcp.send({"jsonrpc": "2.0", "id": 77, "result": {}})  # answers nothing of ours
    await mcp.still_serves()


async def test_a_line_over_the_limit_is_refused_and_the_next_is_served(mcp: McpProcess) -> None:
    reply = await mcp.call(
        b'{"jsonrpc":"2.0","id":1,"method":"x","params":["' + b"a" * LIMIT + b'"]}'
    )
    assert reply["id"] == 1  # found in the line's first bytes: the client is not left waiting
    assert reply["error"]["code"] == -32600
    assert f"exceeds the limit of {LIMIT} bytes" in reply["error"]["message"]
    await mcp.still_serves()


async def test_a_huge_line_is_never_held_whole(mcp: McpProcess) -> None:
    """256 MiB in one line: refused with the limit in the message, memory stays flat."""
    before = mcp.peak_rss()
    chunk = b"x" * MIB
    for _ in range(256):
        mcp.stdin.write(chunk)
        await mcp.stdin.drain()
    reply = await mcp.call(b"")
    assert reply["error"] == {
        "code": -32600,
        "message": f"message of {256 * MIB} bytes exceeds the limit of {LIMIT} bytes",
    }
    await mcp.still_serves()
    assert mcp.peak_rss() - before < 32 * MIB


async def test_many_bad_lines_in_one_write_are_each_answered(mcp: McpProcess) -> None:
    lines = [b"garbage %d" % n for n in range(500)]
    mcp.stdin.write(b"\n".join(lines) + b"\n")
    await mcp.stdin.drain()
    codes = [(await mcp.recv())["error"]["code"] for _ in lines]
    assert codes == [-32700] * len(lines)
    await mcp.still_serves()
