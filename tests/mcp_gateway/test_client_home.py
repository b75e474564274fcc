"""What an upstream asks its client outside every call, and progress on relayed requests.

`junction --mode mcp` runs as a real subprocess, driven over stdio by the `mcp` SDK client
(2025-11-25, with a `list_roots_callback`). Upstreams: the real
@modelcontextprotocol/server-filesystem (it asks `roots/list` after it is initialized and
after `notifications/roots/list_changed`, and serves exactly the client's roots), and
`asking_server.py` (the `mcp` SDK), which asks roots, sampling and elicitation outside any
call and sends an elicitation with a progress token of its own. Over `/mcp` (many clients)
the same out-of-call requests are refused with -32603, saying why.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import pytest_asyncio
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway import Gateway, StdioUpstream, http_app
from mcp_gateway._sdk import create_mcp_http_client
from tests.mcp_gateway.conftest import NodeHttpServer, free_port, hosted
from tests.mcp_gateway.test_serving import _Serving, junction_mcp_command
from tests.peers import npm_bin

pytestmark = pytest.mark.asyncio(loop_scope="module")
ASKING = str(Path(__file__).with_name("asking_server.py"))


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


class Ide:
    """A client with roots it can change, and answers for sampling and elicitation."""

    def __init__(self, *roots: Path) -> None:
        self.roots = list(roots)
        self.asked: list[str] = []
        self.logged = anyio.Event()

    async def list_roots(self, context: Any) -> types.ListRootsResult:
        self.asked.append("roots/list")
        return types.ListRootsResult(
            roots=[types.Root(uri=root.as_uri(), name=root.name) for root in self.roots]  # type: ignore[arg-type]
        )

    async def log(self, params: types.LoggingMessageNotificationParams) -> None:
        if params.data == "asked":  # the server has asked all it asks outside a call
            self.logged.set()

    async def asked_everything(self) -> None:
        with anyio.fail_after(20):
            await self.logged.wait()

    async def sample(self, context: Any, params: types.CreateMessageRequestParams) -> Any:
        self.asked.append("sampling/createMessage")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="sampled"), model="m"
        )

    async def elicit(self, context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append("elicitation/create")
        token = (context.meta or {}).get("progress_token")
        if token is not None:  # progress on the request the server asked
            for step in (1, 2):
                await context.session.send_progress_notification(token, step, 2)
        return types.ElicitResult(action="accept", content={"colour": "blue"})


def mcp_mode(tmp_path: Path, servers: dict[str, Any]) -> StdioServerParameters:
    config = tmp_path / "junction.yaml"
    config.write_text(json.dumps({"mcp_servers": servers, "logging": {"level": "warning"}}))
    command = junction_mcp_command(config)
    return StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))


def client(params: StdioServerParameters, ide: Ide, sampling: bool = True) -> Client:
    return Client(
        params,
        mode="legacy",
        list_roots_callback=ide.list_roots,
        sampling_callback=ide.sample if sampling else None,
        elicitation_callback=ide.elicit,
        logging_callback=ide.log,
    )


async def allowed(client: Client) -> list[str]:
    said = text(await client.call_tool("fs__list_allowed_directories", {}))
    return said.splitlines()[1:]  # after "Allowed directories:"


async def allowed_becomes(client: Client, expected: list[str]) -> list[str]:
    """The server takes the roots in the background after it asked: wait for it (bounded)."""
    seen: list[str] = []
    with anyio.move_on_after(20):  # its state is in another process: asked until it changes
        while (seen := await allowed(client)) != expected:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return seen


async def test_the_filesystem_server_serves_the_stdio_clients_roots(tmp_path: Path) -> None:
    own, first, second = (tmp_path / name for name in ("own", "first", "second"))
    for directory in (own, first, second):
        directory.mkdir()
        (directory / "note.txt").write_text(f"in {directory.name}")
    fs = {"command": str(npm_bin("mcp-server-filesystem")), "args": [str(own)]}
    ide = Ide(first)
    async with client(mcp_mode(tmp_path, {"fs": fs}), ide) as session:
        # asked right after its initialization, before the client had initialized: answered
        # once it had, with the client's roots, which replace the directory it started with
        assert await allowed_becomes(session, [str(first)]) == [str(first)]
        assert ide.asked[:1] == ["roots/list"]
        read = await session.call_tool("fs__read_text_file", {"path": str(first / "note.txt")})
        assert text(read) == "in first"

        ide.roots = [second]
        await session.session.send_roots_list_changed()
        assert await allowed_becomes(session, [str(second)]) == [str(second)]
        assert ide.asked.count("roots/list") == 2

        outside = await session.call_tool("fs__read_text_file", {"path": str(first / "note.txt")})
        assert outside.is_error and "outside allowed directories" in text(outside)
        inside = await session.call_tool("fs__read_text_file", {"path": str(second / "note.txt")})
        assert not inside.is_error and text(inside) == "in second"


async def test_requests_outside_a_call_reach_the_one_client_as_it_declared(
    tmp_path: Path,
) -> None:
    """roots/list_changed reaches the upstream; what it then asks (no call in flight) goes to
    the client: roots and elicitation answered, sampling refused as undeclared (-32601)."""
    ide = Ide(tmp_path)
    asking = {"command": sys.executable, "args": [ASKING]}
    async with client(mcp_mode(tmp_path, {"asking": asking}), ide, sampling=False) as session:
        await session.list_tools()
        await session.session.send_roots_list_changed()
        await ide.asked_everything()  # before any call: none is in flight while it asks
        heard = json.loads(text(await session.call_tool("asking__answers", {})))
    assert heard["roots/list"] == {"roots": [{"uri": tmp_path.as_uri(), "name": tmp_path.name}]}
    assert heard["elicitation/create"] == {"action": "accept", "content": {"colour": "blue"}}
    refused = heard["sampling/createMessage"]
    assert refused["error"] == types.METHOD_NOT_FOUND
    assert "sampling capability" in refused["message"]
    assert ide.asked == ["roots/list", "elicitation/create"]


async def test_progress_both_ways_over_stdio(tmp_path: Path) -> None:
    """The client's progress on an elicitation the upstream sent with its own token reaches
    that upstream under that token; the upstream's progress on a call reaches the client's
    progress callback (so under the client's token)."""
    ide = Ide(tmp_path)
    asking = {"command": sys.executable, "args": [ASKING]}
    steps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async with client(mcp_mode(tmp_path, {"asking": asking}), ide) as session:
        heard = json.loads(text(await session.call_tool("asking__elicit_with_progress", {})))
        worked = await session.call_tool("asking__work", {}, progress_callback=on_progress)
    assert heard["answer"] == {"action": "accept", "content": {"colour": "blue"}}
    assert heard["progress"] == [
        {"token": "upstream-token", "progress": 1.0},
        {"token": "upstream-token", "progress": 2.0},
    ]
    assert text(worked) == "done" and steps == [1.0, 2.0]


async def test_a_streamable_http_upstream_asks_the_stdio_client_on_its_own_stream(
    tmp_path: Path, http_everything: NodeHttpServer
) -> None:
    """server-everything over Streamable HTTP asks `roots/list` on its standalone stream
    (after its initialization, and after `roots/list_changed`): the stdio client answers."""
    first, second = tmp_path / "first", tmp_path / "second"
    ide = Ide(first)
    servers = {"everything": {"url": http_everything.url}}

    async def roots_shown(session: Client, root: Path) -> str:
        said = ""
        with anyio.move_on_after(20):  # its state is in another process: asked until it shows
            while root.as_uri() not in said:
                said = text(await session.call_tool("everything__get-roots-list", {}))
                await anyio.sleep(0.05)
        return said

    async with client(mcp_mode(tmp_path, servers), ide) as session:
        assert first.as_uri() in await roots_shown(session, first)
        ide.roots = [second]
        await session.session.send_roots_list_changed()
        shown = await roots_shown(session, second)
    assert second.as_uri() in shown and first.as_uri() not in shown
    assert ide.asked.count("roots/list") >= 2


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def served() -> AsyncIterator[tuple[Gateway, str]]:
    gateway = Gateway([StdioUpstream(name="asking", command=sys.executable, args=(ASKING,))])
    async with hosted(gateway):
        await gateway.wait_settled(30)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(http_app(gateway), host="127.0.0.1", port=port, log_level="warning")
        )
        async with hosted(_Serving(server)):
            yield gateway, f"http://127.0.0.1:{port}/mcp"


async def test_over_http_requests_outside_a_call_are_refused_saying_why(
    served: tuple[Gateway, str],
) -> None:
    gateway, url = served
    ide = Ide(Path("/tmp"))
    async with (
        create_mcp_http_client() as http,
        Client(
            streamable_http_client(url, http_client=http),
            mode="legacy",
            list_roots_callback=ide.list_roots,
            sampling_callback=ide.sample,
            elicitation_callback=ide.elicit,
            logging_callback=ide.log,
        ) as session,
    ):
        await gateway.upstreams()[0].roots_changed()  # it asks when no call is in flight
        await ide.asked_everything()
        heard = json.loads(text(await session.call_tool("asking__answers", {})))
        progress = json.loads(text(await session.call_tool("asking__elicit_with_progress", {})))
    for method in ("roots/list", "sampling/createMessage", "elicitation/create"):
        assert heard[method]["error"] == types.INTERNAL_ERROR, heard
        assert "no single client" in heard[method]["message"]
    assert ide.asked == ["elicitation/create"]  # only the one asked during a call
    assert [p["token"] for p in progress["progress"]] == ["upstream-token"] * 2
