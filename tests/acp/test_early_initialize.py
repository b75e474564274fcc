"""`junction --mode stdio` answers `initialize` before the CLI loads (`junction.modes.acp_early`):
once, the same answer the agent gives, and everything after it reaches the agent as usual.

The real console script runs as a child process on pipes, as an editor starts it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.acp.wire import agent, agent_config
from tests.router_core.llm_servers import Reply, openai_server

JUNCTION = str(Path(sys.executable).with_name("junction"))
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": "init-1",
    "method": "initialize",
    "params": {"protocolVersion": 1, "clientCapabilities": {"fs": {"readTextFile": True}}},
}


def write_config(tmp_path: Path, model_url: str, **acp: Any) -> Path:
    path = tmp_path / "junction.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'j.db'}"},
                "backends": {
                    "fake": {"type": "openai", "url": f"{model_url}/v1", "models": ["m1"]}
                },
                "acp": {"default_model": "m1", **acp},
                "logging": {"level": "warning"},
            }
        )
    )
    return path


async def exchange(config: Path, messages: list[dict[str, Any]], wait_for: int) -> list[Any]:
    """Send `messages` in one write; read answers until `wait_for` responses have come."""
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "--mode",
        "stdio",
        "--config",
        str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    await process.stdin.drain()
    seen: list[Any] = []
    async with asyncio.timeout(60):
        while sum(1 for m in seen if "method" not in m) < wait_for:
            line = await process.stdout.readline()
            assert line, (await process.stderr.read()).decode(errors="replace")[-3000:]
            seen.append(json.loads(line))
        process.stdin.close()
        # Anything else the agent still says before it exits (a second initialize answer).
        seen.extend(json.loads(line) for line in (await process.stdout.read()).splitlines())
        await process.wait()
    return seen


async def test_initialize_is_answered_once_as_the_agent_answers_it(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        config = write_config(tmp_path, server.url, image_prompts=False)
        new = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "session/new",
            "params": {"cwd": str(tmp_path), "mcpServers": []},
        }
        seen = await exchange(config, [INITIALIZE, new], wait_for=2)
        async with agent(agent_config(server.url, tmp_path / "other.db")) as client:
            own = await client.call("initialize", INITIALIZE["params"])
    answers = [m for m in seen if "method" not in m]
    assert [m["id"] for m in answers] == ["init-1", 2]
    early = answers[0]["result"]
    assert early["agentCapabilities"]["promptCapabilities"]["image"] is False
    # The agent's own answer, from the same function, differs only by the config's setting.
    own["agentCapabilities"]["promptCapabilities"]["image"] = False
    assert early == own
    assert answers[1]["result"]["sessionId"].startswith("sess_")


async def test_a_first_line_that_is_not_initialize_goes_to_the_agent(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="hi")])
        config = write_config(tmp_path, server.url)
        prompt = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "session/prompt",
            "params": {"sessionId": "sess_nope", "prompt": [{"type": "text", "text": "hi"}]},
        }
        bad_version = {**INITIALIZE, "id": 2, "params": {"protocolVersion": "one"}}
        seen = await exchange(config, [prompt, bad_version, {**INITIALIZE, "id": 3}], wait_for=3)
    answers = {m["id"]: m for m in seen if "method" not in m}
    assert len([m for m in seen if "method" not in m]) == 3
    assert answers[1]["error"]["code"] == -32002  # no such session: the agent answered it
    assert answers[2]["error"]["code"] == -32602
    assert answers[3]["result"]["protocolVersion"] == 1


async def test_initialize_is_answered_before_the_configuration_loads(tmp_path: Path) -> None:
    """The answer needs nothing the configuration's validation decides, so an invalid file is
    reported after it (on stderr, exit code 2), as it would be after the handshake anyway."""
    config = tmp_path / "junction.yaml"
    config.write_text("backends: {local: {type: openai, url: 7}}\n")
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "--mode",
        "stdio",
        "--config",
        str(config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate(json.dumps(INITIALIZE).encode() + b"\n"), 60
    )
    answer = json.loads(out.splitlines()[0])
    assert answer["id"] == "init-1" and answer["result"]["protocolVersion"] == 1
    assert process.returncode == 2
    assert b"backends.local.url" in err
