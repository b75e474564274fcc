"""`junction --mode stdio` as an IDE runs it: a real process, real pipes, hostile input."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

JUNCTION = str(Path(sys.executable).with_name("junction"))


class Junction:
    """A running `junction --mode stdio` and the IDE's end of its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin = process.stdin
        self.stdout = process.stdout

    async def send(self, data: bytes | Any) -> None:
        if not isinstance(data, bytes):
            data = orjson.dumps(data)
        self.stdin.write(data + b"\n")
        await self.stdin.drain()

    async def recv(self, timeout: float = 20) -> Any:
        line = await asyncio.wait_for(self.stdout.readline(), timeout)
        assert line, "junction closed stdout"
        return orjson.loads(line)

    async def call(self, data: bytes | Any) -> Any:
        await self.send(data)
        return await self.recv()

    async def still_answers(self) -> None:
        reply = await self.call(
            {"jsonrpc": "2.0", "id": "alive", "method": "no/such/method", "params": {}}
        )
        assert reply["id"] == "alive"
        assert reply["error"]["code"] == -32601


@pytest.fixture
async def junction(tmp_path: Path) -> AsyncIterator[Junction]:
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "--mode",
        "stdio",
        "--log-level",
        "debug",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        limit=2**20,
        env={**os.environ, "JUNCTION_CONFIG": ""},
    )
    yield Junction(process)
    if process.returncode is None:
        process.kill()
    await process.wait()


async def test_unknown_methods_get_minus_32601_and_notifications_no_reply(
    junction: Junction,
) -> None:
    await junction.send(
        {"jsonrpc": "2.0", "method": "no/such/notice", "params": {"sessionId": "x"}}
    )
    reply = await junction.call(
        {"jsonrpc": "2.0", "id": 1, "method": "no/such/method", "params": {}}
    )
    assert reply == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found", "data": "no/such/method"},
        "id": 1,
    }


async def test_initialize_answers_as_an_acp_v1_agent(junction: Junction) -> None:
    reply = await junction.call(
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": 1}}
    )
    assert reply["result"]["protocolVersion"] == 1
    assert reply["result"]["agentCapabilities"]["loadSession"] is True


@pytest.mark.parametrize(
    ("garbage", "code"),
    [
        (os.urandom(512).replace(b"\n", b" "), -32700),
        (b"\xc3\x28\xa0\xa1 not utf-8", -32700),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "x", "par', -32700),
        (b"[1, 2, 3]", -32600),
        (b"null", -32600),
        (b'{"jsonrpc": "1.0", "id": 3, "method": "initialize"}', -32600),
    ],
)
async def test_bad_input_gets_an_error_and_the_process_stays_up(
    junction: Junction, garbage: bytes, code: int
) -> None:
    reply = await junction.call(garbage)
    errors = reply if isinstance(reply, list) else [reply]
    assert {e["error"]["code"] for e in errors} == {code}
    await junction.still_answers()


async def test_response_to_unknown_id_is_ignored(junction: Junction) -> None:
    await junction.send({"jsonrpc": "2.0", "id": 424242, "result": {}})
    await junction.still_answers()


async def test_100_mib_line_is_refused_and_the_next_line_is_served(junction: Junction) -> None:
    chunk = b"a" * (1 << 20)
    junction.stdin.write(b'{"jsonrpc": "2.0", "id": 1, "method": "x", "params": ["')
    for _ in range(100):
        junction.stdin.write(chunk)
        await junction.stdin.drain()
    await junction.send(b'"]}')
    reply = await junction.recv()
    assert reply["id"] == 1  # the error answers the request it refused
    assert reply["error"]["code"] == -32600
    assert "exceeds the limit" in reply["error"]["message"]
    await junction.still_answers()


async def test_ten_thousand_requests_sent_without_reading(junction: Junction) -> None:
    count = 10_000
    batch = b"".join(
        orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "m"}) + b"\n" for i in range(count)
    )
    junction.stdin.write(batch)
    await junction.stdin.drain()
    ids = set()
    for _ in range(count):
        ids.add((await junction.recv())["id"])
    assert ids == set(range(count))


async def test_eof_on_stdin_exits_zero(junction: Junction) -> None:
    await junction.still_answers()
    junction.stdin.close()
    assert await asyncio.wait_for(junction.process.wait(), 20) == 0


async def test_nothing_but_protocol_reaches_stdout(junction: Junction) -> None:
    await junction.send(b"not json")
    await junction.send({"jsonrpc": "2.0", "id": 1, "method": "m"})
    junction.stdin.close()
    assert await asyncio.wait_for(junction.process.wait(), 20) == 0
    out = await junction.stdout.read()
    assert junction.process.stderr is not None
    err = await junction.process.stderr.read()
    replies = [orjson.loads(line) for line in out.splitlines()]
    assert [r["jsonrpc"] for r in replies] == ["2.0", "2.0"]
    # A request read just before EOF is still answered, not cancelled.
    assert {r["error"]["code"] for r in replies} == {-32700, -32601}
    assert b"ACP agent serving on stdio" in err


def test_stray_prints_after_claiming_stdout_go_to_stderr() -> None:
    code = (
        "import os, subprocess; from transports import claim_stdout; fd = claim_stdout(); "
        "print('stray print'); subprocess.run(['echo', 'child output']); os.write(fd, b'PROTOCOL')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
    assert done.stdout == b"PROTOCOL"
    assert b"stray print" in done.stderr and b"child output" in done.stderr


def test_invalid_config_exits_2_with_the_key_path_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "junction.yaml"
    config.write_text("backends:\n  local: {type: openai, url: 'not a url'}\n")
    done = subprocess.run(
        [JUNCTION, "--mode", "stdio", "--config", str(config)],
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert done.stdout == b""
    assert b"backends.local.url" in done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--mode", "bridge"], b"--mode bridge needs --connect"),
        (["--mode", "bridge", "--connect", "ftp://x/acp"], b"ws(s):// or http(s)://"),
        (["check", "--mode", "stdio"], b"exactly one of --mode or a command"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_line(
    argv: list[str], says: bytes, tmp_path: Path
) -> None:
    done = subprocess.run(
        [JUNCTION, *argv], capture_output=True, timeout=30, cwd=tmp_path, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 2
    assert says in done.stderr
    assert b"Traceback" not in done.stderr


async def test_sigterm_ends_the_process_cleanly(junction: Junction) -> None:
    await junction.still_answers()
    junction.process.terminate()
    assert await asyncio.wait_for(junction.process.wait(), 20) == 0


def test_configured_message_limit_applies(tmp_path: Path) -> None:
    config = tmp_path / "junction.yaml"
    config.write_text("server: {max_message_bytes: 2048}\n")
    big = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "m", "params": ["x" * 4096]})
    small = orjson.dumps({"jsonrpc": "2.0", "id": 2, "method": "m"})
    done = subprocess.run(
        [JUNCTION, "--mode", "stdio", "--config", str(config)],
        input=big + b"\n" + small + b"\n",
        capture_output=True,
        timeout=30,
    )
    replies = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [(r["id"], r["error"]["code"]) for r in replies] == [(1, -32600), (2, -32601)]
    assert "2048 bytes" in replies[0]["error"]["message"]
