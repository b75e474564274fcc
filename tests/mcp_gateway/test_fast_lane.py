"""`junction --mode mcp` answers `tools/call` in front of the SDK (mcp_gateway/_fast_lane.py) and
writes stdio upstream requests as lines (mcp_gateway/_raw_upstream.py): the client sees what it
saw through the SDK alone.

The real `junction --mode mcp` runs twice, with the fast paths on and with
`JUNCTION_MCP_FAST_LANE=0`, driven over stdio by the `mcp` SDK client (2025-11-25, answering
sampling and elicitation) through the same calls, against real upstreams: `servers.py ok` and
the conformance fixture (both the `mcp` SDK) and @modelcontextprotocol/server-everything. Every
answer is recorded (results, errors, progress, log messages, what the client was asked, what
reached the client's dispatcher late) and the two records must be equal. Junction's log says
which paths served, so a lane that silently stood aside fails the test.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from tests.mcp_gateway.conftest import SERVERS
from tests.mcp_gateway.test_serving import junction_mcp_command
from tests.peers import npm_bin
from tests.test_tracing import TRACEPARENT, meta_server

pytestmark = pytest.mark.asyncio
FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "mcp_conformance_server.py")
LANE_SAID = "tools/call answered in front of the SDK's server (fast lane)"
RAW_SAID = "requests to stdio upstreams written as lines beside their SDK sessions"


def junction(tmp_path: Path, fast: bool) -> tuple[StdioServerParameters, Path]:
    """`junction --mode mcp` over the test upstreams, its stderr kept in a file."""
    tmp_path.mkdir()
    config = tmp_path / "junction.yaml"
    servers = {
        "ok": {"command": sys.executable, "args": [SERVERS, "ok"]},
        "dying": {"command": sys.executable, "args": [SERVERS, "ok"]},
        # a 2025-11-25 session too, where its tools ask the client the handshake-era way
        "fx": {"command": sys.executable, "args": [FIXTURE, "stdio"], "legacy_session": True},
        "everything": {"command": str(npm_bin("mcp-server-everything"))},
        "echo": {"command": sys.executable, "args": [str(meta_server(tmp_path))]},
    }
    config.write_text(json.dumps({"mcp_servers": servers, "logging": {"level": "info"}}))
    stderr = tmp_path / "stderr.log"
    command = ["sh", "-c", f'exec "$@" 2>>"{stderr}"', "sh", *junction_mcp_command(config)]
    env = dict(os.environ)
    if fast:
        env.pop("JUNCTION_MCP_FAST_LANE", None)
    else:
        env["JUNCTION_MCP_FAST_LANE"] = "0"
    return StdioServerParameters(command=command[0], args=command[1:], env=env), stderr


class Recorder(logging.Handler):
    """What the client's own dispatcher dropped: responses to requests nobody waits for."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.late: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "unknown/late request id" in record.getMessage():
            self.late.append(record.getMessage())


class Ide:
    """A 2025-11-25 client that answers what it is asked and records what it hears."""

    def __init__(self) -> None:
        self.asked: list[Any] = []
        self.logs: list[Any] = []
        self.garbage: list[str] = []

    async def sample(self, context: Any, params: types.CreateMessageRequestParams) -> Any:
        self.asked.append(["sampling", params.model_dump(mode="json", exclude_none=True)])
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(text="sampled"), model="m"
        )

    async def elicit(self, context: Any, params: types.ElicitRequestParams) -> Any:
        asked = params.model_dump(mode="json", exclude_none=True)
        self.asked.append(["elicitation", asked])
        wanted = asked.get("requestedSchema", asked.get("requested_schema", {}))
        if "name" in wanted.get("properties", {}):
            return types.ElicitResult(action="accept", content={"name": "Alice"})
        return types.ElicitResult(action="accept", content={"response": "blue"})

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params.model_dump(mode="json", exclude_none=True))

    async def message(self, message: Any) -> None:
        if isinstance(message, Exception):  # a line on stdout that is not JSON-RPC
            self.garbage.append(repr(message))


