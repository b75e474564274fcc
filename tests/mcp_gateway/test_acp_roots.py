"""An ACP session's own MCP servers get the session's directories as their roots.

The IDE is the official ACP Python SDK (its own venv) running `junction --mode stdio`; the
session's MCP server is the real @modelcontextprotocol/server-filesystem, started with a
directory of its own, which it replaces with its client's roots (asked right after it is
initialized, outside any call). ACP has no roots: the session's cwd and additionalDirectories
are them. The fake model calls the server's tools.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from mcp_gateway import GatewayError
from mcp_gateway.relay import roots_relay
from tests.acp.test_sdk_clients import AGENT, REPO, run, write_config
from tests.peers import npm_bin, python_peer
from tests.router_core.llm_servers import Call, Reply, openai_server

PEER = Path(__file__).with_name("acp_roots_client.py")


def tool_results(turn: dict[str, Any]) -> list[str]:
    """The text of each completed or failed tool call's content, in order."""
    return [
        json.dumps(u.get("content") or [])
        for u in turn["updates"]
        if u["sessionUpdate"] == "tool_call_update" and u.get("status") in ("completed", "failed")
    ]


async def test_session_servers_serve_the_sessions_directories(tmp_path: Path) -> None:
    own, project, extra = (tmp_path / name for name in ("own", "project", "extra"))
    for directory in (own, project, extra):
        directory.mkdir()
        (directory / "note.txt").write_text(f"in {directory.name}")
    async with openai_server(models=["m1"]) as model:
        model.script(
            [
                Reply(tool_calls=[Call("fs__list_allowed_directories", {})]),
                Reply(text="listed"),
                Reply(tool_calls=[Call("fs__read_text_file", {"path": str(own / "note.txt")})]),
                Reply(text="refused"),
                Reply(tool_calls=[Call("fs__read_text_file", {"path": str(extra / "note.txt")})]),
                Reply(text="read"),
            ]
        )
        spec = {
            "agent": [*AGENT, str(write_config(tmp_path, model.url))],
            "workdir": str(REPO),
            "cwd": str(project),
            "extra": [str(extra)],
            "fs": {  # its stderr in a file, to know when it has taken the session's roots
                "name": "fs",
                "command": "/bin/sh",
                "args": [
                    "-c",
                    f'exec "$0" "$@" 2>>"{tmp_path / "fs.log"}"',
                    str(npm_bin("mcp-server-filesystem")),
                    str(own),
                ],
            },
            "prompts": ["where may you go", "read the old note", "read the extra note"],
            "ready": {
                "file": str(tmp_path / "fs.log"),
                "text": "Updated allowed directories from MCP roots",
            },
        }
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps(spec))
        report = await run([str(python_peer("agent-client-protocol")), str(PEER), str(spec_path)])

    listed, outside, inside = report["turns"]
    assert [t["stop"] for t in report["turns"]] == ["end_turn"] * 3
    [allowed] = tool_results(listed)
    assert f"Allowed directories:\\n{project}\\n{extra}" in allowed, allowed
    assert str(own) not in allowed
    [refused] = tool_results(outside)
    assert "outside allowed directories" in refused, refused
    [read] = tool_results(inside)
    assert "in extra" in read, read


async def test_a_sessions_directories_answer_roots_and_refuse_the_rest() -> None:
    """What the session answers outside a turn: roots (absolute directories only); sampling is
    not offered (-32601); elicitation waits for a turn (-32603, saying so)."""
    relay = roots_relay(["/work/project", "relative/dir", "/"])
    assert await relay.request("roots/list", {}, "fs") == {
        "roots": [
            {"uri": "file:///work/project", "name": "project"},
            {"uri": "file:///", "name": "/"},
        ]
    }
    with pytest.raises(GatewayError) as sampling:
        await relay.request("sampling/createMessage", {}, "fs")
    assert sampling.value.code == types.METHOD_NOT_FOUND
    with pytest.raises(GatewayError) as elicitation:
        await relay.request("elicitation/create", {}, "fs")
    assert elicitation.value.code == types.INTERNAL_ERROR
    assert "prompt turn" in elicitation.value.message
