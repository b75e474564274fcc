"""What makes a remote ACP connection durable (`transports/durable.py` behind `remote.py`), over
real HTTP and WebSockets: a newer stream fences the older off, a retry with the same
`Idempotency-Key` reaches the agent once, a slow client holds the agent back instead of losing
messages, and a connection nobody comes back to ends after its grace period.

The agent here is a recorder: it answers every message it receives with a `seen` notification
carrying it, and sends `count` notifications numbered 1..n when asked to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.transports.servers import serve_app, ws_url
from transports import MessageStream
from transports.remote import RESUMABLE_SUBPROTOCOL, remote_routes, strip_cursor

INIT = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}
SSE = {"Accept": "text/event-stream"}


async def recorder(stream: MessageStream) -> None:
    while (message := await stream.receive()) is not None:
        assert isinstance(message, bytes)
        decoded = orjson.loads(message)
        if decoded.get("method") == "initialize":
            await stream.send(orjson.dumps({"jsonrpc": "2.0", "id": 0, "result": {}}))
        elif decoded.get("method") == "count":
            for n in range(1, decoded["params"]["n"] + 1):
                await stream.send(orjson.dumps({"jsonrpc": "2.0", "method": "n", "params": n}))
        else:
            await stream.send(orjson.dumps({"jsonrpc": "2.0", "method": "seen", "params": decoded}))


@asynccontextmanager
async def server(
    handler: Callable[[MessageStream], Awaitable[None]] = recorder, **options: Any
) -> AsyncIterator[str]:
    routes = remote_routes("/acp", handler, **options)
    async with serve_app(Starlette(routes=routes)) as base:
        yield f"{base}/acp"


async def open_connection(http: httpx.AsyncClient, url: str) -> dict[str, str]:
    answer = await http.post(url, json=INIT)
    assert answer.status_code == 200 and answer.json() == {"jsonrpc": "2.0", "id": 0, "result": {}}
    return {"Acp-Connection-Id": answer.headers["acp-connection-id"]}


async def events(response: httpx.Response) -> AsyncIterator[tuple[str | None, str, Any]]:
    """(id, event, data) per SSE event."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                data = fields["data"]
                yield (
                    fields.get("id"),
                    fields.get("event", "message"),
                    (orjson.loads(data) if fields.get("event") == "message" else data),
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def test_a_newer_stream_fences_the_older_off_and_continues_after_its_cursor() -> None:
    async with server() as url, httpx.AsyncClient(timeout=10) as http:
        mine = await open_connection(http, url)
        count = {"jsonrpc": "2.0", "id": 1, "method": "count", "params": {"n": 2}}
        async with http.stream("GET", url, headers={**mine, **SSE}) as older:
            assert (await http.post(url, json=count, headers=mine)).status_code == 202
            seen = []
            reading = events(older)
            async for cursor, _, message in reading:
                seen.append((cursor, message["params"]))
                if len(seen) == 2:
                    break
            resume = {**mine, **SSE, "Last-Event-ID": "1"}  # as if event 2 never arrived
            async with http.stream("GET", url, headers=resume) as newer:
                more = {**count, "id": 2, "params": {"n": 1}}
                assert (await http.post(url, json=more, headers=mine)).status_code == 202
                rest = []
                following = events(newer)
                async for cursor, _, message in following:
                    rest.append((cursor, message["params"]))
                    if len(rest) == 2:
                        break
                assert [event async for event in reading] == []  # ended, and no `close`
                assert seen == [("1", 1), ("2", 2)] and rest == [("2", 2), ("3", 1)]
                assert (await http.delete(url, headers=mine)).status_code == 202
                tail = [event async for event in following]
                assert tail == [(None, "close", "end")]


async def test_a_resumed_websocket_closes_the_one_it_replaces_with_4409() -> None:
    async with server() as url:
        ws_address = ws_url(url.removesuffix("/acp"), "/acp")
        protocols = [RESUMABLE_SUBPROTOCOL]
        async with ws_connect(ws_address, subprotocols=protocols) as first:  # type: ignore[list-item]
            connection = first.response.headers["acp-connection-id"]
            await first.send(orjson.dumps(INIT).decode())
            assert strip_cursor(await first.recv(decode=False))[1] == "1"
            async with ws_connect(ws_address, subprotocols=protocols) as second:  # type: ignore[list-item]
                params = {"connectionId": connection, "cursor": "1"}
                await second.send(
                    orjson.dumps({"jsonrpc": "2.0", "method": "stream/resume", "params": params})
                )
                assert orjson.loads(await second.recv())["method"] == "stream/resumed"
                with suppress(ConnectionClosed):
                    await asyncio.wait_for(first.recv(), 10)
                assert first.close_code == 4409
                await second.send('{"jsonrpc":"2.0","method":"hello"}')
                message, cursor = strip_cursor(await second.recv(decode=False))
                assert cursor == "2" and orjson.loads(message)["params"]["method"] == "hello"


async def test_an_idempotency_key_lets_a_notification_through_once() -> None:
    async with server() as url, httpx.AsyncClient(timeout=10) as http:
        mine = await open_connection(http, url)
        note = {"jsonrpc": "2.0", "method": "session/cancel_all"}
        keyed = {**mine, "Idempotency-Key": "op-1"}
        first = await http.post(url, json=note, headers=keyed)
        again = await http.post(url, json=note, headers=keyed)
        other = await http.post(url, json=note, headers={**mine, "Idempotency-Key": "op-2"})
        assert [first.headers.get("acp-duplicate"), again.headers.get("acp-duplicate")] == [
            None,
            "true",
        ]
        assert other.status_code == 202 and "acp-duplicate" not in other.headers
        await http.delete(url, headers=mine)
        async with http.stream("GET", url, headers={**mine, **SSE}) as gone:
            assert gone.status_code == 404


async def test_a_full_retention_holds_the_agent_back_and_nothing_is_lost() -> None:
    async with server(retention=4) as url, httpx.AsyncClient(timeout=10) as http:
        mine = await open_connection(http, url)
        count = {"jsonrpc": "2.0", "id": 1, "method": "count", "params": {"n": 20}}
        assert (await http.post(url, json=count, headers=mine)).status_code == 202
        async with http.stream("GET", url, headers={**mine, **SSE}) as live:
            got = []
            async for cursor, _, message in events(live):
                got.append((int(cursor or 0), message["params"]))
                if len(got) == 20:
                    break
        assert got == [(n, n) for n in range(1, 21)]
        too_old = await http.get(url, headers={**mine, **SSE, "Last-Event-ID": "2"})
        assert too_old.status_code == 409  # message 3 is no longer retained


async def test_a_connection_nobody_comes_back_to_ends_after_its_grace_period() -> None:
    ended = asyncio.Event()

    async def handler(stream: MessageStream) -> None:
        await recorder(stream)
        ended.set()  # receive() said the connection is over

    async with server(handler, grace_seconds=0.2) as url, httpx.AsyncClient(timeout=10) as http:
        mine = await open_connection(http, url)  # and never a stream
        async with asyncio.timeout(10):
            await ended.wait()
        note = {"jsonrpc": "2.0", "method": "ping"}
        assert (await http.post(url, json=note, headers=mine)).status_code == 404