async def call(
    client: Client, name: str, args: dict[str, Any] | None = None, progress: bool = False
) -> list[Any]:
    """A call's answer as data: its result, or its error, with the progress it reported
    (`progress`: the client asks for it, with a progress token)."""
    heard: list[Any] = []

    async def hear(done: float, total: float | None, message: str | None) -> None:
        heard.append([done, total, message])

    try:
        result = await client.call_tool(name, args, progress_callback=hear if progress else None)
    except MCPError as exc:
        return ["error", exc.error.code, exc.error.message, exc.error.data, heard]
    return ["result", result.model_dump(mode="json", exclude_none=True), heard]


async def cancelled_call(client: Client) -> list[Any]:
    """A slow call the client gives up on (the SDK sends `notifications/cancelled`)."""
    with anyio.move_on_after(1.0) as scope:
        await client.call_tool("ok__slow", {"seconds": 30})
    return ["cancelled", scope.cancelled_caught]


async def concurrently(client: Client) -> list[Any]:
    """Sixteen calls at once, answered each to its own caller."""
    answers: dict[int, list[Any]] = {}

    async def one(i: int) -> None:
        if i % 4 == 3:
            answers[i] = await call(client, "ok__add", {"a": i, "b": 1})
        elif i % 4 == 2:
            answers[i] = await call(client, "everything__echo", {"message": f"e{i}"})
        else:
            answers[i] = await call(client, "ok__echo", {"message": f"m{i}"})

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(one, i)
    return [answers[i] for i in range(16)]


async def logged_call(client: Client, ide: Ide) -> list[Any]:
    """A call during which the upstream logs three lines (all heard before its answer)."""
    ide.logs.clear()
    answer = await call(client, "fx__test_tool_with_logging")
    with anyio.fail_after(10):
        while len(ide.logs) < 3:  # noqa: ASYNC110 - notifications are handled in tasks
            await anyio.sleep(0.01)
    return [answer, list(ide.logs)]


