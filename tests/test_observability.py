"""`/metrics`, `/admin/mcp` and scoped API keys on a real `junction --mode serve` process."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from junction.config import unnamed_key_name
from tests.mcp_gateway.conftest import SERVERS
from tests.router_core.llm_servers import Fault, Reply, openai_server
from tests.test_serve_mode import Served, start, stop
from transports import HandshakeRefusedError, connect_websocket

EXAMPLE_AGENT = Path(__file__).parent.parent / "examples" / "a2a_agent.py"
MCP_ACCEPT = {"Accept": "application/json, text/event-stream"}

KEYS = """\
server:
  api_keys:
    - full-key
    - {key: mcp-key, name: tools-only, scopes: [mcp]}
    - {key: alice-key, name: alice, scopes: [a2a]}
    - {key: bob-key, name: bob, scopes: [a2a, openai], models: ["m*"]}
    - {key: scrape-key, name: prometheus, scopes: [metrics]}
"""
SECRET_WORDS = (b"full-key", b"mcp-key", b"alice", b"bob", b"scrape-key", b"prometheus")


def keys(tmp_path: Path) -> str:
    """The keys above and a store of the test's own (tasks are kept per principal in it)."""
    return KEYS + f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, keyed by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    scrape: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


@asynccontextmanager
async def example_agent() -> AsyncIterator[str]:
    """The bundled example A2A agent (plain Starlette), on a free port."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE_AGENT),
        "--port",
        str(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    if (await http.get(f"{url}/.well-known/agent-card.json")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        yield url
    finally:
        process.terminate()
        await process.wait()


async def wait_until_settled(
    http: httpx.AsyncClient, served: Served, headers: dict[str, str]
) -> dict[str, Any]:
    """`/health` once no MCP upstream is still connecting and every A2A agent has a card."""
    for _ in range(150):
        body: dict[str, Any] = (await http.get(f"{served.base}/health", headers=headers)).json()
        components = body["components"]
        connecting = any(s.startswith("connecting") for s in components["mcp_servers"].values())
        fetching = any("not fetched" in s for s in components["a2a_agents"].values())
        if not connecting and not fetching:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"components never settled: {body}")


def initialize(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }


# --------------------------------------------------------------------------- /metrics


async def test_metrics_count_traffic_and_show_live_state(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        model.default = Reply(text="routed")
        config = (
            keys(tmp_path)
            + "mcp_servers:\n"
            + f"  tools: {{command: {sys.executable}, args: ['{SERVERS}', ok]}}\n"
            + "a2a_agents:\n"
            + "  gone: {url: 'http://127.0.0.1:9'}\n"
            + "backends:\n"
            + f"  fake: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
        )
        served = await start(tmp_path, config)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                full = bearer("full-key")
                await wait_until_settled(http, served, full)
                for _ in range(3):
                    ok = await http.post(
                        f"{served.base}/v1/chat/completions",
                        json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
                        headers=full,
                    )
                    assert ok.status_code == 200
                streamed = await http.post(
                    f"{served.base}/v1/chat/completions",
                    json={
                        "model": "m1",
                        "stream": True,
                        "messages": [{"role": "user", "content": "x"}],
                    },
                    headers=full,
                )
                assert streamed.status_code == 200 and b"[DONE]" in streamed.content
                mcp = await http.post(
                    f"{served.base}/mcp", json=initialize(), headers={**full, **MCP_ACCEPT}
                )
                assert mcp.status_code == 200
                assert (
                    await http.get(f"{served.base}/v1/models", headers=bearer("nope"))
                ).status_code == 401
                assert (
                    await http.get(f"{served.base}/no/such/path", headers=full)
                ).status_code == 404
                model.script([Reply(fault=Fault.http(500))] * 20)
                failed = await http.post(
                    f"{served.base}/v1/chat/completions",
                    json={"model": "m1", "messages": [{"role": "user", "content": "boom"}]},
                    headers=full,
                )
                assert failed.status_code >= 500
                client = await connect_websocket(
                    f"ws://127.0.0.1:{served.port}/acp", token="full-key"
                )
                await client.aclose()
                with pytest.raises(HandshakeRefusedError):
                    await connect_websocket(f"ws://127.0.0.1:{served.port}/acp", token="mcp-key")

                assert (await http.get(f"{served.base}/metrics")).status_code == 401
                assert (
                    await http.get(f"{served.base}/metrics", headers=bearer("mcp-key"))
                ).status_code == 403
                assert (await http.get(f"{served.base}/metrics", headers=full)).status_code == 200
                reply = await http.get(f"{served.base}/metrics", headers=bearer("scrape-key"))
        finally:
            assert await stop(served) == 0
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    scrape = samples(reply.text)

    requests = "junction_http_requests_total"
    assert value(scrape, requests, surface="openai", code="2xx") >= 4
    assert value(scrape, requests, surface="openai", code="4xx") >= 1  # the wrong key
    assert value(scrape, requests, surface="openai", code="5xx") >= 1
    assert value(scrape, requests, surface="mcp", code="2xx") >= 1
    assert value(scrape, requests, surface="other", code="4xx") >= 1
    assert value(scrape, requests, surface="metrics", code="4xx") >= 2
    assert value(scrape, requests, surface="health", code="2xx") >= 1
    assert value(scrape, "junction_http_errors_total", surface="openai") >= 1
    assert value(scrape, "junction_http_request_duration_seconds_count", surface="openai") >= 6
    assert value(scrape, "junction_http_request_duration_seconds_sum", surface="openai") > 0
    assert value(scrape, "junction_http_requests_in_progress", surface="metrics") == 1  # this one
    assert (
        value(scrape, "junction_websocket_connections_total", surface="acp", outcome="accepted")
        == 1
    )
    assert (
        value(scrape, "junction_websocket_connections_total", surface="acp", outcome="refused") == 1
    )
    assert value(scrape, "junction_websocket_connections_open", surface="acp") == 0

    assert value(scrape, "junction_backend_successes_total", backend="fake") >= 4
    selected = value(scrape, "junction_backend_selections_total", backend="fake")
    assert selected >= value(scrape, "junction_backend_successes_total", backend="fake") + 1
    assert value(scrape, "junction_backend_failures_total", backend="fake") >= 1
    assert ("junction_backend_in_flight", frozenset({("backend", "fake")})) in scrape
    assert value(scrape, "junction_backend_latency_ewma_seconds", backend="fake") > 0
    states = {
        s: value(scrape, "junction_backend_circuit_state", backend="fake", state=s)
        for s in ("closed", "open", "half_open")
    }
    assert sorted(states.values()) == [0, 0, 1]

    assert value(scrape, "junction_mcp_upstream_state", server="tools", state="ready") == 1
    assert value(scrape, "junction_mcp_upstream_state", server="tools", state="failed") == 0
    assert value(scrape, "junction_mcp_upstream_tools", server="tools") > 0
    assert value(scrape, "junction_a2a_agent_state", agent="gone", state="error") == 1
    assert value(scrape, "junction_a2a_agent_state", agent="gone", state="ready") == 0
    assert any(name == "process_resident_memory_bytes" for name, _ in scrape)


async def test_metrics_can_be_public(tmp_path: Path) -> None:
    served = await start(
        tmp_path,
        "server: {api_keys: [k], metrics_public: true}\n"
        f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n",
    )
    try:
        async with httpx.AsyncClient() as http:
            public = await http.get(
                f"{served.base}/metrics", headers={"Accept": "application/openmetrics-text"}
            )
            assert (await http.get(f"{served.base}/v1/models")).status_code == 401
    finally:
        assert await stop(served) == 0
    assert public.status_code == 200
    assert public.headers["content-type"].startswith("application/openmetrics-text")
    assert public.text.rstrip().endswith("# EOF")


# --------------------------------------------------------------------------- /admin/mcp


async def test_admin_mcp_lists_every_upstream(tmp_path: Path) -> None:
    config = (
        keys(tmp_path)
        + "mcp_servers:\n"
        + f"  tools: {{command: {sys.executable}, args: ['{SERVERS}', ok]}}\n"
        + f"  broken: {{command: {sys.executable}, args: ['{SERVERS}', exit]}}\n"
    )
    served = await start(tmp_path, config)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            await wait_until_settled(http, served, bearer("full-key"))
            reply = await http.get(f"{served.base}/admin/mcp", headers=bearer("full-key"))
            refused = await http.get(f"{served.base}/admin/mcp", headers=bearer("mcp-key"))
    finally:
        assert await stop(served) == 0
    assert refused.status_code == 403
    assert reply.status_code == 200
    servers = {row["name"]: row for row in reply.json()["servers"]}
    assert set(servers) == {"tools", "broken"}
    tools = servers["tools"]
    assert (tools["kind"], tools["state"], tools["reason"]) == ("stdio", "ready", None)
    assert tools["protocol_version"] and tools["server_info"]
    assert tools["tools"] > 0
    broken = servers["broken"]
    assert broken["state"] == "failed" and broken["reason"]
    assert broken["tools"] == 0


# --------------------------------------------------------------------------- scoped keys


async def rpc(http: httpx.AsyncClient, base: str, key: str, method: str, params: Any) -> Any:
    reply = await http.post(
        f"{base}/a2a",
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers={**bearer(key), "A2A-Version": "1.0"},
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


async def test_keys_are_held_to_their_scopes(tmp_path: Path) -> None:
    async with example_agent() as agent_url:
        served = await start(
            tmp_path, keys(tmp_path) + f"a2a_agents:\n  planner: {{url: '{agent_url}'}}\n"
        )
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                settled = await wait_until_settled(http, served, bearer("full-key"))
                assert settled["components"]["a2a_agents"] == {"planner": "ready"}
                base = served.base

                # Out of scope: 403, saying nothing about other keys.
                denied = await http.get(f"{base}/v1/models", headers=bearer("mcp-key"))
                assert denied.status_code == 403
                assert not any(word in denied.content for word in SECRET_WORDS)
                assert "openai" in denied.json()["error"]["message"]  # OpenAI's error shape on /v1
                mcp = await http.post(
                    f"{base}/mcp", json=initialize(), headers={**bearer("mcp-key"), **MCP_ACCEPT}
                )
                assert mcp.status_code == 200 and b"serverInfo" in mcp.content
                for path in (
                    "/admin/backends",
                    "/admin/mcp",
                    "/.well-known/agent-card.json",
                    "/acp",
                ):
                    assert (
                        await http.get(base + path, headers=bearer("mcp-key"))
                    ).status_code == 403, path
                assert (
                    await http.get(f"{base}/v1/models", headers=bearer("bob-key"))
                ).status_code == 200
                assert (
                    await http.get(f"{base}/health", headers=bearer("mcp-key"))
                ).status_code == 200

                # Missing or wrong key: 401, no detail.
                for headers in (
                    {},
                    bearer("wrong"),
                    bearer("full-key-but-longer"),
                    {"Authorization": "Basic x"},
                ):
                    wrong = await http.get(f"{base}/v1/models", headers=headers)
                    assert wrong.status_code == 401
                    assert wrong.headers["www-authenticate"] == "Bearer"
                    assert not any(word in wrong.content for word in SECRET_WORDS)

                # The key's name is the principal: bob cannot see alice's task.
                sent = await rpc(
                    http,
                    base,
                    "alice-key",
                    "SendMessage",
                    {
                        "message": {
                            "messageId": "m-1",
                            "role": "ROLE_USER",
                            "parts": [{"text": "plan a picnic"}],
                            "metadata": {"agent": "planner"},
                        }
                    },
                )
                task_id = sent["result"]["task"]["id"]
                mine = await rpc(http, base, "alice-key", "GetTask", {"id": task_id})
                assert mine["result"]["id"] == task_id
                theirs = await rpc(http, base, "bob-key", "GetTask", {"id": task_id})
                assert "error" in theirs and "result" not in theirs
                alice_list = await rpc(http, base, "alice-key", "ListTasks", {})
                bob_list = await rpc(http, base, "bob-key", "ListTasks", {})
                assert [t["id"] for t in alice_list["result"]["tasks"]] == [task_id]
                assert bob_list["result"]["tasks"] == []
        finally:
            assert await stop(served) == 0


async def test_scoped_websocket_and_loopback_without_keys_still_work(tmp_path: Path) -> None:
    served = await start(tmp_path, keys(tmp_path))
    try:
        client = await connect_websocket(f"ws://127.0.0.1:{served.port}/acp", token="full-key")
        await client.send(b'{"jsonrpc": "2.0", "id": 1, "method": "x"}')
        reply = orjson.loads(await asyncio.wait_for(client.receive(), 10))  # type: ignore[arg-type]
        assert reply["error"]["code"] == -32601
        await client.aclose()
        for token in ("alice-key", "wrong"):
            with pytest.raises(HandshakeRefusedError):
                await connect_websocket(f"ws://127.0.0.1:{served.port}/acp", token=token)
    finally:
        assert await stop(served) == 0
    open_served = await start(tmp_path, f"store: {{url: 'sqlite:///{tmp_path}/open.db'}}\n")
    try:
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{open_served.base}/metrics")).status_code == 200
            forged = await http.get(f"{open_served.base}/metrics", headers={"Host": "evil.example"})
            assert forged.status_code == 403
    finally:
        assert await stop(open_served) == 0


async def test_a_key_limited_to_some_models_sees_and_uses_only_those(tmp_path: Path) -> None:
    async with openai_server(models=["m1", "m2"]) as model:
        model.default = Reply(text="ok")
        config = (
            "server:\n  api_keys:\n    - full-key\n"
            "    - {name: small, key: small-key, scopes: [openai], models: ['m1']}\n"
            f"backends:\n  fake: {{type: openai, url: '{model.url}/v1', models: [m1, m2]}}\n"
        )
        served = await start(tmp_path, config)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                base = served.base

                async def listed(key: str) -> list[str]:
                    reply = await http.get(f"{base}/v1/models", headers=bearer(key))
                    return sorted(m["id"] for m in reply.json()["data"])

                async def chat(key: str, name: str) -> httpx.Response:
                    body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
                    return await http.post(
                        f"{base}/v1/chat/completions", json=body, headers=bearer(key)
                    )

                assert await listed("full-key") == ["m1", "m2"]
                assert await listed("small-key") == ["m1"]
                assert (await chat("small-key", "m1")).status_code == 200
                refused = await chat("small-key", "m2")
                assert refused.status_code == 404
                assert "m1" not in refused.text  # nothing about what else exists
                assert (await chat("full-key", "m2")).status_code == 200
        finally:
            assert await stop(served) == 0
    assert [r.body["model"] for r in model.chat_requests] == ["m1", "m2"]


async def test_a_key_limited_to_some_mcp_tools_sees_and_calls_only_those(tmp_path: Path) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from mcp_gateway._sdk import create_mcp_http_client

    config = (
        "server:\n  api_keys:\n    - full-key\n"
        "    - {name: narrow, key: narrow-key, scopes: [mcp], mcp_tools: ['ok__ec*']}\n"
        f"mcp_servers:\n  ok: {{command: {sys.executable}, args: [{SERVERS}, ok]}}\n"
    )
    served = await start(tmp_path, config)
    try:
        seen: dict[str, set[str]] = {}
        for key in ("full-key", "narrow-key"):
            async with create_mcp_http_client(headers=bearer(key)) as http:
                transport = streamable_http_client(f"{served.base}/mcp", http_client=http)
                async with Client(transport) as client:
                    for _ in range(50):  # the upstream connects in the background
                        seen[key] = {tool.name for tool in (await client.list_tools()).tools}
                        if seen[key]:
                            break
                        await asyncio.sleep(0.1)
                    echoed = await client.call_tool("ok__echo", {"message": "hi"})
                    assert not echoed.is_error
                    if key == "narrow-key":
                        with pytest.raises(MCPError, match="Unknown tool"):
                            await client.call_tool("ok__big", {"size": 10})
    finally:
        assert await stop(served) == 0
    assert "ok__echo" in seen["full-key"] and len(seen["full-key"]) > 1
    assert seen["narrow-key"] == {"ok__echo"}


# --------------------------------------------------------------------------- usage metrics


async def acp_call(client: Any, request_id: int, method: str, params: dict[str, Any]) -> Any:
    """One ACP request over a WebSocket stream; session/update notifications are skipped."""
    await client.send(
        orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    )
    while True:
        raw = await asyncio.wait_for(client.receive(), 30)
        assert raw is not None, "the ACP connection closed"
        message = orjson.loads(raw)
        if message.get("id") == request_id and "method" not in message:
            assert "error" not in message, message
            return message["result"]


async def mcp_calls(url: str, key: str) -> list[bool]:
    """tools/call through `/mcp` with the SDK client: two that work, one the tool marks as an
    error, one the gateway refuses before the upstream (bad arguments), one whose upstream
    dies mid-call. Returns each result's isError (None for the failed call)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from mcp_gateway._sdk import create_mcp_http_client

    async with (
        create_mcp_http_client(headers=bearer(key)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy") as client,
    ):
        errors = [
            (await client.call_tool("tools__echo", {"message": "a"})).is_error,
            (await client.call_tool("tools__echo", {"message": "b"})).is_error,
            (await client.call_tool("tools__rich", {})).is_error,
            (await client.call_tool("tools__add", {"a": "one", "b": 2})).is_error,
        ]
        with pytest.raises(MCPError):
            await client.call_tool("tools__die", {})
    return errors


async def test_metrics_count_tokens_tool_calls_sessions_turns_and_tasks(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model, example_agent() as agent_url:
        model.default = Reply(text="counted", usage=(10, 5))
        config = (
            keys(tmp_path)
            + "mcp_servers:\n"
            + f"  tools: {{command: {sys.executable}, args: ['{SERVERS}', ok]}}\n"
            + f"a2a_agents:\n  planner: {{url: '{agent_url}'}}\n"
            + f"backends:\n  fake: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
            + "acp: {default_model: m1}\n"
        )
        served = await start(tmp_path, config)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                full = bearer("full-key")
                await wait_until_settled(http, served, full)
                body: dict[str, Any] = {
                    "model": "m1",
                    "messages": [{"role": "user", "content": "hi"}],
                }
                chat = f"{served.base}/v1/chat/completions"
                for extra in (
                    {},  # usage in the JSON body
                    {"stream": True, "stream_options": {"include_usage": True}},  # in the stream
                    {"stream": True},  # a stream without usage: nothing to count
                ):
                    reply = await http.post(chat, json=body | extra, headers=full)
                    assert reply.status_code == 200

                tool_errors = await mcp_calls(f"{served.base}/mcp", "full-key")

                sent = await rpc(
                    http,
                    served.base,
                    "alice-key",
                    "SendMessage",
                    {
                        "message": {
                            "messageId": "m-1",
                            "role": "ROLE_USER",
                            "parts": [{"text": "plan a picnic"}],
                            "metadata": {"agent": "planner"},
                        }
                    },
                )
                task_state = sent["result"]["task"]["status"]["state"]

                acp = await connect_websocket(f"ws://127.0.0.1:{served.port}/acp", token="full-key")
                try:
                    await acp_call(acp, 1, "initialize", {"protocolVersion": 1})
                    session = await acp_call(
                        acp, 2, "session/new", {"cwd": str(tmp_path), "mcpServers": []}
                    )
                    prompt = {
                        "sessionId": session["sessionId"],
                        "prompt": [{"type": "text", "text": "hello"}],
                    }
                    turn = await acp_call(acp, 3, "session/prompt", prompt)
                    second = await acp_call(acp, 4, "session/new", {"cwd": str(tmp_path)})
                    await acp_call(acp, 5, "session/close", {"sessionId": second["sessionId"]})
                    # Scraped with the first session still open.
                    scraped = await http.get(f"{served.base}/metrics", headers=full)
                finally:
                    await acp.aclose()
        finally:
            assert await stop(served) == 0
    assert tool_errors == [False, False, True, True]
    assert turn["stopReason"] == "end_turn"
    assert scraped.status_code == 200
    scrape = samples(scraped.text)

    # Three upstream answers reported usage: two chat completions and the ACP turn.
    assert value(scrape, "junction_backend_tokens_total", backend="fake", kind="prompt") == 30
    assert value(scrape, "junction_backend_tokens_total", backend="fake", kind="completion") == 15

    calls = "junction_mcp_tool_calls_total"
    assert value(scrape, calls, server="tools", tool="echo", outcome="ok") == 2
    assert value(scrape, calls, server="tools", tool="echo", outcome="error") == 0
    assert value(scrape, calls, server="tools", tool="rich", outcome="tool_error") == 1
    assert value(scrape, calls, server="tools", tool="die", outcome="error") == 1
    assert not any(
        name == calls and ("tool", "add") in labels for name, labels in scrape
    )  # refused by the gateway: never reached the upstream
    duration = "junction_mcp_tool_call_duration_seconds"
    assert value(scrape, f"{duration}_count", server="tools", tool="echo") == 2
    assert value(scrape, f"{duration}_sum", server="tools", tool="echo") > 0

    assert value(scrape, "junction_acp_sessions_created_total") == 2
    assert value(scrape, "junction_acp_sessions_open") == 1
    assert value(scrape, "junction_acp_turns_total", stop_reason="end_turn") == 1

    assert value(scrape, "junction_a2a_tasks", state=task_state) >= 1


# --------------------------------------------------------------------------- access logs


async def start_with_json_logs(tmp_path: Path, config: str) -> Served:
    """`junction --mode serve` as `start` runs it, but logging JSON lines."""
    path = tmp_path / "junction.yaml"
    path.write_text(config)
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("junction")),
        "--mode",
        "serve",
        "--config",
        str(path),
        "--port",
        "0",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "JUNCTION_LOG_FORMAT": "json"},
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while True:
            line = await process.stderr.readline()
            assert line, "junction exited before listening"
            record = orjson.loads(line)
            found = re.search(r"listening on http://[\d.]+:(\d+)", record["msg"])
            if found:
                port = int(found.group(1))
                served = Served(process, f"http://127.0.0.1:{port}", port)
                served.drain()
                return served


