"""Spans across Junction's other surfaces, exported to a real OTLP receiver: an MCP tools/call
through `/mcp`, an A2A SendMessage relayed to a registered agent, and an ACP prompt turn from
`junction --mode stdio`. Each hangs under the caller's span, and the upstream is told a span
of this trace (one of Junction's, or the `mcp` SDK's under it) is its parent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
from aiohttp import web

from tests.otlp_receiver import Receiver, Span, http_receiver
from tests.router_core.llm_servers import Reply, openai_server
from tests.test_serve_mode import start, stop
from tests.test_telemetry import OTEL_VARIABLES, PARENT_ID, TRACE_ID, TRACEPARENT, parent_in
from tests.test_tracing import JUNCTION, Stdio, mcp_client, meta_server, text


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")


def ancestry(receiver: Receiver, span_id: str) -> list[Span]:
    """The span with this id and its ancestors that were received, innermost first."""
    by_id = {span.span_id: span for span in receiver.spans}
    chain: list[Span] = []
    while span_id in by_id:
        span = by_id[span_id]
        chain.append(span)
        span_id = span.parent_id
    return chain


# --------------------------------------------------------------------------- MCP


async def test_mcp_tool_call_spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = meta_server(tmp_path)
    async with http_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        served = await start(
            tmp_path, f"mcp_servers:\n  echo: {{command: {sys.executable}, args: ['{script}']}}\n"
        )
        try:
            async with mcp_client(
                f"{served.base}/mcp", {"traceparent": TRACEPARENT}, "legacy"
            ) as c:
                meta = orjson.loads(text(await c.call_tool("echo__meta", {})))
        finally:
            assert await stop(served) == 0
        await receiver.wait_for(
            lambda spans: bool([s for s in spans if s.name == "tools/call meta"])
        )
    trace_id, parent_id = parent_in(meta.get("traceparent"))
    assert trace_id == TRACE_ID
    chain = ancestry(receiver, parent_id)
    names = [span.name for span in chain]
    # The upstream's parent is in our trace, under Junction's tool-call span, under the HTTP
    # request's server span, under the caller's span.
    assert "tools/call meta" in names, names
    call = chain[names.index("tools/call meta")]
    assert call.kind == "client"
    assert call.attributes["mcp.method.name"] == "tools/call"
    assert call.attributes["gen_ai.operation.name"] == "execute_tool"
    assert call.attributes["gen_ai.tool.name"] == "meta"
    assert call.attributes["junction.mcp_server"] == "echo"
    root = chain[-1]
    assert (root.kind, root.attributes["url.path"]) == ("server", "/mcp")
    assert (root.trace_id, root.parent_id) == (TRACE_ID, PARENT_ID)
    assert all(span.trace_id == TRACE_ID for span in chain)


# --------------------------------------------------------------------------- A2A


@asynccontextmanager
async def echo_agent() -> AsyncIterator[tuple[str, list[str]]]:
    """A minimal A2A 1.0 JSON-RPC agent (no streaming) that answers SendMessage with a
    message, and keeps the `traceparent` of each request it got."""
    seen: list[str] = []

    async def card(request: web.Request) -> web.Response:
        base = f"http://{request.host}/"
        return web.json_response(
            {
                "name": "echo",
                "description": "answers with ok",
                "version": "1.0.0",
                "supportedInterfaces": [
                    {"url": base, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
                ],
                "capabilities": {"streaming": False, "pushNotifications": False},
                "defaultInputModes": ["text/plain"],
                "defaultOutputModes": ["text/plain"],
                "skills": [{"id": "echo", "name": "Echo", "description": "ok", "tags": ["echo"]}],
            }
        )

    async def rpc(request: web.Request) -> web.Response:
        seen.append(request.headers.get("traceparent", ""))
        message = await request.json()
        result = {"message": {"messageId": "m-1", "role": "ROLE_AGENT", "parts": [{"text": "ok"}]}}
        return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": result})

    app = web.Application()
    app.router.add_get("/.well-known/agent-card.json", card)
    app.router.add_post("/", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_a2a_send_message_spans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with http_receiver() as receiver, echo_agent() as (agent_url, seen):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        served = await start(tmp_path, f"a2a_agents:\n  echo: {{url: '{agent_url}'}}\n")
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                request = {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "SendMessage",
                    "params": {
                        "message": {
                            "messageId": "u-1",
                            "role": "ROLE_USER",
                            "parts": [{"text": "hi"}],
                        }
                    },
                }
                headers = {"A2A-Version": "1.0", "traceparent": TRACEPARENT}
                for _ in range(100):  # until the agent's card is fetched
                    reply = await http.post(
                        f"{served.base}/a2a/agents/echo", json=request, headers=headers
                    )
                    if "result" in reply.json():
                        break
                    await asyncio.sleep(0.1)
        finally:
            assert await stop(served) == 0
        await receiver.wait_for(
            lambda spans: bool([s for s in spans if s.name == "invoke_agent echo"])
        )
    assert reply.json()["result"]["message"]["parts"] == [{"text": "ok"}], reply.text
    relay = receiver.named("invoke_agent echo")[-1]
    assert relay.kind == "client"
    assert relay.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert relay.attributes["gen_ai.agent.name"] == "echo"
    assert relay.attributes["server.address"] == "127.0.0.1"
    # The agent was told our relay span is its parent.
    assert parent_in(seen[-1]) == (TRACE_ID, relay.span_id)
    server = ancestry(receiver, relay.parent_id)[0]
    assert (server.kind, server.attributes["url.path"]) == ("server", "/a2a/agents/echo")
    assert (server.trace_id, server.parent_id) == (TRACE_ID, PARENT_ID)


# --------------------------------------------------------------------------- ACP


async def test_acp_turn_span_from_stdio_mode(tmp_path: Path) -> None:
    async with http_receiver() as receiver, openai_server(models=["m1"]) as model:
        model.default = Reply(text="traced turn", usage=(3, 2))
        config = tmp_path / "junction.yaml"
        config.write_text(
            f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n"
            f"backends:\n  fake: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
            "acp: {default_model: m1}\n"
        )
        env = {k: v for k, v in os.environ.items() if k not in OTEL_VARIABLES}
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
            env={**env, "JUNCTION_CONFIG": "", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            ide = Stdio(process)  # every stdout line is parsed as JSON-RPC
            await ide.call("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
            session = await ide.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            answer = await ide.call(
                "session/prompt",
                {
                    "sessionId": session["sessionId"],
                    "prompt": [{"type": "text", "text": "hello"}],
                    "_meta": {"traceparent": TRACEPARENT},
                },
            )
        finally:
            process.stdin.close()
            rest = await asyncio.wait_for(process.stdout.read(), 30)
            assert await asyncio.wait_for(process.wait(), 30) == 0  # flushed on the way out
        await receiver.wait_for(lambda spans: bool([s for s in spans if s.name == "chat m1"]))
    assert answer["stopReason"] == "end_turn"
    for line in rest.splitlines():  # nothing but protocol messages on stdout
        assert orjson.loads(line)["jsonrpc"] == "2.0"
    turn = receiver.named("invoke_agent junction")[-1]
    assert (turn.kind, turn.trace_id, turn.parent_id) == ("server", TRACE_ID, PARENT_ID)
    assert turn.attributes["gen_ai.conversation.id"] == session["sessionId"]
    assert turn.attributes["gen_ai.response.finish_reasons"] == ["end_turn"]
    call = receiver.named("chat m1")[-1]
    assert call.parent_id == turn.span_id
    assert call.attributes["gen_ai.usage.input_tokens"] == 3
    assert call.attributes["gen_ai.usage.output_tokens"] == 2
    assert parent_in(model.chat_requests[-1].headers.get("traceparent")) == (
        TRACE_ID,
        call.span_id,
    )