async def scenarios(
    params: StdioServerParameters, mode: str = "legacy"
) -> tuple[list[Any], Ide, Recorder]:
    ide, late = Ide(), Recorder()
    dispatcher = logging.getLogger("mcp.shared.jsonrpc_dispatcher")
    dispatcher.addHandler(late)
    level = dispatcher.level
    dispatcher.setLevel(logging.DEBUG)
    record: list[Any] = []
    try:
        async with Client(
            params,
            mode=mode,  # type: ignore[arg-type]
            log_level="info",  # a 2026-07-28 client's opt-in to log lines
            sampling_callback=ide.sample,
            elicitation_callback=ide.elicit,
            logging_callback=ide.log,
            message_handler=ide.message,
        ) as client:
            tools = await client.list_tools()
            record.append(sorted(tool.name for tool in tools.tools))
            record.append(await call(client, "ok__echo", {"message": "hi"}))
            record.append(await call(client, "ok__add", {"a": 1, "b": 2}))
            record.append(await call(client, "ok__rich"))  # isError, image, resource, structured
            record.append(await call(client, "nope"))  # unknown tool
            record.append(await call(client, "ok__echo", {"message": 5}))  # invalid arguments
            record.append(await call(client, "ok__echo", {}))  # a required one missing
            record.append(await call(client, "ok__progress", progress=True))  # under our token
            record.append(await call(client, "everything__echo", {"message": "via node"}))
            record.append(await logged_call(client, ide))
            record.append(await call(client, "fx__test_sampling", {"prompt": "hello"}))
            record.append(await call(client, "fx__test_elicitation", {"message": "colour?"}))
            record.append(await call(client, "fx__ask_then_progress", progress=True))
            record.append(await call(client, "fx__test_error_handling"))
            # an upstream's input-required result (2026-07-28): a 2026-07-28 client answers it
            # and retries with the upstream's requestState; a 2025-11-25 one is asked instead
            record.append(await call(client, "fx__test_input_required_result_elicitation"))
            record.append(await call(client, "ok__echo", {"message": "progress"}, progress=True))
            # the `_meta` the upstream got: the client's capabilities and log level, our trace
            record.append(await call(client, "echo__meta"))
            traced = await client.call_tool("echo__meta", meta={"traceparent": TRACEPARENT})
            record.append(traced.model_dump(mode="json", exclude_none=True))
            record.append(await cancelled_call(client))
            record.append(await call(client, "ok__echo", {"message": "after the cancel"}))
            died = await call(client, "dying__die")  # the upstream exits mid-call
            # (what it says of the exit depends on how soon the exit status is known)
            record.append([*died[:2], died[2].split(" (")[0], *died[3:]])
            record.append(await call(client, "dying__echo", {"message": "back"}))
            record.append(await concurrently(client))
            await anyio.sleep(0.5)  # a late answer to the cancelled call would be in by now
    finally:
        dispatcher.removeHandler(late)
        dispatcher.setLevel(level)
    record.append(ide.asked)
    return record, ide, late


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_fast_paths_answer_as_the_sdk_does(tmp_path: Path, mode: str) -> None:
    sdk_params, sdk_log = junction(tmp_path / "sdk", fast=False)
    fast_params, fast_log = junction(tmp_path / "fast", fast=True)
    through_sdk, sdk_ide, sdk_late = await scenarios(sdk_params, mode)
    through_lane, lane_ide, lane_late = await scenarios(fast_params, mode)

    said_sdk, said_fast = sdk_log.read_text(), fast_log.read_text()
    assert LANE_SAID not in said_sdk and RAW_SAID not in said_sdk
    assert LANE_SAID in said_fast and RAW_SAID in said_fast
    for index, (expected, got) in enumerate(zip(through_sdk, through_lane, strict=True)):
        assert got == expected, f"step {index}"
    # The scenarios did what they say (the same in both runs, checked above).
    asked = [kind for kind, _ in lane_ide.asked]
    if mode == "legacy":  # the fixture's tools ask the 2025-11-25 way, on its legacy session
        assert asked == ["sampling", "elicitation", "elicitation"]
    else:  # a 2026-07-28 client answers the upstream's input-required result, and only that
        assert asked == ["elicitation"]
        assert through_lane[14][1]["content"][0]["text"] == "Hello, Alice!"
    assert through_lane[7][2] == [[1.0, 3.0, "step 1"], [2.0, 3.0, "step 2"], [3.0, 3.0, "step 3"]]
    assert [entry["data"] for entry in through_lane[9][1]] == [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ]
    upstream_meta = json.loads(through_lane[16][1]["content"][0]["text"])
    assert upstream_meta["io.modelcontextprotocol/logLevel"] == (
        "debug" if mode == "legacy" else "info"  # the 2025-11-25 client set none: all
    )
    traced_meta = json.loads(through_lane[17]["content"][0]["text"])
    assert traced_meta["traceparent"].split("-")[1] == TRACEPARENT.split("-")[1]
    assert through_lane[18] == ["cancelled", True]
    assert through_lane[20][:3] == [
        "error",
        types.INTERNAL_ERROR,
        "MCP server 'dying': connection lost during tools/call",
    ]
    assert not sdk_late.late and not lane_late.late  # the cancelled call was never answered
    assert not sdk_ide.garbage and not lane_ide.garbage  # stdout carried only JSON-RPC


