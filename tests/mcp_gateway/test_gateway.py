"""The gateway as a library, over real wire: real peers and SDK-written fault servers.

One module-scoped gateway serves most tests (its upstreams start concurrently once); tests that
kill or grow an upstream get a small gateway of their own.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import pytest_asyncio

from mcp_gateway import Gateway, GatewayError, GatewayOptions, ToolFilter, UpstreamState
from tests.mcp_gateway.conftest import (
    SERVERS,
    NodeHttpServer,
    everything,
    fault,
    filesystem,
    hosted,
    time_server,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

VALID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MIB = 1024 * 1024


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    root = tmp_path_factory.mktemp("fs")
    (root / "hello.txt").write_text("hello from the filesystem server")
    specs = [
        everything(),
        time_server(),
        filesystem(root),
        fault("ok", "ok"),
        fault("garbage", "garbage"),
        fault("exit", "exit"),
        fault("hang", "hang", connect_timeout=1.5),
        fault("invalid", "invalid"),
        fault("duplicate", "duplicate"),
        fault("picky", "ok", tools=ToolFilter(allow=("echo", "add", "big*"), deny=("big",))),
    ]
    options = GatewayOptions(deny=("fs/write_file", "*move_file"))
    async with hosted(Gateway(specs, options)) as gw:
        await gw.wait_settled(60)  # each upstream's connect timeout bounds its first attempt
        assert all(u.first_attempt_done.is_set() for u in gw.upstreams()), "not settled"
        yield gw


def status(gateway: Gateway, name: str) -> Any:
    return next(s for s in gateway.statuses() if s.name == name)


def text(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result["content"])


# --------------------------------------------------------------------------- start-up and state


async def test_every_upstream_reports_its_state(gateway: Gateway) -> None:
    for name in ("everything", "time", "fs", "ok", "garbage", "invalid", "duplicate", "picky"):
        assert status(gateway, name).state == UpstreamState.READY, status(gateway, name)
    assert status(gateway, "time").protocol_version == "2026-07-28"
    assert status(gateway, "everything").protocol_version == "2025-11-25"
    exited = status(gateway, "exit")
    assert exited.state != UpstreamState.READY
    assert "status 3" in exited.reason and "refuses to start" in exited.reason
    hung = status(gateway, "hang")
    assert hung.state != UpstreamState.READY
    assert "timed out after 1.5s connecting" in hung.reason
    assert not gateway.healthy  # a partial tool list is never reported healthy


async def test_tool_names_are_valid_prefixed_and_none_is_dropped(gateway: Gateway) -> None:
    names = [t["name"] for t in await gateway.list_tools()]
    assert len(names) == len(set(names))
    assert all(VALID.fullmatch(n) for n in names), [n for n in names if not VALID.fullmatch(n)]
    # Three servers offer `echo`: every one of them is listed.
    assert {"everything__echo", "ok__echo", "garbage__echo", "picky__echo"} <= set(names)
    assert "time__get_current_time" in names and "fs__read_text_file" in names


async def test_long_and_invalid_names_are_shortened_stably_and_still_route(
    gateway: Gateway,
) -> None:
    by_upstream = {(t.server, t.upstream_name): t.name for t in gateway.exposed_tools()}
    dotted = by_upstream[("ok", "sum.of:things")]
    long = by_upstream[("ok", "t" * 80)]
    assert VALID.fullmatch(dotted) and VALID.fullmatch(long)
    assert dotted.startswith("ok__sum_of_things_") and len(long) == 64
    assert text(await gateway.call_tool(dotted)) == "called sum.of:things"
    assert text(await gateway.call_tool(long)) == f"called {'t' * 80}"
    # The same on every run: the suffix hashes (server, name), not process state.
    assert dotted == "ok__sum_of_things_09979c49"


async def test_filtered_tools_are_neither_listed_nor_callable(gateway: Gateway) -> None:
    names = {t["name"] for t in await gateway.list_tools()}
    assert {"picky__echo", "picky__add"} <= names
    assert not {"picky__big", "picky__slow", "fs__write_file", "fs__move_file"} & names
    for name in ("picky__big", "fs__write_file", "fs__move_file"):
        with pytest.raises(GatewayError, match="Unknown tool") as info:
            await gateway.call_tool(name, {})
        assert info.value.code == types.INVALID_PARAMS


async def test_garbage_on_stdout_is_skipped(gateway: Gateway) -> None:
    assert text(await gateway.call_tool("garbage__echo", {"message": "still fine"})) == "still fine"


async def test_invalid_tool_schemas_cost_only_those_tools(gateway: Gateway) -> None:
    names = {t.name for t in gateway.exposed_tools() if t.server == "invalid"}
    assert names == {"invalid__good"}
    warnings = " ".join(status(gateway, "invalid").warnings)
    for bad in ("no_schema", "string_schema", "not_a_dict", "without a name"):
        assert bad in warnings
    assert text(await gateway.call_tool("invalid__good")) == "called good"


async def test_duplicate_tool_names_are_reported(gateway: Gateway) -> None:
    twins = [t for t in await gateway.list_tools() if t["name"].startswith("duplicate__")]
    assert [(t["name"], t["description"]) for t in twins] == [("duplicate__twin", "first")]
    assert "listed twice" in status(gateway, "duplicate").warnings[0]


# --------------------------------------------------------------------------- calls


async def test_rich_results_are_passed_through(gateway: Gateway) -> None:
    result = await gateway.call_tool("ok__rich")
    assert result["isError"] is True
    assert result["structuredContent"] == {"answer": 42, "nested": {"list": [1, 2, 3]}}
    kinds = [c["type"] for c in result["content"]]
    assert kinds == ["text", "image", "resource"]
    assert result["content"][1]["mimeType"] == "image/png"
    assert result["content"][2]["resource"]["text"] == "a note"


async def test_third_party_tools_through_the_gateway(gateway: Gateway) -> None:
    assert "3" in text(await gateway.call_tool("everything__get-sum", {"a": 1, "b": 2}))
    image = await gateway.call_tool("everything__get-tiny-image")
    assert any(c["type"] == "image" for c in image["content"])
    structured = await gateway.call_tool(
        "everything__get-structured-content", {"location": "New York"}
    )
    assert "temperature" in structured["structuredContent"]
    now = await gateway.call_tool("time__get_current_time", {"timezone": "UTC"})
    assert now["structuredContent"]["timezone"] == "UTC"
    assert "io.modelcontextprotocol/serverInfo" not in (now.get("_meta") or {})
    read = await gateway.call_tool("fs__read_text_file", {"path": str(await _fs_root(gateway))})
    assert "hello from the filesystem server" in text(read)


async def _fs_root(gateway: Gateway) -> Path:
    listing = await gateway.call_tool("fs__list_allowed_directories")
    root = Path(text(listing).splitlines()[-1].strip())
    return root / "hello.txt"


async def test_progress_passes_through(gateway: Gateway) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    await gateway.call_tool("ok__progress", on_progress=on_progress)
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]
    seen.clear()
    await gateway.call_tool(
        "everything__trigger-long-running-operation",
        {"duration": 0.3, "steps": 3},
        on_progress=on_progress,
    )
    assert [p for p, _, _ in seen] == [1, 2, 3]


async def test_a_10_mib_result_arrives_whole(gateway: Gateway) -> None:
    result = await gateway.call_tool("ok__big", {"size": 10 * MIB})
    assert len(text(result)) == 10 * MIB


async def test_unknown_tool_is_a_clear_error(gateway: Gateway) -> None:
    with pytest.raises(GatewayError, match="Unknown tool: 'nope__nothing'") as info:
        await gateway.call_tool("nope__nothing", {})
    assert info.value.code == types.INVALID_PARAMS


async def test_wrong_argument_types_are_a_tool_error_naming_the_field(gateway: Gateway) -> None:
    result = await gateway.call_tool("ok__add", {"a": "one", "b": 2})
    assert result["isError"] is True
    assert "'one' is not of type 'integer'" in text(result) and "(at a)" in text(result)
    missing = await gateway.call_tool("ok__add", {"a": 1})
    assert "'b' is a required property" in text(missing)


async def test_a_20_mib_argument_is_refused_and_nothing_breaks(gateway: Gateway) -> None:
    with pytest.raises(GatewayError, match="the limit is") as info:
        await gateway.call_tool("ok__echo", {"message": "x" * (20 * MIB)})
    assert info.value.code == types.INVALID_PARAMS
    assert text(await gateway.call_tool("ok__echo", {"message": "after"})) == "after"


async def test_a_timeout_names_the_server_and_the_upstream_stays_usable(gateway: Gateway) -> None:
    with pytest.raises(GatewayError, match=r"MCP server 'ok': tools/call timed out") as info:
        await gateway.call_tool("ok__slow", {"seconds": 30}, timeout=0.3)
    assert info.value.code == types.REQUEST_TIMEOUT and info.value.server == "ok"
    assert text(await gateway.call_tool("ok__echo", {"message": "alive"})) == "alive"


async def test_cancelling_a_call_leaves_the_session_usable(gateway: Gateway) -> None:
    with anyio.move_on_after(0.3) as scope:
        await gateway.call_tool("ok__slow", {"seconds": 30})
    assert scope.cancelled_caught
    assert text(await gateway.call_tool("ok__echo", {"message": "next"})) == "next"


async def test_calls_to_a_down_upstream_fail_with_its_name_not_a_hang(gateway: Gateway) -> None:
    upstream = next(u for u in gateway.upstreams() if u.name == "exit")
    with pytest.raises(GatewayError, match=r"MCP server 'exit'.*timed out.*status 3"):
        await upstream.request("tools/list", {}, timeout=0.5)


# --------------------------------------------------------------------------- resources, prompts


async def test_resources_are_unique_and_route_back(gateway: Gateway) -> None:
    uris = [r["uri"] for r in await gateway.list_resources()]
    assert len(uris) == len(set(uris))
    # `test://note` is served by ok, garbage and picky: each gets a routable, distinct URI.
    assert {"junction+ok:test://note", "junction+garbage:test://note"} <= set(uris)
    read = await gateway.read_resource("junction+ok:test://note")
    assert read["contents"][0]["text"] == "content of test://note"
    demo = next(u for u in uris if u.startswith("demo://"))
    assert (await gateway.read_resource(demo))["contents"]
    templates = [t["uriTemplate"] for t in await gateway.list_resource_templates()]
    assert "demo://resource/dynamic/text/{resourceId}" in templates
    dynamic = await gateway.read_resource("demo://resource/dynamic/text/7")
    assert dynamic["contents"][0]["uri"] == "demo://resource/dynamic/text/7"
    with pytest.raises(GatewayError, match="Unknown resource"):
        await gateway.read_resource("nowhere://x")


async def test_prompts_are_named_like_tools_and_route(gateway: Gateway) -> None:
    names = {p["name"] for p in await gateway.list_prompts()}
    assert {"ok__greet", "everything__simple-prompt"} <= names
    greet = await gateway.get_prompt("ok__greet")
    assert greet["messages"][0]["content"]["text"] == "hello"
    simple = await gateway.get_prompt("everything__simple-prompt")
    assert simple["messages"]


async def test_llm_tool_schemas(gateway: Gateway) -> None:
    tools = {t.name: t for t in await gateway.llm_tools()}
    add = tools["ok__add"]
    assert (add.server, add.upstream_name, add.description) == ("ok", "add", "Add two integers.")
    assert add.parameters["properties"]["a"] == {"type": "integer"}
    assert all(VALID.fullmatch(name) for name in tools)


# --------------------------------------------------------------------------- resilience


@pytest_asyncio.fixture(loop_scope="module")
async def small() -> AsyncIterator[Gateway]:
    options = GatewayOptions(reconnect_initial_delay=0.05)
    async with hosted(Gateway([fault("ok", "ok")], options)) as gw:
        await gw.wait_settled(60)  # each upstream's connect timeout bounds its first attempt
        assert all(u.first_attempt_done.is_set() for u in gw.upstreams()), "not settled"
        yield gw


async def _pid(gateway: Gateway) -> int:
    return int(text(await gateway.call_tool("ok__pid")))


async def test_reconnect_on_use_after_the_process_dies(small: Gateway) -> None:
    first = await _pid(small)
    os.kill(first, signal.SIGKILL)
    await eventually(lambda: small.upstreams()[0].state != UpstreamState.READY)
    second = await _pid(small)  # arrives while down: waits for the reconnect, within its deadline
    assert second != first
    assert small.statuses()[0].attempts >= 2


async def test_killed_mid_call_is_a_clear_error_then_it_recovers(small: Gateway) -> None:
    with pytest.raises(GatewayError, match="MCP server 'ok': connection lost during tools/call"):
        await small.call_tool("ok__die")
    assert text(await small.call_tool("ok__echo", {"message": "back"})) == "back"


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_upstream_list_changed_is_refreshed_and_forwarded(protocol: Any) -> None:
    """2026-07-28 upstreams announce changes on a listen stream, 2025-11-25 ones by notification."""
    async with Gateway([fault("ok", "ok", protocol=protocol)]) as small:
        await small.wait_settled(20)
        expected = "2025-11-25" if protocol == "legacy" else "2026-07-28"
        assert small.statuses()[0].protocol_version == expected
        await _grow_and_see_it(small)


async def _grow_and_see_it(small: Gateway) -> None:
    changes: list[frozenset[str]] = []
    changed = anyio.Event()

    def listener(kinds: frozenset[str]) -> None:
        changes.append(kinds)
        changed.set()

    unsubscribe = small.subscribe(listener)
    try:
        await small.call_tool("ok__grow")
        with anyio.fail_after(10):
            await changed.wait()
    finally:
        unsubscribe()
    assert "tools" in changes[0]
    assert text(await small.call_tool("ok__grown0")) == "called grown0"


async def test_session_upstreams_layer_over_the_global_set_and_close_with_it(
    small: Gateway,
) -> None:
    async with small.session([fault("extra", "ok"), fault("ok", "duplicate")]) as session:
        await session.wait_settled(20)
        names = {t["name"] for t in await session.list_tools()}
        assert "extra__echo" in names and "duplicate" not in names
        assert "ok__twin" in names and "ok__pid" not in names  # the session's `ok` shadows
        pid = int(text(await session.call_tool("extra__pid")))
        assert "ok__pid" in {t["name"] for t in await small.list_tools()}  # global unchanged
    await eventually(lambda: not _alive(pid))


async def eventually(condition: Callable[[], bool], within: float = 10) -> None:
    """Poll until `condition` holds; fails the test after `within` seconds (not a timing check)."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 (the condition is outside our event loop)
            await anyio.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_children_do_not_outlive_a_killed_parent(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import anyio, sys\n"
        "from mcp_gateway import Gateway, StdioUpstream\n"
        "async def main():\n"
        f"    spec = StdioUpstream(name='ok', command=sys.executable, args=({SERVERS!r}, 'ok'))\n"
        "    async with Gateway([spec]) as gw:\n"
        "        r = await gw.call_tool('ok__pid')\n"
        "        print(r['content'][0]['text'], flush=True)\n"
        "        await anyio.sleep_forever()\n"
        "anyio.run(main)\n"
    )
    async with await anyio.open_process([sys.executable, str(script)]) as parent:
        assert parent.stdout is not None
        line = b""
        with anyio.fail_after(20):
            while not line.endswith(b"\n"):
                line += await parent.stdout.receive(1)
        child = int(line)
        assert _alive(child)
        parent.kill()  # SIGKILL: no cleanup code runs in the parent
        await parent.wait()
    await eventually(lambda: not _alive(child))