async def test_access_log_records_each_exchange_without_secrets(tmp_path: Path) -> None:
    served = await start_with_json_logs(tmp_path, keys(tmp_path))
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    try:
        async with httpx.AsyncClient() as http:
            base = served.base
            ok = await http.get(
                f"{base}/v1/models?api_key=full-key",
                headers={**bearer("bob-key"), "traceparent": traceparent},
            )
            refused = await http.get(f"{base}/admin/mcp", headers=bearer("wrong-secret-key"))
            metrics = await http.get(f"{base}/metrics", headers=bearer("scrape-key"))
        ws = await connect_websocket(f"ws://127.0.0.1:{served.port}/acp", token="full-key")
        await ws.aclose()
    finally:
        assert await stop(served) == 0
    stderr = (await served.stderr()).encode()
    assert (ok.status_code, refused.status_code, metrics.status_code) == (200, 401, 200)

    records = [orjson.loads(line) for line in stderr.splitlines() if line.strip()]
    access = [r for r in records if r["logger"] == "junction.access"]
    by_path = {r["path"]: r for r in access}
    models = by_path["/v1/models"]  # the query string (and the key in it) is not logged
    assert models["level"] == "info"
    assert (models["method"], models["surface"], models["status"]) == ("GET", "openai", 200)
    assert models["principal"] == "bob"
    assert models["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert models["duration_ms"] >= 0
    assert "GET /v1/models 200" in models["msg"] and "principal=bob" in models["msg"]

    admin = by_path["/admin/mcp"]
    assert (admin["status"], admin["principal"], admin["trace_id"]) == (401, None, None)
    assert (by_path["/metrics"]["status"], by_path["/metrics"]["principal"]) == (200, "prometheus")
    socket = by_path["/acp"]
    full = unnamed_key_name("full-key")
    assert (socket["status"], socket["principal"], socket["surface"]) == (101, full, "acp")

    for secret in (b"full-key", b"bob-key", b"wrong-secret-key", b"scrape-key", b"alice-key"):
        assert secret not in stderr
