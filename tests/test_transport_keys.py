"""API keys on the transports' server routes, which check none themselves: Junction's access
guard in front of `/acp` (WebSocket and SSE + POST) and `/mcp` refuses a missing or wrong key
before a route runs, and the transports' clients report the refusal. Moved here from
tests/transports and tests/mcp_gateway when the routes' own key checks were removed (one
implementation: the guard)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from junction import Junction
from tests.transports.servers import serve_app
from transports import HandshakeRefusedError, connect_streamable, connect_websocket

TOKEN = "s3cret-token"


@contextlib.asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[str]:
    config = {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "server": {"api_keys": [{"key": TOKEN, "name": "tester"}]},
    }
    junction = Junction.from_config(config)
    async with junction, serve_app(junction.asgi_app()) as base:
        yield base


async def test_ws_token_is_checked_at_the_handshake(tmp_path: Path) -> None:
    async with served(tmp_path) as base:
        url = f"{base.replace('http', 'ws')}/acp"
        for bad in (None, "wrong-token", TOKEN + "x"):
            with pytest.raises(HandshakeRefusedError) as refused:
                await connect_websocket(url, token=bad)
            assert refused.value.status == 401
        async with await connect_websocket(url, token=TOKEN) as client:
            await client.send(b'{"jsonrpc": "2.0", "id": 1, "method": "no/such"}')
            reply = orjson.loads(await client.receive() or b"")
            assert reply["id"] == 1 and reply["error"]["code"] == -32601


async def test_http_token_is_required_on_every_request(tmp_path: Path) -> None:
    """ACP's Streamable HTTP transport checks the key on each POST and GET of a connection, not
    only on the `initialize` that opened it."""
    async with served(tmp_path) as base, httpx.AsyncClient() as http:
        acp = f"{base}/acp"
        for bad in (None, "wrong-token"):
            with pytest.raises(HandshakeRefusedError) as refused:
                await connect_streamable(acp, token=bad)
            assert refused.value.status == 401
        async with await connect_streamable(acp, token=TOKEN) as client:
            await client.send(
                b'{"jsonrpc": "2.0", "id": 0, "method": "initialize",'
                b' "params": {"protocolVersion": 1, "clientCapabilities": {}}}'
            )
            assert "result" in orjson.loads(await client.receive() or b"")
            assert client.connection_id
            on_it = {"Acp-Connection-Id": client.connection_id}
            json = {**on_it, "Content-Type": "application/json"}  # the guard refuses others first
            stream = {**on_it, "Accept": "text/event-stream"}
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
                posted = await http.post(acp, content=b"{}", headers={**json, **headers})
                listened = await http.get(acp, headers={**stream, **headers})
                for response in (posted, listened):
                    assert response.status_code == 401
                    assert response.headers["www-authenticate"] == "Bearer"
            await client.send(b'{"jsonrpc": "2.0", "id": "s", "method": "no/such"}')
            reply = orjson.loads(await client.receive() or b"")
            assert reply["id"] == "s" and reply["error"]["code"] == -32601


async def test_mcp_http_requires_the_api_key(tmp_path: Path) -> None:
    async with served(tmp_path) as base, httpx.AsyncClient() as http:
        body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}}
        response = await http.post(f"{base}/mcp", json=body)
        assert response.status_code == 401
        wrong = await http.post(f"{base}/mcp", json=body, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
