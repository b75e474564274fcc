"""Configuration at run time: a running `junction --mode serve` follows its file (and SIGHUP),
and the library's config handle (`replace_config`, `subscribe`, `reload`) does the same in
process. Real peers throughout: fake LLM servers over HTTP, MCP servers over stdio, MCP SDK
clients on `/mcp`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from junction import ConfigError, Junction, JunctionConfig
from junction.config_reference import render
from junction.reload import APPLY, RESTART, ReloadResult, reload_mode
from tests.peers import python_peer
from tests.router_core.llm_servers import Reply, openai_server
from tests.test_serve_mode import Served, start, stop
from tests.transports.servers import serve_app

# --------------------------------------------------------------------------- helpers

GATE_SERVER = """
import os, sys
from pathlib import Path

import anyio
import mcp_types as types
from mcp.server import NotificationOptions, Server
from mcp.server.stdio import stdio_server

SCHEMA = {"type": "object", "properties": {"started": {"type": "string"},
          "release": {"type": "string"}}, "required": ["started", "release"]}


async def list_tools(ctx, params):
    return types.ListToolsResult(tools=[
        types.Tool(name="gate", description="Answer once a file exists.", input_schema=SCHEMA),
        types.Tool(name="pid", description="This process's id.", input_schema={"type": "object"}),
    ])


async def call_tool(ctx, params):
    if params.name == "pid":
        return types.CallToolResult(content=[types.TextContent(text=str(os.getpid()))])
    Path(params.arguments["started"]).touch()
    while not Path(params.arguments["release"]).exists():
        await anyio.sleep(0.02)
    return types.CallToolResult(content=[types.TextContent(text="released")])


async def main():
    server = Server("reload-gate", version="1.0", on_list_tools=list_tools,
                    on_call_tool=call_tool)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options(NotificationOptions()))


anyio.run(main)
"""


def gate_server(tmp_path: Path) -> dict[str, Any]:
    """An MCP server (the `mcp` SDK over stdio) whose `gate` tool answers only once the test
    creates a file: a call that is certainly in flight, without timing anything."""
    script = tmp_path / "gate_server.py"
    script.write_text(GATE_SERVER)
    return {"command": sys.executable, "args": [str(script)]}


def time_server() -> dict[str, Any]:
    """The reference `mcp-server-time` (PyPI), from its own venv."""
    return {"command": str(python_peer("mcp-server-time")), "args": ["-m", "mcp_server_time"]}


class GatedModel:
    """An OpenAI-compatible model server whose streamed answer stops after its first chunk
    until `release` is set: a stream that is certainly in flight."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        doc = {
            "id": "chatcmpl-gated",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(doc) + b"\n\n"

    def app(self) -> Starlette:
        async def models(request: Request) -> JSONResponse:
            return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

        async def chat(request: Request) -> StreamingResponse:
            await request.body()

            async def events() -> AsyncIterator[bytes]:
                yield self.chunk({"role": "assistant", "content": "before "})
                self.started.set()
                await self.release.wait()
                yield self.chunk({"content": "after"})
                yield self.chunk({}, finish="stop")
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        return Starlette(
            routes=[
                Route("/v1/models", models),
                Route("/v1/chat/completions", chat, methods=["POST"]),
            ]
        )


def store_line(tmp_path: Path) -> str:
    return f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n"


def rewrite(tmp_path: Path, config: str) -> None:
    """Replace the served config file the way editors do: write aside, then rename over it."""
    if "store:" not in config:
        config = store_line(tmp_path) + config
    aside = tmp_path / "junction.yaml.new"
    aside.write_text(config)
    os.replace(aside, tmp_path / "junction.yaml")


async def wait_log(served: Served, pattern: str, seen: list[str] | None = None) -> str:
    """The next stderr line matching `pattern` (the lines read on the way go into `seen`)."""
    async with asyncio.timeout(30):
        while True:
            line = await served.next_line()
            assert line, "junction exited"
            if seen is not None:
                seen.append(line)
            if re.search(pattern, line):
                return line