# --------------------------------------------------------------------------- HTTP upstreams


async def test_streamable_http_and_legacy_sse_upstreams(
    http_everything: NodeHttpServer, sse_everything: NodeHttpServer
) -> None:
    specs = [http_everything.spec("web"), sse_everything.spec("legacy")]
    async with Gateway(specs) as gw:
        await gw.wait_settled(20)
        assert [s.state for s in gw.statuses()] == [UpstreamState.READY] * 2
        for name in ("web__echo", "legacy__echo"):
            assert "hi" in text(await gw.call_tool(name, {"message": "hi"}))
        big = await gw.call_tool("web__gzip-file-as-resource", {"name": "x.txt", "data": "x" * 10})
        assert big["content"]


async def test_http_upstream_restart_reconnects_on_use() -> None:
    server = NodeHttpServer("streamableHttp")
    server.start()
    try:
        options = GatewayOptions(reconnect_initial_delay=0.05, reconnect_max_delay=0.2)
        async with Gateway([server.spec("web")], options) as gw:
            await gw.wait_settled(20)
            assert "one" in text(await gw.call_tool("web__echo", {"message": "one"}))
            server.stop()
            server.start()  # same port, new process: the old session is gone
            result = await gw.call_tool("web__echo", {"message": "two"}, timeout=20)
            assert "two" in text(result)
    finally:
        server.stop()
