"""acpx (a headless ACP client from npm, run on Node 22 as its own process) drives
`junction --mode stdio` as it drives any agent: one-shot prompts with a tool call that runs a
shell line in acpx's terminal, answered by the scripted model server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.peers import cache_dir
from tests.router_core.llm_servers import Call, Reply, openai_server

JUNCTION = str(Path(sys.executable).with_name("junction"))


def acpx_argv() -> list[str]:
    node = cache_dir() / "mcp-conformance" / "node" / "bin" / "node"
    cli = cache_dir() / "acpx" / "node_modules" / "acpx" / "dist" / "cli.js"
    for path in (node, cli):
        assert path.exists(), f"{path} is missing: run .ci/run to install the peers"
    return [str(node), str(cli)]


async def acpx(tmp_path: Path, config: Path, *args: str) -> tuple[int, str, str]:
    agent = f"{JUNCTION} --mode stdio --config {config}"
    env = {**os.environ, "HOME": str(tmp_path / "home")}  # acpx keeps its state under HOME
    process = await asyncio.create_subprocess_exec(
        *acpx_argv(),
        "--agent",
        agent,
        "--cwd",
        str(tmp_path),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def write_config(tmp_path: Path, model_url: str) -> Path:
    path = tmp_path / "junction.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'j.db'}"},
                "backends": {
                    "fake": {"type": "openai", "url": f"{model_url}/v1", "models": ["m1"]}
                },
                "acp": {"default_model": "m1"},
                "logging": {"level": "warning"},
            }
        )
    )
    return path


def events(out: str) -> list[Any]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


async def test_acpx_runs_a_prompt_whose_shell_line_runs_in_its_terminal(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(
                    tool_calls=[Call("run_command", {"command": "echo hi from $0 | tr a-z A-Z"})]
                ),
                Reply(text="The command printed its line."),
            ]
        )
        config = write_config(tmp_path, server.url)
        code, out, err = await acpx(
            tmp_path, config, "--approve-all", "--format", "json", "exec", "say hi in the shell"
        )
    assert code == 0, err[-3000:]
    seen = events(out)  # acpx's JSON format: every ACP message of the run
    said = "".join(
        m["params"]["update"]["content"]["text"]
        for m in seen
        if m.get("method") == "session/update"
        and m["params"]["update"]["sessionUpdate"] == "agent_message_chunk"
    )
    assert said == "The command printed its line."
    assert {"jsonrpc": "2.0", "result": {"stopReason": "end_turn"}, "id": 2} in seen
    assert any(m.get("method") == "terminal/create" for m in seen)
    tool_results = [m for m in server.chat_requests[1].body["messages"] if m["role"] == "tool"]
    # `sh -c` ran the whole line in acpx's terminal: the pipe and $0 are the shell's.
    assert "HI FROM SH" in tool_results[0]["content"]
