"""`junction demo` end to end, the bundled example servers, and every example config.

The demo runs in a subprocess exactly as a newcomer would run it: it must exit 0 and show the
three parts of its transcript, and leave no process behind. The example configs are loaded with
`load_config` so they cannot silently rot as the configuration grows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from types import ModuleType

import pytest

from junction.cli.demo import examples_dir
from junction.config import load_config, load_mcp_servers_file

EXAMPLES = examples_dir()
REPO = EXAMPLES.parent
DEMO_TIMEOUT = 150.0
"""Generous: the demo's own limit is 120 s and it usually takes a few seconds."""

JUNCTION = str(Path(sys.executable).with_name("junction"))


def _processes_with(marker: str) -> list[str]:
    """Processes whose environment carries `marker` (every child of the demo inherits it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if marker.encode() in environ:
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def test_the_demo_runs_one_acp_session_end_to_end(tmp_path: Path) -> None:
    marker = f"JUNCTION_DEMO_TEST={uuid.uuid4().hex}"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OLLAMA_HOST", "JUNCTION_CONFIG")
    }
    env["JUNCTION_DEMO_TEST"] = marker.split("=", 1)[1]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    # A broken config where the user stands must not matter: the demo brings its own.
    (tmp_path / "junction.yaml").write_text("this: [is not valid\n")
    done = subprocess.run(
        [JUNCTION, "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )
    out = done.stdout
    assert done.returncode == 0, f"stdout:\n{out}\nstderr:\n{done.stderr}"
    # Plain text when stdout is not a terminal: no escape sequences.
    assert "\x1b[" not in out
    assert "SCRIPTED demo model, not an LLM" in out
    assert out.count("[scripted demo model]") >= 6  # every model reply says what it is
    # 1. An MCP tool: the notes server's word_count, called through the gateway.
    assert "tool call notes__word_count" in out
    assert "✓ notes__word_count: completed" in out
    assert "9 words, 50 characters, 1 line" in out
    # 2. The A2A agent: its streamed progress and its plan come back as the tool's result.
    assert "tool call Ask agent planner" in out
    assert "Reading the request and drafting a plan" in out
    assert "✓ Ask agent planner: completed" in out
    assert "Plan for: adding a dark mode to the settings page" in out
    # 3. The write: permission asked, "allow once" chosen, the editor wrote the file.
    assert "? permission requested: Write PLAN.md [edit]" in out
    assert "the demo answers: Allow once" in out
    assert "the editor wrote PLAN.md" in out
    assert "✓ Write PLAN.md: completed" in out
    written = out.split("PLAN.md in the workspace now reads", 1)[1]
    assert "1. Agree on what done looks like" in written
    assert out.count("stop reason: end_turn") == 3
    assert "Done: 3 prompts" in out
    # Nothing the demo started outlives it.
    assert _processes_with(marker) == []


def _required_vars(text: str) -> set[str]:
    """`${VAR}` references without a default: the variables a config needs to be set."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_loads(path: Path) -> None:
    env = {name: f"test-{name.lower()}" for name in _required_vars(path.read_text())}
    config = load_config(path, env)
    assert config.backends, "an example without a backend shows nothing"
    for name in env:  # and without its variables, the error names them
        with pytest.raises(Exception, match=name):
            load_config(path, {k: v for k, v in env.items() if k != name})


def test_the_example_configs_say_what_they_promise() -> None:
    local = load_config(EXAMPLES / "local-vllm-ollama.yaml", {})
    assert {b.type for b in local.backends.values()} == {"openai", "ollama"}
    assert local.server.host == "127.0.0.1" and not local.server.api_keys
    assert local.routing.fallbacks and local.routing.aliases
    team_yaml = EXAMPLES / "team-gateway.yaml"
    team = load_config(team_yaml, {v: "k-" + v for v in _required_vars(team_yaml.read_text())})
    assert team.server.host == "0.0.0.0"
    grants = team.server.key_grants()
    assert len(grants) == 3 and all(g.key.startswith("k-") for g in grants)
    assert any(set(g.scopes) == {"admin", "metrics"} for g in grants)
    assert team.mcp_servers and team.a2a_agents


@pytest.mark.parametrize("name", ["claude-desktop.json", "cursor-mcp.json"])
def test_mcp_client_configs_launch_junction_in_mcp_mode(name: str) -> None:
    path = EXAMPLES / name
    entry = json.loads(path.read_text())["mcpServers"]["junction"]
    assert entry["command"] == "junction"
    assert entry["args"][:2] == ["--mode", "mcp"]
    servers = load_mcp_servers_file(path)  # the common mcpServers shape Junction reads too
    assert list(servers) == ["junction"]


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_the_example_a2a_agent_speaks_a2a_1_0_to_junctions_client() -> None:
    from a2a import A2aClient, A2aError
    from router_core.http import close_session
    from tests.transports.servers import serve_app

    agent = _example("a2a_agent")
    async with serve_app(agent.create_app(step_delay=0.01)) as url:
        client = A2aClient(url)
        try:
            card = await client.card()
            assert card["supportedInterfaces"][0]["protocolVersion"] == "1.0"
            assert [s["id"] for s in await client.skills()] == ["plan"]
            sent = await client.send("ship it")
            task = sent["task"]
            assert task["status"]["state"] == "TASK_STATE_COMPLETED"
            assert "Plan for: ship it" in task["artifacts"][0]["parts"][0]["text"]
            got = await client.get_task(task["id"], history_length=0)
            assert got["id"] == task["id"] and got["history"] == []
            with pytest.raises(A2aError) as not_cancelable:
                await client.cancel_task(task["id"])
            assert not_cancelable.value.code == -32002
            with pytest.raises(A2aError) as unknown:
                await client.get_task("no-such-task")
            assert unknown.value.code == -32001
            async with await client.stream("plan a release") as stream:
                kinds = [next(iter(event)) for event in [e async for e in stream]]
            assert kinds[0] == "task" and kinds[-1] == "statusUpdate"
            assert "artifactUpdate" in kinds
            started = await client.send("slow one", return_immediately=True)
            cancelled = await client.cancel_task(started["task"]["id"])
            assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
        finally:
            await close_session()


def test_a_demo_that_cannot_run_says_why_and_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import junction.cli.demo
    from junction.config import JunctionConfig

    monkeypatch.setattr(junction.cli.demo, "examples_dir", lambda: tmp_path / "nowhere")
    assert junction.cli.demo.run_demo(JunctionConfig()) == 1
    assert "junction demo failed: the bundled examples are missing" in capsys.readouterr().out