ODD_LINES: list[bytes] = [
    b'{"jsonrpc":"2.0","id":"p","method":"tools/call","params":{"name":"ok__echo",',  # not JSON
    b'{"jsonrpc":"2.0","id":"n","method":"tools/call","params":{"name":5}}',  # name not a string
    b'{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"ok__echo",'
    b'"arguments":[1]}}',  # arguments not an object
    b'{"jsonrpc":"1.0","id":"v","method":"tools/call","params":{"name":"ok__echo"}}',
    b'{"jsonrpc":"2.0","id":true,"method":"tools/call","params":{"name":"ok__echo"}}',
    b'{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"ok__echo",'
    b'"arguments":{"message":"extra"},"task":{}}}',  # a member the lane leaves to the SDK
    b'{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"name":"ok__echo",'
    b'"arguments":{"message":"'
    + b"9" * 40
    + b'"},"_meta":{"progressToken":123456789012345678901234567890}}}',
    b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"ok__echo",'
    b'"arguments":{"message":"plain"}}}',
    b'{"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"ok__slow",'
    b'"arguments":{"seconds":30}}}',  # still running at end of input
]


ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def modern(request_id: str, params: dict[str, Any], meta: dict[str, Any] | None = None) -> bytes:
    """A 2026-07-28 `tools/call` line (`meta`: its `_meta`, the plain envelope by default)."""
    body = {**params, "_meta": ENVELOPE if meta is None else meta}
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": body}
    return json.dumps(message).encode()


ECHO = {"name": "ok__echo", "arguments": {"message": "plain"}}
MODERN_ODD_LINES: list[bytes] = [
    modern("caps", ECHO, {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
    modern("version", ECHO, {**ENVELOPE, "io.modelcontextprotocol/protocolVersion": "2099-01-01"}),
    modern("level", ECHO, {**ENVELOPE, "io.modelcontextprotocol/logLevel": "loud"}),
    modern("ours", {**ECHO, "requestState": "junction-round:forged"}),
    modern("theirs", {**ECHO, "requestState": "the upstream's", "inputResponses": {}}),
    modern("trace", ECHO, {**ENVELOPE, "traceparent": TRACEPARENT}),
    modern("token", ECHO, {**ENVELOPE, "progressToken": "t"}),
    modern("nameless", {"arguments": {}}),
    modern("plain", ECHO),
    modern("slow", {"name": "ok__slow", "arguments": {"seconds": 30}}),
]


async def raw_session(tmp_path: Path, fast: bool, era: str = "legacy") -> tuple[list[Any], str]:
    """What `junction --mode mcp` writes for the odd lines of a client of `era`, then at end
    of input, in order of request id (lines without an id in order of arrival); and its log."""
    params, stderr = junction(tmp_path, fast)
    process = await anyio.open_process([params.command, *params.args], env=params.env)
    assert process.stdin is not None and process.stdout is not None
    stdout = process.stdout
    buffer = b""

    async def line() -> Any:
        """The next answer (notifications, such as list changes as upstreams start, skipped)."""
        nonlocal buffer
        while True:
            with anyio.fail_after(30):
                while b"\n" not in buffer:
                    chunk = await stdout.receive()
                    buffer += chunk
            first, buffer = buffer.split(b"\n", 1)
            message = json.loads(first)
            if "method" not in message:
                return message

    async def send(message: bytes | dict[str, Any]) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        assert process.stdin is not None
        await process.stdin.send(data + b"\n")

    try:
        lines = ODD_LINES
        if era == "legacy":
            init = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            }
            await send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init})
            assert (await line())["id"] == 0
            await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            await send({"jsonrpc": "2.0", "id": "list", "method": "tools/list"})
        else:  # the first request, enveloped, makes the connection a 2026-07-28 one
            lines = MODERN_ODD_LINES
            listing = {"_meta": ENVELOPE}
            await send({"jsonrpc": "2.0", "id": "list", "method": "tools/list", "params": listing})
        assert (await line())["id"] == "list"  # the era is known: what follows may take the lane
        for odd in lines:
            await send(odd)
        answers = [await line() for _ in range(len(lines) - 1)]  # all but the slow one
        await process.stdin.aclose()  # end of input with the slow call running
        answers.append(await line())
        with anyio.fail_after(20):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
    return sorted(answers, key=lambda answer: str(answer.get("id"))), stderr.read_text()


