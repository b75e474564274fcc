"""The HTTP+SSE transport (2024-11-05) beside `/mcp` in `junction --mode serve`: the SDK's SSE
client works with an API key, and a session answers only the key that opened it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import httpx
from mcp import Client
from mcp.client.sse import sse_client

from tests.mcp_gateway.conftest import SERVERS
from tests.test_serve_mode import start, stop


async def test_sse_clients_are_served_and_a_session_is_its_openers(tmp_path: Path) -> None:
    config = {
        "server": {"api_keys": [{"key": "key-a", "name": "a"}, {"key": "key-b", "name": "b"}]},
        "mcp_servers": {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}},
    }
    served = await start(tmp_path, "\n".join(f"{k}: {json.dumps(v)}" for k, v in config.items()))
    try:
        url = f"{served.base}/mcp/sse"
        headers = {"Authorization": "Bearer key-a"}
        async with Client(sse_client(url, headers=headers), mode="legacy") as client:
            result = await client.call_tool("ok__echo", {"message": "over sse"})
            assert result.content[0].text == "over sse"  # type: ignore[union-attr]
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream("GET", url, headers=headers) as stream:
                assert stream.status_code == 200
                # Read on by hand: a generator left by `break` is closed, and the stream with it.
                lines, endpoint = stream.aiter_lines(), ""
                with anyio.fail_after(10):
                    while not endpoint.startswith("/"):
                        endpoint = (await anext(lines)).removeprefix("data:").strip()
                assert "session_id=" in endpoint
                ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
                other = await http.post(
                    f"{served.base}{endpoint}",
                    json=ping,
                    headers={"Authorization": "Bearer key-b"},
                )
                assert other.status_code == 404  # another key's session does not exist for it
                unkeyed = await http.post(f"{served.base}{endpoint}", json=ping)
                assert unkeyed.status_code == 401
                own = await http.post(f"{served.base}{endpoint}", json=ping, headers=headers)
                assert own.status_code == 202, own.text
    finally:
        await stop(served)
