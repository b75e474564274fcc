"""Sessions that live in one replica answer on all three behind HAProxy (round robin, no
stickiness): a legacy MCP `Mcp-Session-Id` session driven by the `mcp` SDK's Streamable HTTP
client, and remote ACP connections (`Acp-Connection-Id`) driven by the official ACP SDK 0.12.1
over HTTP and by the resumable WebSocket profile Junction's bridge speaks. Most requests land on
a replica that does not own the session and are carried to the one that does (owner
forwarding, junction/http/forward.py); `junction_sessions_forwarded_total` on each replica
proves they were."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_gateway._sdk import create_mcp_http_client
from tests.a2a.harness import free_port
from tests.cluster.harness import HANG_GUARD, Replica, haproxy
from tests.mcp_gateway.conftest import SERVERS
from tests.router_core.llm_servers import OpenAIServer, openai_server
from tests.test_bridge import KEY
from tests.test_limits_redis import RedisServer

pytestmark = pytest.mark.timeout(180)
AUTH = {"Authorization": f"Bearer {KEY}"}


def cluster_config(path: Path, store: str, redis: str, model: str) -> Path:
    path.write_text(
        orjson.dumps(
            {
                "server": {"api_keys": [KEY], "shutdown_grace_seconds": 2},
                "store": {"url": store},
                "cluster": {"redis_url": redis},
                "mcp_servers": {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}},
                "backends": {"fake": {"type": "openai", "url": f"{model}/v1", "models": ["m1"]}},
                "acp": {"default_model": "m1"},
            }
        ).decode()
    )
    return path


@contextlib.asynccontextmanager
async def cluster(
    tmp: Path, store: str, redis: RedisServer, model: OpenAIServer
) -> AsyncIterator[tuple[str, list[Replica]]]:
    """Three replicas behind HAProxy: (the balancer's URL, the replicas)."""
    config = cluster_config(tmp / "junction.json", store, redis.url, model.url)
    replicas = [Replica(f"r{i}", free_port(), config) for i in (1, 2, 3)]
    await asyncio.gather(*(r.start() for r in replicas))
    try:
        async with haproxy(tmp, replicas) as lb:
            yield lb, replicas
    finally:
        for replica in replicas:
            if replica.proc is not None:
                await replica.proc.kill()


async def forwarded(http: httpx.AsyncClient, replicas: list[Replica], kind: str) -> int:
    """Requests of `kind` the live replicas carried to another one, from their /metrics."""
    total = 0
    for replica in replicas:
        if replica.proc is None or replica.proc.process.returncode is not None:
            continue
        text = (await http.get(f"{replica.url}/metrics", headers=AUTH)).text
        found = re.search(
            rf'^junction_sessions_forwarded_total\{{kind="{kind}"\}} (\S+)$', text, re.M
        )
        total += int(float(found.group(1))) if found else 0
    return total


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.fixture
async def model() -> AsyncIterator[OpenAIServer]:
    async with openai_server(models=["m1"]) as server:
        yield server


async def test_an_mcp_session_answers_on_every_replica_until_deleted_or_its_owner_dies(
    tmp_path: Path, postgres_url: str, redis: RedisServer, model: OpenAIServer
) -> None:
    answered: Counter[str] = Counter()
    carried: Counter[str] = Counter()
    opened: list[str] = []

    async def seen(response: httpx.Response) -> None:
        if (created := response.headers.get("mcp-session-id")) and created not in opened:
            opened.append(created)
        if "mcp-session-id" in response.request.headers:
            answered[response.headers.get("x-junction-replica", "?")] += 1
            carried[response.headers.get("x-junction-forwarded-by", "")] += 1

    async with (
        cluster(tmp_path, postgres_url, redis, model) as (lb, replicas),
        httpx.AsyncClient(timeout=10) as http,
    ):
        url = f"{lb}/mcp"
        async with create_mcp_http_client(headers=AUTH) as sdk_http:
            sdk_http.event_hooks["response"].append(seen)
            async with Client(
                streamable_http_client(url, http_client=sdk_http), mode="legacy"
            ) as client:
                progress: list[float] = []

                async def on_progress(done: float, total: float | None, note: str | None) -> None:
                    progress.append(done)

                for round_ in range(6):
                    names = {t.name for t in (await client.list_tools()).tools}
                    assert {"ok__echo", "ok__progress"} <= names
                    echoed = await client.call_tool("ok__echo", {"message": f"hi {round_}"})
                    assert text_of(echoed) == f"hi {round_}"
                    progress.clear()
                    streamed = await client.call_tool(
                        "ok__progress", {}, progress_callback=on_progress
                    )
                    assert text_of(streamed) == "progressed"
                    assert progress == [1, 2, 3]
                session = opened[-1]
            # one replica (the owner) answered every request of the session; the others carried
            assert len(answered) == 1, answered
            assert sum(n for by, n in carried.items() if by) >= 12, carried
        assert await forwarded(http, replicas, "mcp") >= 12
        # the client's DELETE on close ended the session everywhere
        for _ in replicas:
            gone = await http.post(url, json=_ping(), headers=_session_headers(session))
            assert gone.status_code == 404, gone.text
        assert redis.command(b"GET", f"junction:owner:mcp:{session}".encode()) in (None, b"$-1")

        # the owner is SIGKILLed: its session is gone for every replica, and the client
        # starts again
        answered.clear()
        async with create_mcp_http_client(headers=AUTH) as sdk_http:
            sdk_http.event_hooks["response"].append(seen)
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(
                    Client(streamable_http_client(url, http_client=sdk_http), mode="legacy")
                )
                assert text_of(await client.call_tool("ok__echo", {"message": "x"})) == "x"
                (owner_name,) = answered
                owner = next(r for r in replicas if r.name == owner_name)
                session = opened[-1]
                assert owner.proc is not None
                owner.proc.process.send_signal(signal.SIGKILL)
                await owner.proc.process.wait()
                for _ in range(3):  # whichever replica it lands on
                    lost = await http.post(url, json=_ping(), headers=_session_headers(session))
                    assert lost.status_code == 404, lost.text
                with pytest.raises((MCPError, httpx.HTTPError, ExceptionGroup)):
                    await client.call_tool("ok__echo", {"message": "y"})
                stack.pop_all()  # the dead session's client is abandoned, not closed
            async with Client(
                streamable_http_client(url, http_client=sdk_http), mode="legacy"
            ) as again:
                for _ in range(4):
                    assert text_of(await again.call_tool("ok__echo", {"message": "z"})) == "z"


def _ping() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 99, "method": "ping"}


def _session_headers(session: str) -> dict[str, str]:
    return {
        **AUTH,
        "Mcp-Session-Id": session,
        "Mcp-Protocol-Version": "2025-11-25",
        "Accept": "application/json, text/event-stream",
    }


async def wait_for(check: Any) -> Any:
    async with asyncio.timeout(HANG_GUARD):
        while not (found := await check()):  # noqa: ASYNC110 (another process's state)
            await asyncio.sleep(0.05)
        return found
