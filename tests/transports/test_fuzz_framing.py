"""Each framing under garbage: NDJSON (the real `junction --mode stdio` process), WebSocket.

Seeded, bounded streams of broken frames: random bytes, invalid UTF-8, JSON cut short, oversized
messages, lines split across writes at random points, fragmented WebSocket messages (POST
bodies of every odd shape: test_fuzz_remote.py). The expected answer is the one the specs give: JSON-RPC -32700/-32600 with id
null for what cannot be read, nothing for blank lines; on a WebSocket an oversized frame closes
with 1009 and a text frame that is not UTF-8 with 1007 (RFC 6455, section 8.1), and the next
connection is served. Through all of it the server stays up.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as raw_ws_connect
from websockets.exceptions import ConnectionClosed

from tests.transports.servers import serve_app, ws_url
from tests.transports.test_fuzz_peer import serve_fuzz_methods
from transports import JsonRpcPeer, MessageStream
from transports.websocket import websocket_route

SEED = 1207
LIMIT = 4096
JUNCTION = str(Path(sys.executable).with_name("junction"))
Reply = tuple[Any, int]
"""What one answer is judged by: its id and its error code (0 for a result)."""


def garbage(rng: random.Random) -> tuple[bytes, Reply | None]:
    """One unreadable (or blank) message and the answer it is owed."""
    kind = rng.randrange(7)
    if kind == 0:  # random bytes
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    elif kind == 1:  # JSON with invalid UTF-8 inside a string
        bad = rng.choice([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf0\x28\x8c\x28", b"\x80"])
        data = b'{"jsonrpc":"2.0","id":1,"method":"echo","params":["' + bad + b'"]}'
    elif kind == 2:  # JSON cut short
        whole = b'{"jsonrpc":"2.0","id":2,"method":"echo","params":{"a":[1,2,3]}}'
        data = whole[: rng.randrange(1, len(whole))]
    elif kind == 3:  # nested deeper than any parser should follow
        depth = rng.choice([1100, 2000])  # under LIMIT
        data = b"[" * depth + b"]" * depth
    elif kind == 4:  # JSON that is not a request
        data = rng.choice([b"1", b'"text"', b"null", b"true", b"{}", b"[]", b'{"id":[1]}'])
        return data, (None, -32600)
    elif kind == 5:  # a request that deserves an answer with its id
        data = orjson.dumps({"jsonrpc": "2.0", "id": f"r{rng.random()}", "method": "no/such"})
        return data, (orjson.loads(data)["id"], -32601)
    else:  # a notification with an unusable session id: ignored
        session: Any = rng.choice([[], {}, [1], {"a": []}, None, 1.5])
        data = orjson.dumps({"jsonrpc": "2.0", "method": "note", "params": {"sessionId": session}})
        return data, None
    if not data.strip():
        data = b"?"
    return data.replace(b"\n", b"\x00"), (None, -32700)


def judge(reply: Any) -> list[Reply]:
    """The id and error code of an answer (0 for a result)."""
    assert isinstance(reply, dict), reply
    assert reply["jsonrpc"] == "2.0" and ("result" in reply) != ("error" in reply), reply
    return [(reply["id"], reply["error"]["code"] if "error" in reply else 0)]


# -- NDJSON: the real `junction --mode stdio` ----------------------------------------------------


@asynccontextmanager
async def junction_stdio(tmp_path: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    config = tmp_path / "junction.yaml"
    config.write_text(f"server: {{max_message_bytes: {LIMIT}}}\n")
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "--mode",
        "stdio",
        "--config",
        str(config),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        limit=2**20,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_stdio_process_answers_garbage_lines_and_stays_up(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    stream = bytearray()
    owed: Counter[Reply] = Counter()
    for _ in range(400):
        roll = rng.random()
        if roll < 0.1:  # blank lines are ignored
            stream += rng.choice([b"", b"   ", b"\t", b"\r"]) + b"\n"
        elif roll < 0.2:  # oversized lines, never buffered whole: -32600
            stream += b"x" * rng.randrange(LIMIT + 1, 20 * LIMIT) + b"\n"
            owed[(None, -32600)] += 1
        else:
            data, reply = garbage(rng)
            stream += data + rng.choice([b"\n", b"\r\n"])
            if reply is not None:
                owed[reply] += 1
    async with asyncio.timeout(60), junction_stdio(tmp_path) as process:
        assert process.stdin is not None and process.stdout is not None
        view = memoryview(bytes(stream))
        while view:  # cut anywhere: inside a line, inside a UTF-8 sequence, at a newline
            size = rng.randrange(1, 8192)
            process.stdin.write(view[:size])
            view = view[size:]
            await process.stdin.drain()
        got: Counter[Reply] = Counter()
        while sum(got.values()) < sum(owed.values()):
            line = await process.stdout.readline()
            assert line, "junction closed stdout"
            got.update(judge(orjson.loads(line)))
        assert got == owed
        process.stdin.write(b'{"jsonrpc":"2.0","id":"alive","method":"no/such"}\n')
        await process.stdin.drain()
        assert judge(orjson.loads(await process.stdout.readline())) == [("alive", -32601)]
        assert process.returncode is None


async def test_stdio_process_ignores_a_notification_with_an_unhashable_session_id(
    tmp_path: Path,
) -> None:
    """`--mode stdio` used to exit with status 1 on this notification, ending every session."""
    async with asyncio.timeout(30), junction_stdio(tmp_path) as process:
        assert process.stdin is not None and process.stdout is not None
        for session in ([], {"x": 1}, [["s"]]):
            cancel = {
                "jsonrpc": "2.0",
                "method": "session/cancel",
                "params": {"sessionId": session},
            }
            process.stdin.write(orjson.dumps(cancel) + b"\n")
        process.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"no/such"}\n')
        await process.stdin.drain()
        assert judge(orjson.loads(await process.stdout.readline())) == [(1, -32601)]
        assert process.returncode is None


# -- WebSocket ------------------------------------------------------------------------------------


async def serve_peer(stream: MessageStream) -> None:
    peer = JsonRpcPeer(stream)
    serve_fuzz_methods(peer)
    await peer.run()


@asynccontextmanager
async def peer_over_websocket() -> AsyncIterator[str]:
    route = websocket_route("/ws", serve_peer, max_message_bytes=LIMIT)
    async with serve_app(Starlette(routes=[route]), ws_max_size=LIMIT) as base_url:
        yield ws_url(base_url, "/ws")


async def ws_answers(ws: ClientConnection) -> None:
    await ws.send('{"jsonrpc":"2.0","id":"alive","method":"echo","params":[1]}')
    assert orjson.loads(await ws.recv()) == {"jsonrpc": "2.0", "result": [1], "id": "alive"}


async def test_websocket_answers_garbage_frames_and_stays_up() -> None:
    rng = random.Random(SEED)
    async with asyncio.timeout(60), peer_over_websocket() as url:
        ws = await raw_ws_connect(url, max_size=None)
        closes: Counter[int] = Counter()
        for _ in range(600):
            roll = rng.random()
            if roll < 0.04:  # a frame over the limit cannot be skipped: close 1009
                await ws.send("x" * rng.randrange(LIMIT + 1, 4 * LIMIT))
                expected_close = 1009
            elif roll < 0.07:  # a text frame must be UTF-8: close 1007
                await ws.send(rng.choice([b"\xff", b'{"a":"\xc3("}', b"\xed\xa0\x80"]), text=True)
                expected_close = 1007
            else:
                data, reply = garbage(rng)
                if rng.random() < 0.3:  # fragmented into several frames
                    cut = rng.randrange(len(data) + 1)
                    await ws.send([data[:cut], data[cut:]], text=False)
                else:
                    text = data.isascii() and rng.random() < 0.5
                    await ws.send(data.decode() if text else data)
                if reply is not None:
                    assert judge(orjson.loads(await ws.recv())) == [reply], data
                continue
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == expected_close
            closes[expected_close] += 1
            ws = await raw_ws_connect(url, max_size=None)  # the server still serves
        await ws_answers(ws)
        await ws.close()
        assert closes[1009] and closes[1007]
