"""authMethods, authenticate and logout: what a connection advertises and how sign-in works.

A local stdio agent has nothing to log in to and advertises nothing. A remote connection was
opened with an API key or an OAuth token (its transport checked it and left it in the stream's
ASGI `state`); it advertises that credential as an `agent` method with `logout`. The agent runs
behind a real OS pipe, with the stream carrying the state a remote transport gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from junction.bridges.acp_services import build_runtime, credential_of, serve_acp
from tests.acp.wire import HANG_GUARD, ClientError, WireClient, agent_config
from tests.router_core.llm_servers import Reply, openai_server
from tests.transports.conftest import pipe_pair


@contextlib.asynccontextmanager
async def remote(
    tmp_path: Path, model_url: str, state: dict[str, Any]
) -> AsyncIterator[WireClient]:
    runtime = build_runtime(agent_config(model_url, tmp_path / "j.db"))
    async with pipe_pair(1 << 20) as (server_side, client_side):
        server_side.state = state  # type: ignore[attr-defined]  (what /acp's streams carry)
        served = asyncio.create_task(serve_acp(server_side, runtime, owner=state.get("principal")))
        client = WireClient(client_side)
        client.start()
        try:
            yield client
        finally:
            await client.aclose()
            async with asyncio.timeout(HANG_GUARD):
                await served
            await runtime.aclose()


async def test_stdio_advertises_nothing_to_log_in_to(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server, remote(tmp_path, server.url, {}) as client:
        init = await client.initialize()
        logout = await client.request("logout", {})
    assert "authMethods" not in init
    assert "auth" not in init["agentCapabilities"]
    assert logout["error"]["code"] == -32601


async def test_a_key_connection_logs_out_and_back_in(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="hi"), Reply(text="again")])
        state = {"principal": "alice", "scopes": frozenset({"acp"})}
        async with remote(tmp_path, server.url, state) as client:
            init = await client.initialize()
            sid = await client.new_session(tmp_path)
            assert (await client.prompt(sid, "hello"))["result"]["stopReason"] == "end_turn"
            assert await client.call("logout", {}) == {}
            refused = [
                await client.request("session/new", {"cwd": str(tmp_path), "mcpServers": []}),
                await client.prompt(sid, "still there?"),
                await client.request("session/list", {}),
            ]
            with pytest.raises(ClientError) as unknown:
                await client.call("authenticate", {"methodId": "nope"})
            assert await client.call("authenticate", {"methodId": "junction-api-key"}) == {}
            loaded = await client.call(
                "session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
            )
            after = await client.prompt(sid, "back")
    assert init["authMethods"] == [
        {
            "id": "junction-api-key",
            "name": "Junction API key",
            "description": init["authMethods"][0]["description"],
        }
    ]
    assert init["agentCapabilities"]["auth"] == {"logout": {}}
    assert [r["error"]["code"] for r in refused] == [-32000, -32000, -32000]
    assert "authenticate" in refused[0]["error"]["message"]
    assert unknown.value.code == -32602
    assert loaded["modes"]["currentModeId"] == "ask"
    assert after["result"]["stopReason"] == "end_turn"


async def test_an_expired_token_cannot_sign_back_in(tmp_path: Path) -> None:
    state = {"principal": "bob", "scopes": frozenset({"acp"}), "expires_at": time.time() - 1}
    async with openai_server(models=["m1"]) as server:
        async with remote(tmp_path, server.url, state) as client:
            init = await client.initialize()
            await client.call("logout", {})
            again = await client.request("authenticate", {"methodId": "junction-token"})
    assert [m["id"] for m in init["authMethods"]] == ["junction-token"]
    assert again["error"]["code"] == -32000
    assert "expired" in again["error"]["message"]


def test_what_each_connection_signed_in_with() -> None:
    assert credential_of({}) is None
    key = credential_of({"principal": "alice"})
    token = credential_of({"principal": "bob", "expires_at": 2.0})
    assert key is not None and key.method.id == "junction-api-key" and key.expires_at is None
    assert token is not None and token.method.id == "junction-token"
    assert token.problem(1.0) is None and token.problem(2.0) is not None
