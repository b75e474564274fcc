"""The official ACP client SDKs (Python from its own venv, TypeScript on Node) against the agent.

Each SDK client spawns the agent as an IDE would (a separate process speaking NDJSON on stdio);
the fake OpenAI-compatible model server runs in this test process and is scripted per prompt.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.mcp_gateway.conftest import SERVERS
from tests.peers import npm_package_dir, python_peer
from tests.router_core.llm_servers import Call, Reply, openai_server

REPO = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).parent / "peers"
AGENT = [str(Path(sys.executable).with_name("junction")), "--mode", "stdio", "--config"]
"""What an IDE runs (the config path follows)."""


def write_config(tmp_path: Path, model_url: str) -> Path:
    path = tmp_path / "junction.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'sessions.db'}"},
                "backends": {
                    "fake": {"type": "openai", "url": f"{model_url}/v1", "models": ["m1"]}
                },
                "acp": {"default_model": "m1"},
                "logging": {"level": "warning"},
            }
        )
    )
    return path


async def run(argv: list[str], cwd: Path = REPO) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode(errors="replace")[-4000:]
    report: dict[str, Any] = json.loads(out)
    return report


async def run_python_sdk(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    spec_path = tmp_path / f"spec-{spec['phase']}.json"
    spec_path.write_text(json.dumps({"workdir": str(REPO), **spec}))
    return await run(
        [str(python_peer("agent-client-protocol")), str(PEERS / "sdk_client.py"), str(spec_path)]
    )


def kinds(updates: list[dict[str, Any]]) -> list[str]:
    return [u["sessionUpdate"] for u in updates]


def text(updates: list[dict[str, Any]], kind: str = "agent_message_chunk") -> str:
    return "".join(u["content"]["text"] for u in updates if u["sessionUpdate"] == kind)


async def test_python_sdk_client_full_session_and_load_after_restart(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    notes = project / "notes.txt"
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(text="Hello from the model", chunk_size=4),
                Reply(
                    tool_calls=[Call("write_text_file", {"path": str(notes), "content": "v2\n"})]
                ),
                Reply(tool_calls=[Call("read_text_file", {"path": "notes.txt"})]),
                Reply(text="Edited."),
                Reply(text="x" * 3000, chunk_size=1, chunk_delay=0.005),
                Reply(tool_calls=[Call("ok__echo", {"message": "through a real MCP server"})]),
                Reply(text="Back again."),
            ]
        )
        config = write_config(tmp_path, server.url)
        agent = [*AGENT, str(config)]
        first = await run_python_sdk(
            tmp_path, {"agent": agent, "cwd": str(project), "phase": "first"}
        )
        mcp = {"name": "ok", "command": sys.executable, "args": [SERVERS, "ok"]}
        second = await run_python_sdk(
            tmp_path,
            {
                "agent": agent,
                "cwd": str(project),
                "phase": "second",
                "session": first["session"],
                "mcp": mcp,
            },
        )

    # initialize and session/new, as the SDK parsed them
    assert first["init"]["protocolVersion"] == 1
    assert first["init"]["agentCapabilities"]["loadSession"] is True
    assert first["init"]["agentInfo"]["name"] == "junction"
    model = next(o for o in first["new"]["configOptions"] if o["id"] == "model")
    assert model["category"] == "model" and model["currentValue"] == "m1"
    assert first["stops"] == ["end_turn", "end_turn", "cancelled"]

    # a prompt with streamed text
    hello = first["hello_updates"]
    assert text(hello) == "Hello from the model"
    assert kinds(hello).count("agent_message_chunk") == 5

    # a tool call with a permission round trip, fs write and read through the client
    assert len(first["permissions"]) == 1
    assert first["permissions"][0]["toolCall"]["kind"] == "edit"
    assert first["permissions"][0]["options"] == [
        "allow_once",
        "allow_always",
        "reject_once",
        "reject_always",
    ]
    assert first["writes"] == [str(notes)] and notes.read_text() == "v2\n"
    assert str(notes) in first["reads"]
    edit = first["edit_updates"]
    statuses = [
        u.get("status") for u in edit if u["sessionUpdate"] in ("tool_call", "tool_call_update")
    ]
    assert statuses == [
        "pending",
        "in_progress",
        "completed",
        "pending",
        "in_progress",
        "completed",
    ]
    assert text(edit) == "Edited."

    # a cancel mid-stream
    cancelled = text(first["cancel_updates"])
    assert 0 < len(cancelled) < 3000

    # load after restart: the history comes back, then the conversation goes on
    assert [s["sessionId"] for s in second["listed"]["sessions"]] == [first["session"]]
    replayed = [u for u in second["replayed"] if u["sessionUpdate"] != "available_commands_update"]
    assert kinds(replayed)[:2] == ["user_message_chunk", "agent_message_chunk"]
    assert text(replayed, "user_message_chunk") == "helloedit the filelong story"
    assert text(replayed).startswith("Hello from the modelEdited.")
    assert [u["status"] for u in replayed if u["sessionUpdate"] == "tool_call"] == [
        "completed",
        "completed",
    ]
    assert second["stop"] == "end_turn"
    assert text(second["after"]) == "Back again."
    # a tool call on a real MCP server (session-scoped, from session/load), after permission
    assert [p["toolCall"]["title"] for p in second["permissions"]] == ["ok__echo"]
    done = [
        u
        for u in second["after"]
        if u["sessionUpdate"] == "tool_call_update" and u.get("status") == "completed"
    ]
    assert len(done) == 1 and "through a real MCP server" in json.dumps(done[0]["content"])
    last = server.chat_requests[-1].body["messages"]
    assert [m["content"] for m in last if m["role"] == "user"] == [
        "hello",
        "edit the file",
        "long story",
        "after restart",
    ]


async def test_typescript_sdk_client_initialize_and_prompt(tmp_path: Path) -> None:
    sdk = npm_package_dir("@agentclientprotocol/sdk")
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="Hi from TypeScript land", chunk_size=5)])
        config = write_config(tmp_path, server.url)
        spec = {
            "sdk": str(sdk / "dist" / "v1" / "stable" / "acp.js"),
            "agent": [*AGENT, str(config)],
            "cwd": str(tmp_path),
            "workdir": str(REPO),
        }
        spec_path = tmp_path / "ts-spec.json"
        spec_path.write_text(json.dumps(spec))
        report = await run(["node", str(PEERS / "ts_client.mjs"), str(spec_path)])
    assert report["init"]["protocolVersion"] == 1
    assert report["init"]["agentCapabilities"]["loadSession"] is True
    assert report["stopReason"] == "end_turn"
    assert "".join(report["chunks"]) == "Hi from TypeScript land"
