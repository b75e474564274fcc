"""MCP tool annotations decide a tool's ACP kind, and so what `ask` mode asks about: the
official filesystem server (npm, a real stdio upstream) marks its tools read-only,
destructive or neither."""

from __future__ import annotations

from pathlib import Path

from acp.tools import kind_of
from junction.config import JunctionConfig
from tests.acp.wire import agent
from tests.peers import npm_bin
from tests.router_core.llm_servers import Call, Reply, openai_server


async def test_ask_mode_asks_before_destructive_tools_not_read_only_ones(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "a.txt").write_text("old")
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(tool_calls=[Call("fs__list_directory", {"path": str(root)})]),
                Reply(tool_calls=[Call("fs__create_directory", {"path": str(root / "d")})]),
                Reply(
                    tool_calls=[
                        Call("fs__write_file", {"path": str(root / "a.txt"), "content": "new"})
                    ]
                ),
                Reply(text="done"),
            ]
        )
        config = JunctionConfig.model_validate(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'j.db'}"},
                "backends": {
                    "fake": {"type": "openai", "url": f"{server.url}/v1", "models": ["m1"]}
                },
                "acp": {"default_model": "m1"},
                "mcp_servers": {
                    "fs": {"command": str(npm_bin("mcp-server-filesystem")), "args": [str(root)]}
                },
            }
        )
        async with agent(config) as client:
            await client.initialize()
            sid = await client.new_session(root)
            response = await client.prompt(sid, "tidy up")
    assert response["result"] == {"stopReason": "end_turn"}
    kinds = {u["title"]: u["kind"] for u in client.of_kind("tool_call")}
    assert kinds == {
        "fs__list_directory": "read",
        "fs__create_directory": "edit",
        "fs__write_file": "delete",
    }
    asked = [
        r["params"]["toolCall"]["title"]
        for r in client.agent_requests
        if r["method"] == "session/request_permission"
    ]
    assert asked == ["fs__create_directory", "fs__write_file"]
    assert (root / "d").is_dir() and (root / "a.txt").read_text() == "new"


def test_kinds_follow_the_annotations_and_their_mcp_defaults() -> None:
    assert kind_of(None) == "other"
    assert kind_of({"title": "no hints"}) == "other"
    assert kind_of({"readOnlyHint": True}) == "fetch"  # openWorldHint defaults to true
    assert kind_of({"readOnlyHint": True, "openWorldHint": False}) == "read"
    assert kind_of({"readOnlyHint": False}) == "delete"  # destructiveHint defaults to true
    assert kind_of({"readOnlyHint": False, "destructiveHint": False}) == "edit"
    assert kind_of({"destructiveHint": True, "idempotentHint": True}) == "delete"
