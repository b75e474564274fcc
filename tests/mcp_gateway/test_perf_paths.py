"""The fast paths of `junction --mode mcp`: stdin/stdout served on the event loop when they are
pipes, the SDK's own threaded path when they are not (here: stdin is a regular file), and the
same answers either way, cached `tools/list` included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.mcp_gateway.conftest import SERVERS

LEGACY = "2025-11-25"


def junction_mcp(config: Path) -> list[str]:
    return [
        str(Path(sys.executable).with_name("junction")),
        "--mode",
        "mcp",
        "--config",
        str(config),
    ]


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "junction.yaml"
    servers = {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}}
    path.write_text(json.dumps({"mcp_servers": servers, "logging": {"level": "warning"}}))
    return path


def session_lines(big: int = 0) -> list[dict[str, Any]]:
    init = {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": "perf-paths", "version": "1"},
    }
    return [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 4,
            "method": "tools/call",
            "params": {"name": "ok__echo", "arguments": {"message": "x" * big or "hi"}},
        },
    ]


def answers(output: bytes) -> dict[Any, dict[str, Any]]:
    replies = [json.loads(line) for line in output.splitlines() if line.strip()]
    return {reply["id"]: reply for reply in replies if "id" in reply}


def check(replies: dict[Any, dict[str, Any]], echoed: str) -> None:
    assert replies[1]["result"]["protocolVersion"] == LEGACY
    first, second = replies[2]["result"]["tools"], replies[3]["result"]["tools"]
    assert "ok__echo" in [tool["name"] for tool in first]
    assert first == second  # the second is served from the cached wire form
    content = replies[4]["result"]["content"]
    assert content[0]["text"].endswith(echoed)


def test_stdin_from_a_regular_file_uses_the_sdk_path(tmp_path: Path) -> None:
    """A regular file cannot go on an asyncio pipe transport: the SDK's threaded path serves it
    (it answers what it read before EOF, then exits cleanly)."""
    config = write_config(tmp_path)
    requests = tmp_path / "requests.ndjson"
    requests.write_text("".join(json.dumps(line) + "\n" for line in session_lines()[:1]))
    with requests.open("rb") as stdin:
        done = subprocess.run(
            junction_mcp(config), stdin=stdin, capture_output=True, timeout=60, check=False
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert answers(done.stdout)[1]["result"]["protocolVersion"] == LEGACY


def test_pipes_carry_a_multi_megabyte_line_both_ways(tmp_path: Path) -> None:
    """Lines far beyond asyncio's default 64 KiB stream limit, in and out, on the pipe path."""
    config = write_config(tmp_path)
    big = 3 * 1024 * 1024
    process = subprocess.Popen(
        junction_mcp(config), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdin is not None and process.stdout is not None
    replies: dict[Any, dict[str, Any]] = {}
    try:
        for line in session_lines(big):
            process.stdin.write(json.dumps(line).encode() + b"\n")
            process.stdin.flush()
            if "id" in line:
                while line["id"] not in replies:
                    reply = json.loads(process.stdout.readline())
                    if "id" in reply:
                        replies[reply["id"]] = reply
        process.stdin.close()
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    check(replies, "x" * 100)
