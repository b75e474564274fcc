"""W3C trace context: accepted where a request enters a real Junction process (HTTP headers, MCP
and ACP `_meta`) and carried to the real upstreams it calls (a model server, an MCP server)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway import Gateway, GatewayOptions, StdioUpstream
from mcp_gateway._sdk import create_mcp_http_client
from tests.mcp_gateway.conftest import hosted
from tests.router_core.llm_servers import Reply, openai_server
from tests.test_serve_mode import start, stop

JUNCTION = str(Path(sys.executable).with_name("junction"))

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
MALFORMED = (
    "00-xyz-00f067aa0ba902b7-01",
    f"00-{'0' * 32}-{PARENT_ID}-01",
    f"ff-{TRACE_ID}-{PARENT_ID}-01",
)

META_SERVER = '''
"""An MCP server (official SDK, stdio) whose tool, resource and prompt answer with the `_meta`
of the request that reached them."""
import json

import anyio
import mcp_types as types
from mcp.server import NotificationOptions, Server
from mcp.server.stdio import stdio_server


def meta(ctx):
    return json.dumps(dict(ctx.meta or {}), default=str)


async def list_tools(ctx, params):
    schema = {"type": "object", "properties": {}}
    return types.ListToolsResult(tools=[types.Tool(name="meta", input_schema=schema)])


async def call_tool(ctx, params):
    return types.CallToolResult(content=[types.TextContent(text=meta(ctx))])


async def list_resources(ctx, params):
    return types.ListResourcesResult(resources=[types.Resource(uri="meta://echo", name="echo")])


async def read_resource(ctx, params):
    text = meta(ctx)
    return types.ReadResourceResult(
        contents=[types.TextResourceContents(uri=str(params.uri), text=text)]
    )


async def list_prompts(ctx, params):
    return types.ListPromptsResult(prompts=[types.Prompt(name="meta")])


async def get_prompt(ctx, params):
    content = types.TextContent(text=meta(ctx))
    return types.GetPromptResult(messages=[types.PromptMessage(role="user", content=content)])


async def main():
    server = Server(
        "meta-echo",
        version="1.0",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
    )
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options(NotificationOptions()))


anyio.run(main)
'''


def meta_server(tmp_path: Path) -> Path:
    script = tmp_path / "meta_server.py"
    script.write_text(META_SERVER)
    return script


def parent_of(traceparent: str | None) -> tuple[str, str, str]:
    """(trace id, parent id, flags) of a traceparent value."""
    assert traceparent is not None
    version, trace_id, parent_id, flags = traceparent.split("-")
    assert version == "00"
    return trace_id, parent_id, flags


def assert_continues(traceparent: str | None) -> None:
    """The upstream got our trace, as a child of a span of Junction's (not of the caller's)."""
    trace_id, parent_id, flags = parent_of(traceparent)
    assert (trace_id, flags) == (TRACE_ID, "01")
    assert parent_id != PARENT_ID and len(parent_id) == 16 and int(parent_id, 16) != 0


def text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


# --------------------------------------------------------------------------- OpenAI surface


async def test_chat_completions_carry_the_trace_to_the_model_server(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        model.default = Reply(text="traced")
        served = await start(
            tmp_path, f"backends:\n  fake: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
        )
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                url = f"{served.base}/v1/chat/completions"
                body: dict[str, Any] = {
                    "model": "m1",
                    "messages": [{"role": "user", "content": "hi"}],
                }
                traced = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE}
                plain = await http.post(url, json=body, headers=traced)
                streamed = await http.post(url, json={**body, "stream": True}, headers=traced)
                untraced = await http.post(url, json=body)
                malformed = [
                    await http.post(url, json=body, headers={"traceparent": bad})
                    for bad in MALFORMED
                ]
        finally:
            assert await stop(served) == 0
        chats = model.chat_requests
    assert plain.status_code == streamed.status_code == untraced.status_code == 200
    assert b"[DONE]" in streamed.content
    assert all(reply.status_code == 200 for reply in malformed)
    assert len(chats) == 3 + len(MALFORMED)
    for request in chats[:2]:
        assert_continues(request.headers.get("traceparent"))
        assert request.headers.get("tracestate") == TRACESTATE
    # Each request is its own span of Junction's.
    assert chats[0].headers["traceparent"] != chats[1].headers["traceparent"]
    for request in chats[2:]:
        assert "traceparent" not in request.headers
        assert "tracestate" not in request.headers


# --------------------------------------------------------------------------- MCP


@asynccontextmanager
async def mcp_client(url: str, headers: dict[str, str], mode: str) -> AsyncIterator[Client]:
    async with (
        create_mcp_http_client(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        yield client


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_mcp_calls_carry_the_trace_to_the_upstream(tmp_path: Path, mode: str) -> None:
    script = meta_server(tmp_path)
    served = await start(
        tmp_path, f"mcp_servers:\n  echo: {{command: {sys.executable}, args: ['{script}']}}\n"
    )
    try:
        url = f"{served.base}/mcp"
        # The context in the request's `_meta`, as MCP carries it (SEP-414).
        async with mcp_client(url, {}, mode) as client:
            in_meta = orjson.loads(
                text(await client.call_tool("echo__meta", {}, meta={"traceparent": TRACEPARENT}))
            )
            untraced = orjson.loads(text(await client.call_tool("echo__meta", {})))
            malformed = orjson.loads(
                text(await client.call_tool("echo__meta", {}, meta={"traceparent": MALFORMED[0]}))
            )
        # The context in the HTTP request's headers, as on every HTTP surface.
        async with mcp_client(url, {"traceparent": TRACEPARENT}, mode) as client:
            in_header = orjson.loads(text(await client.call_tool("echo__meta", {})))
    finally:
        assert await stop(served) == 0
    trace_id, _, flags = parent_of(in_meta.get("traceparent"))
    assert (trace_id, flags) == (TRACE_ID, "01")
    assert_continues(in_header.get("traceparent"))
    assert "traceparent" not in untraced
    assert "traceparent" not in malformed


async def test_gateway_puts_the_active_trace_on_resource_reads_and_prompts(
    tmp_path: Path,
) -> None:
    """Resources and prompts go upstream the same way (here straight through the gateway,
    with the context made current as the ASGI middleware does)."""
    from router_core import tracing

    upstream = StdioUpstream(
        name="echo", command=sys.executable, args=(str(meta_server(tmp_path)),)
    )
    async with hosted(Gateway([upstream], GatewayOptions())) as gateway:
        trace = tracing.parse(TRACEPARENT, TRACESTATE)
        with tracing.active(trace):
            read = await gateway.read_resource("meta://echo")
            prompt = await gateway.get_prompt("echo__meta")
            called = await gateway.call_tool("echo__meta", {})
        untraced = await gateway.read_resource("meta://echo")
    assert trace is not None
    for got in (
        read["contents"][0]["text"],
        prompt["messages"][0]["content"]["text"],
        called["content"][0]["text"],
    ):
        meta = orjson.loads(got)
        assert meta["traceparent"] == trace.traceparent
        assert meta["tracestate"] == TRACESTATE
        assert_continues(meta["traceparent"])
    assert "traceparent" not in orjson.loads(untraced["contents"][0]["text"])


# --------------------------------------------------------------------------- ACP


class Stdio:
    """`junction --mode stdio` as an IDE runs it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.stdout = process.stdout
        self._next = 0

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        self._next += 1
        request_id = self._next
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        self.stdin.write(orjson.dumps(message) + b"\n")
        await self.stdin.drain()
        while True:  # skip session/update notifications
            line = await asyncio.wait_for(self.stdout.readline(), 30)
            assert line, "junction closed stdout"
            reply = orjson.loads(line)
            if reply.get("id") == request_id and "method" not in reply:
                assert "error" not in reply, reply
                return reply["result"]


