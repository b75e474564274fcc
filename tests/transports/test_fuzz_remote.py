"""ACP's remote transport (`transports/remote.py`) under garbage, over real HTTP and WebSockets.

POST bodies of every odd shape get the HTTP status the transport promises (and nothing reaches
the agent); headers naming connections, sessions and cursors that do not exist get 400/404/409;
on the resumable WebSocket, garbage frames get the peer's JSON-RPC errors, each with its cursor,
and an oversized frame closes the socket with 1009 while the connection lives on to be resumed.
Through all of it the server stays up and the next connection is served.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.transports.servers import serve_app, ws_url
from tests.transports.test_fuzz_framing import LIMIT, SEED, garbage, judge, serve_peer
from transports.remote import RESUMABLE_SUBPROTOCOL, remote_routes, strip_cursor

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": 1}}


@asynccontextmanager
async def remote_server() -> AsyncIterator[str]:
    routes = remote_routes("/acp", serve_peer, max_message_bytes=LIMIT, retention=8)
    async with serve_app(Starlette(routes=routes), ws_max_size=LIMIT) as base_url:
        yield base_url


async def initialize(http: httpx.AsyncClient, url: str) -> str:
    answer = await http.post(url, json=INIT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == 0  # the fuzz peer answers -32601; the POST still carries it
    connection_id: str = answer.headers["acp-connection-id"]
    return connection_id


def odd_body(rng: random.Random) -> tuple[bytes, str, int]:
    """A POST body, its content type, and the status it is owed on a live connection."""
    kind = rng.randrange(6)
    if kind == 0:
        return (
            bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))),
            "application/json",
            400,
        )
    if kind == 1:
        return b"[" + orjson.dumps(INIT) + b"]", "application/json", 501
    if kind == 2:
        return rng.choice([b"1", b'"x"', b"null", b"{}", b'{"id":1}']), "application/json", 400
    if kind == 3:
        return b"x" * rng.randrange(LIMIT + 1, 4 * LIMIT), "application/json", 413
    if kind == 4:
        return orjson.dumps({"jsonrpc": "2.0", "method": "echo"}), "text/plain", 415
    prompt = {"jsonrpc": "2.0", "id": rng.randrange(99), "method": "session/prompt", "params": {}}
    return orjson.dumps(prompt), "application/json", 400  # no Acp-Session-Id


async def test_http_garbage_gets_its_status_and_the_server_stays_up() -> None:
    rng = random.Random(SEED)
    async with remote_server() as base, httpx.AsyncClient(timeout=10) as http:
        url = f"{base}/acp"
        connection = await initialize(http, url)
        statuses: Counter[int] = Counter()
        owed: Counter[int] = Counter()
        for _ in range(120):
            body, content_type, status = odd_body(rng)
            headers = {"Content-Type": content_type, "Acp-Connection-Id": connection}
            answer = await http.post(url, content=body, headers=headers)
            statuses[answer.status_code] += 1
            owed[status] += 1
            assert "error" in answer.json()
        assert statuses == owed

        unknown = {"Acp-Connection-Id": "no-such-connection"}
        note = {"jsonrpc": "2.0", "method": "note"}
        assert (await http.post(url, json=note)).status_code == 400  # no connection id
        assert (await http.post(url, json=note, headers=unknown)).status_code == 404
        sse = {"Accept": "text/event-stream"}
        assert (await http.get(url, headers={**unknown, **sse})).status_code == 404
        assert (await http.delete(url, headers=unknown)).status_code == 404
        mine = {"Acp-Connection-Id": connection}
        no_sse = {**mine, "Accept": "application/json"}
        assert (await http.get(url, headers=no_sse)).status_code == 406
        ghost = {**mine, **sse, "Acp-Session-Id": "sess-nobody"}
        assert (await http.get(url, headers=ghost)).status_code == 404
        for cursor in ["99", "-1", "abc", "1" * 40]:
            resumed = await http.get(url, headers={**mine, **sse, "Last-Event-ID": cursor})
            assert resumed.status_code == 409, cursor
            assert "cannot resume" in resumed.json()["error"]

        # still serving: the connection's stream carries the answer to a real request
        async with http.stream("GET", url, headers={**mine, **sse}) as live:
            echo = {"jsonrpc": "2.0", "id": "alive", "method": "echo", "params": [1]}
            assert (await http.post(url, json=echo, headers=mine)).status_code == 202
            async for line in live.aiter_lines():
                if line.startswith("data:") and "alive" in line:
                    assert orjson.loads(line[5:]) == {
                        "jsonrpc": "2.0",
                        "id": "alive",
                        "result": [1],
                    }
                    break
        assert (await http.delete(url, headers=mine)).status_code == 202


async def receive(ws: ClientConnection) -> tuple[Any, int]:
    raw = await asyncio.wait_for(ws.recv(decode=False), 10)
    message, cursor = strip_cursor(raw)
    assert cursor is not None, raw
    return orjson.loads(message), int(cursor)


async def test_resumable_websocket_garbage_frames_and_oversize_then_resume() -> None:
    rng = random.Random(SEED + 1)
    async with remote_server() as base:
        url = ws_url(base, "/acp")
        async with ws_connect(url, subprotocols=[RESUMABLE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == RESUMABLE_SUBPROTOCOL
            connection = ws.response.headers["acp-connection-id"]
            await ws.send(orjson.dumps(INIT).decode())
            owed: Counter[Any] = Counter()
            for _ in range(60):
                data, reply = garbage(rng)
                await ws.send(data, text=False)
                if reply is not None:
                    owed[reply] += 1
            got: Counter[Any] = Counter()
            cursors = []
            _, first = await receive(ws)  # initialize's answer
            cursors.append(first)
            while sum(got.values()) < sum(owed.values()):
                message, cursor = await receive(ws)
                got.update(judge(message))
                cursors.append(cursor)
            assert got == owed
            assert cursors == list(range(1, len(cursors) + 1))
            await ws.send("x" * (LIMIT + 1))
            with suppress(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1009

        async with ws_connect(url, subprotocols=[RESUMABLE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
            resume = {"connectionId": connection, "cursor": str(cursors[-1] + 5)}
            await ws.send(
                orjson.dumps({"jsonrpc": "2.0", "method": "stream/resume", "params": resume})
            )
            refused = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert refused["method"] == "stream/resume_failed"
            assert "cannot resume" in refused["params"]["reason"]
            # the socket goes on as a new connection
            await ws.send('{"jsonrpc":"2.0","id":"alive","method":"echo","params":[2]}')
            assert await receive(ws) == ({"jsonrpc": "2.0", "id": "alive", "result": [2]}, 1)

        async with ws_connect(url, subprotocols=[RESUMABLE_SUBPROTOCOL]) as ws:  # type: ignore[list-item]
            resume = {"connectionId": connection, "cursor": str(cursors[-1])}
            await ws.send(
                orjson.dumps({"jsonrpc": "2.0", "method": "stream/resume", "params": resume})
            )
            resumed = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert resumed == {
                "jsonrpc": "2.0",
                "method": "stream/resumed",
                "params": {"connectionId": connection, "cursor": str(cursors[-1])},
            }
            await ws.send('{"jsonrpc":"2.0","id":"again","method":"echo","params":[3]}')
            answer = await receive(ws)
            assert answer == ({"jsonrpc": "2.0", "id": "again", "result": [3]}, cursors[-1] + 1)
