"""Invalid session parameters are refused with -32602 before anything is stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.acp.wire import agent, agent_config
from tests.router_core.llm_servers import openai_server


async def test_invalid_session_new_params_are_refused_and_nothing_is_saved(
    tmp_path: Path,
) -> None:
    ok = str(tmp_path)
    invalid: list[tuple[dict[str, Any], str]] = [
        ({"cwd": ok + "/a\x00b"}, "cwd contains a NUL byte"),
        ({"cwd": "relative/dir"}, "cwd must be an absolute path"),
        ({"cwd": 42}, "Invalid params"),
        ({"cwd": ok, "additionalDirectories": ["/x\x00"]}, "additionalDirectories contains a NUL"),
        ({"cwd": ok, "additionalDirectories": ["x"]}, "additionalDirectories must be an absolute"),
        (
            {"cwd": ok, "mcpServers": [{"name": "s\x00", "command": "/bin/true"}]},
            "mcpServers[0].name contains a NUL byte",
        ),
        (
            {"cwd": ok, "mcpServers": [{"name": "s", "command": "/bin/true", "args": ["a\x00"]}]},
            "mcpServers[0].args[0] contains a NUL byte",
        ),
        (
            {
                "cwd": ok,
                "mcpServers": [
                    {"name": "s", "command": "/bin/true", "env": [{"name": "A", "value": "\x00"}]}
                ],
            },
            "mcpServers[0].env[0].value contains a NUL byte",
        ),
        (
            {"cwd": ok, "mcpServers": [{"type": "http", "name": "h", "url": "http://x\x00"}]},
            "mcpServers[0].url contains a NUL byte",
        ),
    ]
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            replies = [
                await client.request("session/new", {"mcpServers": [], **params})
                for params, _ in invalid
            ]
            listed = await client.call("session/list", {})
    for reply, (params, message) in zip(replies, invalid, strict=True):
        assert reply["error"]["code"] == -32602, params
        assert message in reply["error"]["message"], params
    assert listed == {"sessions": []}


async def test_load_resume_and_list_refuse_a_bad_cwd_and_keep_the_stored_one(
    tmp_path: Path,
) -> None:
    bad = str(tmp_path) + "\x00"
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            replies = [
                await client.request(method, {"sessionId": sid, "cwd": bad, "mcpServers": []})
                for method in ("session/load", "session/resume")
            ]
            bad_servers = await client.request(
                "session/resume",
                {
                    "sessionId": sid,
                    "cwd": str(tmp_path),
                    "mcpServers": [{"name": "s", "command": "/bin/\x00"}],
                },
            )
            listed_bad = await client.request("session/list", {"cwd": bad})
            listed = await client.call("session/list", {"cwd": str(tmp_path) + "/"})
            prompt = await client.prompt(sid, "still open?")
    for reply in [*replies, listed_bad]:
        assert reply["error"]["code"] == -32602
        assert "cwd contains a NUL byte" in reply["error"]["message"]
    assert bad_servers["error"]["code"] == -32602
    assert "mcpServers[0].command contains a NUL byte" in bad_servers["error"]["message"]
    assert [(s["sessionId"], s["cwd"]) for s in listed["sessions"]] == [(sid, str(tmp_path))]
    assert prompt["result"] == {"stopReason": "end_turn"}