async def test_acp_prompt_meta_carries_the_trace_to_the_model_server(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        model.default = Reply(text="traced turn")
        config = tmp_path / "junction.yaml"
        config.write_text(
            f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n"
            f"backends:\n  fake: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
            "acp: {default_model: m1}\n"
        )
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
            env={**os.environ, "JUNCTION_CONFIG": ""},
        )
        try:
            ide = Stdio(process)
            await ide.call("initialize", {"protocolVersion": 1, "clientCapabilities": {}})
            session = await ide.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            sid = session["sessionId"]
            prompt = [{"type": "text", "text": "hello"}]
            traced = await ide.call(
                "session/prompt",
                {
                    "sessionId": sid,
                    "prompt": prompt,
                    "_meta": {"traceparent": TRACEPARENT, "tracestate": TRACESTATE},
                },
            )
            untraced = await ide.call("session/prompt", {"sessionId": sid, "prompt": prompt})
            malformed = await ide.call(
                "session/prompt",
                {"sessionId": sid, "prompt": prompt, "_meta": {"traceparent": MALFORMED[1]}},
            )
        finally:
            process.stdin.close()  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        chats = model.chat_requests
    assert traced["stopReason"] == untraced["stopReason"] == malformed["stopReason"] == "end_turn"
    assert len(chats) == 3
    assert_continues(chats[0].headers.get("traceparent"))
    assert chats[0].headers.get("tracestate") == TRACESTATE
    assert "traceparent" not in chats[1].headers
    assert "traceparent" not in chats[2].headers