async def model_ids(http: httpx.AsyncClient, base: str) -> set[str]:
    return {model["id"] for model in (await http.get(f"{base}/v1/models")).json()["data"]}


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}]}


@asynccontextmanager
async def mcp_client(url: str, changes: list[str]) -> AsyncIterator[Client]:
    """An MCP SDK client on `url` that notes each `tools/list_changed` it is sent."""

    async def on_message(message: Any) -> None:
        if getattr(message, "method", "") == "notifications/tools/list_changed":
            changes.append("tools")

    async with Client(streamable_http_client(url), mode="legacy", message_handler=on_message) as c:
        yield c


async def tools_until(client: Client, check: Callable[[set[str]], bool]) -> set[str]:
    with anyio.fail_after(30):
        while True:
            names = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
            if check(names):
                return names
            await anyio.sleep(0.05)


def text(result: Any) -> str:
    return str(result.content[0].text)


# --------------------------------------------------------------------------- serve mode: the file


async def test_editing_the_file_adds_and_removes_backends(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as first, openai_server(models=["m2"]) as second:
        first.default, second.default = Reply(text="from first"), Reply(text="from second")
        one = f"  first: {{type: openai, url: '{first.url}/v1', models: [m1]}}\n"
        two = f"  second: {{type: openai, url: '{second.url}/v1', models: [m2]}}\n"
        served = await start(tmp_path, "backends:\n" + one)
        try:
            async with httpx.AsyncClient() as http:
                assert await model_ids(http, served.base) == {"m1"}

                rewrite(tmp_path, "backends:\n" + one + two)
                await wait_log(served, r"configuration changed: backends\.second$")
                assert await model_ids(http, served.base) == {"m1", "m2"}
                answer = await http.post(f"{served.base}/v1/chat/completions", json=chat("m2"))
                assert answer.headers["x-junction-backend"] == "second"
                assert answer.json()["choices"][0]["message"]["content"] == "from second"

                rewrite(tmp_path, "backends:\n" + two)
                await wait_log(served, r"configuration changed: backends\.first$")
                assert await model_ids(http, served.base) == {"m2"}
                gone = await http.post(f"{served.base}/v1/chat/completions", json=chat("m1"))
                assert gone.status_code == 404
        finally:
            assert await stop(served) == 0


async def test_invalid_file_is_rejected_and_the_old_config_keeps_serving(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        backend = f"backends:\n  only: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
        served = await start(tmp_path, backend)
        try:
            async with httpx.AsyncClient() as http:
                rewrite(tmp_path, backend + "routing: {strategy: [unclosed\n")
                await wait_log(served, r"configuration not reloaded \(config file changed\)")
                reason = await wait_log(served, r"junction\.yaml")
                assert "invalid YAML" in reason
                assert await model_ids(http, served.base) == {"m1"}

                rewrite(tmp_path, backend + "routing: {stratgy: round_robin}\n")
                await wait_log(served, r"configuration not reloaded")
                reason = await wait_log(served, r"junction\.yaml")
                assert "routing.stratgy: unknown key" in reason
                answer = await http.post(f"{served.base}/v1/chat/completions", json=chat("m1"))
                assert answer.status_code == 200

                # A later valid file applies; what needs a restart is said, the rest applied.
                moved = f"store: {{url: 'sqlite:///{tmp_path}/elsewhere.db'}}\n"
                rewrite(tmp_path, moved + backend + "routing: {strategy: round_robin}\n")
                seen: list[str] = []
                await wait_log(served, r"store\.url needs a restart", seen)
                assert any("configuration changed: routing.strategy" in line for line in seen)
                assert "still running with the old value" in seen[-1]
        finally:
            assert await stop(served) == 0
    assert not (tmp_path / "elsewhere.db").exists()


async def test_sighup_reloads_when_the_watch_is_off(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        backend = f"  only: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
        served = await start(tmp_path, "server: {watch_config: false}\nbackends:\n" + backend)
        try:
            rewrite(tmp_path, "server: {watch_config: false}\n")
            served.process.send_signal(signal.SIGHUP)
            await wait_log(served, r"configuration changed: backends\.only$")
            async with httpx.AsyncClient() as http:
                assert await model_ids(http, served.base) == set()
        finally:
            assert await stop(served) == 0  # SIGHUP did not end it


async def test_a_stream_in_flight_completes_when_its_backend_is_removed(tmp_path: Path) -> None:
    gated = GatedModel("slow")
    async with serve_app(gated.app()) as url, openai_server(models=["m1"]) as other:
        kept = f"  other: {{type: openai, url: '{other.url}/v1', models: [m1]}}\n"
        served = await start(
            tmp_path,
            f"backends:\n  gated: {{type: openai, url: '{url}/v1', models: [slow]}}\n" + kept,
        )
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                body = {**chat("slow"), "stream": True}
                url_ = f"{served.base}/v1/chat/completions"
                async with http.stream("POST", url_, json=body) as stream:
                    assert stream.headers["x-junction-backend"] == "gated"
                    lines = stream.aiter_lines()
                    received = ""
                    while "before" not in received:
                        received += await anext(lines)
                    await gated.started.wait()

                    rewrite(tmp_path, "backends:\n" + kept)
                    await wait_log(served, r"configuration changed: backends\.gated$")
                    assert await model_ids(http, served.base) == {"m1"}  # it is gone

                    gated.release.set()
                    rest = [line async for line in lines]
            assert any('"after"' in line for line in rest)
            assert "data: [DONE]" in rest
        finally:
            assert await stop(served) == 0


async def test_mcp_servers_added_and_removed_reach_connected_clients(tmp_path: Path) -> None:
    servers = {"time": time_server(), "gate": gate_server(tmp_path)}
    listed = "".join(
        f"  {name}: {orjson.dumps(entry).decode()}\n" for name, entry in servers.items()
    )
    served = await start(tmp_path, "")
    changes: list[str] = []
    try:
        async with mcp_client(f"{served.base}/mcp", changes) as client:
            assert not await tools_until(client, lambda names: True)

            rewrite(tmp_path, "mcp_servers:\n" + listed)
            names = await tools_until(
                client, lambda n: {"time__get_current_time", "gate__pid"} <= n
            )
            assert changes, "the client was told, not left to poll"
            assert "time__convert_time" in names
            now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
            assert not now.is_error and "UTC" in text(now)
            pid = int(text(await client.call_tool("gate__pid", {})))

            told = len(changes)
            rewrite(tmp_path, "mcp_servers: {}\n")
            assert await tools_until(client, lambda n: not n) == set()
            assert len(changes) > told
        with anyio.fail_after(30):  # the removed server's child process ends
            while _alive(pid):  # noqa: ASYNC110 (another process: no event to wait on)
                await anyio.sleep(0.05)
    finally:
        assert await stop(served) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- the library's handle


def base_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    return {"store": {"url": f"sqlite:///{tmp_path}/junction.db"}, **sections}


async def test_replace_config_reports_applies_and_tells_subscribers(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as first, openai_server(models=["m2"]) as second:
        second.default = Reply(text="from second")
        backends = {"first": {"type": "openai", "url": f"{first.url}/v1", "models": ["m1"]}}
        junction = Junction.from_config(base_config(tmp_path, backends=backends))
        heard: list[tuple[JunctionConfig, JunctionConfig]] = []
        async_heard: list[str] = []

        async def follow(old: JunctionConfig, new: JunctionConfig) -> None:
            async_heard.append(new.routing.strategy)

        unsubscribe = junction.subscribe(lambda old, new: heard.append((old, new)))
        junction.subscribe(follow)
        async with junction, serve_app(junction.asgi_app()) as base:
            before = junction.config
            more = {
                **backends,
                "second": {"type": "openai", "url": f"{second.url}/v1", "models": ["m2"]},
            }
            moved = {"url": f"sqlite:///{tmp_path}/elsewhere.db"}
            result = await junction.replace_config(
                base_config(tmp_path, backends=more, routing={"strategy": "round_robin"})
                | {"store": moved}
            )
            assert result == ReloadResult(
                applied=("backends.second", "routing.strategy"), needs_restart=("store.url",)
            )
            assert result.changed
            assert junction.config.store.url == before.store.url  # kept until a restart
            assert junction.config.routing.strategy == "round_robin"
            assert heard == [(before, junction.config)]
            assert async_heard == ["round_robin"]
            async with httpx.AsyncClient() as http:
                assert await model_ids(http, base) == {"m1", "m2"}
                answer = await http.post(f"{base}/v1/chat/completions", json=chat("m2"))
                assert answer.json()["choices"][0]["message"]["content"] == "from second"

            unsubscribe()
            same = await junction.replace_config(junction.config)
            assert same == ReloadResult() and not same.changed
            await junction.replace_config(base_config(tmp_path, backends=backends))
            assert len(heard) == 1 and len(async_heard) == 2
            assert [row["name"] for row in junction.router.snapshot()] == ["first"]


async def test_invalid_replacement_applies_nothing(tmp_path: Path) -> None:
    junction = Junction.from_config(base_config(tmp_path))
    heard: list[object] = []
    junction.subscribe(lambda old, new: heard.append(new))
    before = junction.config
    with pytest.raises(ConfigError, match=r"routing\.strategy"):
        await junction.replace_config(base_config(tmp_path, routing={"strategy": "fastest"}))
    with pytest.raises(ConfigError, match=r"backends\.x\.url: not a valid URL"):
        await junction.replace_config(
            base_config(tmp_path, backends={"x": {"type": "openai", "url": "ftp://x"}})
        )
    assert junction.config is before and heard == []


async def test_a_kept_listen_address_must_agree_with_the_new_keys(tmp_path: Path) -> None:
    junction = Junction.from_config(
        base_config(tmp_path, server={"host": "0.0.0.0", "api_keys": ["old-key"]})
    )
    with pytest.raises(ConfigError, match=r"server\.api_keys: required") as raised:
        await junction.replace_config(base_config(tmp_path, server={"host": "127.0.0.1"}))
    assert "server.host kept at the running value" in str(raised.value)
    assert junction.config.server.api_keys == ["old-key"]


async def test_rotating_an_api_key_needs_no_restart(tmp_path: Path) -> None:
    junction = Junction.from_config(base_config(tmp_path, server={"api_keys": ["old-key"]}))
    async with junction, serve_app(junction.asgi_app()) as base:
        async with httpx.AsyncClient(base_url=base) as http:

            async def status(key: str) -> int:
                headers = {"Authorization": f"Bearer {key}"}
                return (await http.get("/v1/models", headers=headers)).status_code

            assert (await status("old-key"), await status("new-key")) == (200, 401)
            result = await junction.replace_config(
                base_config(tmp_path, server={"api_keys": ["new-key"]})
            )
            assert result.applied == ("server.api_keys",)
            assert (await status("old-key"), await status("new-key")) == (401, 200)
            mcp = await http.post(
                "/mcp",
                headers={"Authorization": "Bearer new-key", "Accept": "application/json"},
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            )
            assert mcp.status_code != 401  # the /mcp surface follows the same keys


async def test_an_mcp_call_in_flight_completes_when_its_server_is_removed(tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    junction = Junction.from_config(
        base_config(tmp_path, mcp_servers={"gate": gate_server(tmp_path)})
    )
    changes: list[str] = []
    async with junction, serve_app(junction.asgi_app()) as base:
        async with mcp_client(f"{base}/mcp", changes) as client:
            await tools_until(client, lambda n: "gate__gate" in n)
            pid = int(text(await client.call_tool("gate__pid", {})))
            call = asyncio.ensure_future(
                client.call_tool("gate__gate", {"started": str(started), "release": str(release)})
            )
            with anyio.fail_after(30):
                while not started.exists():  # noqa: ASYNC110 (the gate server's file)
                    await anyio.sleep(0.02)

            result = await junction.replace_config(base_config(tmp_path))
            assert result.applied == ("mcp_servers.gate",)
            await tools_until(client, lambda n: "gate__gate" not in n)
            assert changes and _alive(pid)  # out of the catalog, still finishing its call

            release.touch()
            assert text(await call) == "released"
            with anyio.fail_after(30):
                while _alive(pid):  # noqa: ASYNC110 (another process: no event to wait on)
                    await anyio.sleep(0.05)
            assert junction.mcp_servers() == []


async def test_acp_settings_swap_for_new_turns(tmp_path: Path) -> None:
    junction = Junction.from_config(base_config(tmp_path, acp={"default_model": "m1"}))
    old_settings = junction.runtime.settings
    policy = {"rules": [["mcp:*", "allow"]], "kinds": {"execute": "deny"}}
    result = await junction.replace_config(
        base_config(tmp_path, acp={"default_model": "m2", "permissions": policy})
    )
    assert result.applied == ("acp.default_model", "acp.permissions")
    assert junction.runtime.settings is not old_settings
    assert junction.runtime.settings.default_model == "m2"
    assert junction.runtime.settings.permissions.base("mcp:x", "execute") == "allow"
    assert junction.runtime.settings.permissions.base("other", "execute") == "deny"


async def test_reload_reads_the_file_again(tmp_path: Path) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text(store_line(tmp_path) + "routing: {strategy: random}\n")
    junction = Junction.from_config_file(path)
    path.write_text(store_line(tmp_path) + "routing: {strategy: round_robin}\n")
    assert (await junction.reload()).applied == ("routing.strategy",)
    assert junction.router.settings.strategy == "round_robin"
    path.write_text("routing: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        await junction.reload()
    assert junction.config.routing.strategy == "round_robin"
    with pytest.raises(RuntimeError, match="replace_config"):
        await Junction.from_config(base_config(tmp_path)).reload()


# --------------------------------------------------------------------------- the table


def test_every_key_in_the_reload_table_is_a_configuration_key() -> None:
    documented = set(re.findall(r"^\| `([^`]+)` \|", render(), re.MULTILINE))
    for key in (*RESTART, *APPLY):
        assert key in documented, f"{key} is in junction.reload's table but is no config key"
    assert reload_mode("backends.NAME.url") == "hot"
    assert reload_mode("routing.max_body_bytes") == "restart"
    assert reload_mode("a2a.self_agent.model") == "restart"
    with pytest.raises(KeyError):
        reload_mode("no_such_section")


def test_the_root_has_a_step_for_every_hot_key() -> None:
    from junction.root import _STEPS, Junction

    assert tuple(_STEPS) == APPLY
    assert all(callable(getattr(Junction, step)) for step in _STEPS.values())


async def test_a2a_agents_added_changed_and_removed_take_their_mcp_tools_along(
    tmp_path: Path,
) -> None:
    from tests.a2a.harness import sdk_agent

    with (
        sdk_agent("helper", "1.0") as helper,
        sdk_agent("skilled", "1.0", ("summarize:text",)) as skilled,
    ):
        first = base_config(tmp_path, a2a_agents={"helper": {"url": helper}})
        junction = Junction.from_config(first)
        changes: list[str] = []
        async with junction, serve_app(junction.asgi_app()) as base:
            async with mcp_client(f"{base}/mcp", changes) as client, httpx.AsyncClient() as http:
                await tools_until(client, lambda n: "a2a__helper" in n)

                agents = {
                    "helper": {"url": helper, "mcp_tool": "off"},
                    "skilled": {"url": skilled, "mcp_tool": "skills"},
                }
                result = await junction.replace_config(base_config(tmp_path, a2a_agents=agents))
                assert result.applied == ("a2a_agents.helper", "a2a_agents.skilled")
                names = await tools_until(
                    client, lambda n: "a2a__skilled__summarize" in n and "a2a__helper" not in n
                )
                assert {n for n in names if n.startswith("a2a__")} == {"a2a__skilled__summarize"}
                card = await http.get(f"{base}/a2a/agents/skilled/.well-known/agent-card.json")
                assert card.status_code == 200
                # ACP sessions' agent tools follow too (they read the config in force).
                directory = (await junction.runtime.services()).agents
                assert directory is not None
                assert {a.name for a in await directory.list_agents()} == {"helper", "skilled"}

                result = await junction.replace_config(first)
                assert result.applied == ("a2a_agents.helper", "a2a_agents.skilled")
                await tools_until(
                    client, lambda n: "a2a__helper" in n and "a2a__skilled__summarize" not in n
                )
                card = await http.get(f"{base}/a2a/agents/skilled/.well-known/agent-card.json")
                assert card.status_code == 404
                assert {a.name for a in await directory.list_agents()} == {"helper"}
                echo = await client.call_tool("a2a__helper", {"message": "echo back"})
                assert "echo: back" in text(echo)
            assert changes


async def test_a_changed_mcp_server_is_restarted(tmp_path: Path) -> None:
    gate = gate_server(tmp_path)
    junction = Junction.from_config(base_config(tmp_path, mcp_servers={"gate": gate}))
    changes: list[str] = []
    async with junction, serve_app(junction.asgi_app()) as base:
        async with mcp_client(f"{base}/mcp", changes) as client:
            await tools_until(client, lambda n: "gate__pid" in n)
            before = int(text(await client.call_tool("gate__pid", {})))
            changed = {**gate, "tools": {"deny": ["gate"]}}
            result = await junction.replace_config(
                base_config(tmp_path, mcp_servers={"gate": changed})
            )
            assert result.applied == ("mcp_servers.gate",)
            await tools_until(client, lambda n: n == {"gate__pid"})
            after = int(text(await client.call_tool("gate__pid", {})))
            assert after != before
            with anyio.fail_after(30):
                while _alive(before):  # noqa: ASYNC110 (another process: no event to wait on)
                    await anyio.sleep(0.05)


async def test_a_changed_mcp_server_that_cannot_start_leaves_the_old_one_serving(
    tmp_path: Path,
) -> None:
    gate = gate_server(tmp_path)
    junction = Junction.from_config(base_config(tmp_path, mcp_servers={"gate": gate}))
    async with junction, serve_app(junction.asgi_app()) as base:
        async with mcp_client(f"{base}/mcp", []) as client:
            await tools_until(client, lambda n: "gate__pid" in n)
            before = int(text(await client.call_tool("gate__pid", {})))
            broken = {**gate, "command": str(tmp_path / "no-such-program")}
            await junction.replace_config(base_config(tmp_path, mcp_servers={"gate": broken}))
            await asyncio.sleep(1.5)  # its first attempt has failed by now
            assert int(text(await client.call_tool("gate__pid", {}))) == before
            await junction.replace_config(base_config(tmp_path, mcp_servers={"gate": gate}))
            assert int(text(await client.call_tool("gate__pid", {}))) > 0


async def test_the_log_level_follows_the_file(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        backend = f"backends:\n  only: {{type: openai, url: '{model.url}/v1', models: [m1]}}\n"
        served = await start(tmp_path, backend)
        try:
            # At warning, the reload's info line is not written; its restart warning is.
            moved = f"store: {{url: 'sqlite:///{tmp_path}/elsewhere.db'}}\n"
            rewrite(tmp_path, moved + "logging: {level: warning}\n")
            seen: list[str] = []
            await wait_log(served, r"store\.url needs a restart", seen)
            assert not any("configuration changed" in line for line in seen)
            rewrite(tmp_path, backend)
            await wait_log(served, r"configuration changed: backends\.only, logging\.level$")
        finally:
            assert await stop(served) == 0