async def test_odd_calls_and_end_of_input_are_answered_alike(tmp_path: Path) -> None:
    """Lines the lane must leave to the SDK (or answer as it does), and a call still running
    when input ends ("Connection closed", as the SDK answers it)."""
    through_sdk, said_sdk = await raw_session(tmp_path / "sdk", fast=False)
    through_lane, said_fast = await raw_session(tmp_path / "fast", fast=True)
    assert LANE_SAID in said_fast and LANE_SAID not in said_sdk
    assert through_lane == through_sdk
    by_id = {str(answer.get("id")): answer for answer in through_lane}
    assert by_id["slow"]["error"] == {
        "code": types.CONNECTION_CLOSED,
        "message": "Connection closed",
    }
    assert by_id["7"]["result"]["content"] == [{"type": "text", "text": "plain"}]
    assert by_id["big"]["result"]["content"][0]["text"] == "9" * 40
    unnamed = sorted(answer["error"]["code"] for answer in through_lane if answer["id"] is None)
    assert unnamed == [types.PARSE_ERROR, types.INVALID_REQUEST]  # not JSON; an id of true
    for refused in ("n", "a", "v"):  # the SDK's refusals of a malformed call
        assert by_id[refused]["error"]["code"] in (types.INVALID_PARAMS, types.INVALID_REQUEST)


async def test_odd_2026_calls_and_end_of_input_are_answered_alike(tmp_path: Path) -> None:
    """A 2026-07-28 client's calls the lane must leave to the SDK (a broken envelope, an
    unsupported version, a bad log level, a parked call's state, a trace), those it answers
    (an upstream's own `requestState` passed on, a progress token), and end of input."""
    through_sdk, said_sdk = await raw_session(tmp_path / "sdk", fast=False, era="modern")
    through_lane, said_fast = await raw_session(tmp_path / "fast", fast=True, era="modern")
    assert LANE_SAID in said_fast and LANE_SAID not in said_sdk
    assert through_lane == through_sdk
    by_id = {str(answer.get("id")): answer for answer in through_lane}
    assert by_id["slow"]["error"] == {
        "code": types.CONNECTION_CLOSED,
        "message": "Connection closed",
    }
    stamp = by_id["plain"]["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]
    assert stamp["name"] == "junction"
    assert by_id["version"]["error"]["code"] == types.UNSUPPORTED_PROTOCOL_VERSION
    assert by_id["ours"]["error"]["message"].startswith("requestState: unknown or expired")


async def last_words(tmp_path: Path, fast: bool) -> list[Any]:
    """A client that sends a slow call and closes its end in one write: what it is told."""
    params, _ = junction(tmp_path, fast)
    init = {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    first = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": init},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": "list", "method": "tools/list"},
    ]
    slow = {"name": "ok__slow", "arguments": {"seconds": 30}}
    last = {"jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": slow}
    process = await anyio.open_process([params.command, *params.args], env=params.env)
    assert process.stdin is not None and process.stdout is not None
    try:
        await process.stdin.send(b"".join(json.dumps(m).encode() + b"\n" for m in first))
        seen = b""
        with anyio.fail_after(30):
            while b'"id":"list"' not in seen:  # the lane is open once the client initialized
                seen += await process.stdout.receive()
            await process.stdin.send(json.dumps(last).encode() + b"\n")
            await process.stdin.aclose()
            rest = b""
            async for chunk in process.stdout:
                rest += chunk
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
    return [json.loads(line) for line in rest.splitlines() if b'"method"' not in line]


async def test_a_call_cut_off_by_end_of_input_is_answered_alike(tmp_path: Path) -> None:
    through_sdk = await last_words(tmp_path / "sdk", fast=False)
    through_lane = await last_words(tmp_path / "fast", fast=True)
    assert through_lane == through_sdk
    closed = {"code": types.CONNECTION_CLOSED, "message": "Connection closed"}
    assert through_lane == [{"jsonrpc": "2.0", "id": "slow", "error": closed}]
