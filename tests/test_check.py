"""`junction check`: the configuration is valid, and every configured upstream answers (or not)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from tests.a2a.harness import sdk_agent
from tests.mcp_gateway.conftest import SERVERS
from tests.router_core.llm_servers import openai_server

JUNCTION = str(Path(sys.executable).with_name("junction"))


async def check(tmp_path: Path, config: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "junction.yaml"
    path.write_text(config)
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "check",
        "--config",
        str(path),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_everything_reachable_exits_0(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as model:
        with sdk_agent("alpha", "1.0") as agent:
            code, out, err = await check(
                tmp_path,
                f"mcp_servers:\n  tools: {{command: {sys.executable}, args: [{SERVERS}, ok]}}\n"
                f"a2a_agents:\n  alpha: {{url: '{agent}'}}\n"
                f"backends:\n  fake: {{type: openai, url: '{model.url}/v1'}}\n",
                "--json",
            )
    assert code == 0, err
    report = json.loads(out)
    assert report["reachable"] is True
    checked = {(c["kind"], c["name"]): c for c in report["checked"]}
    assert set(checked) == {("mcp server", "tools"), ("a2a agent", "alpha"), ("backend", "fake")}
    assert all(c["ok"] for c in checked.values())
    assert checked[("backend", "fake")]["detail"] == "m1"  # models were discovered
    assert report["warnings"] == []


async def test_a_config_without_backends_warns_that_stdio_has_no_model(tmp_path: Path) -> None:
    code, out, _ = await check(tmp_path, "{}\n")
    assert code == 0
    assert "warning: no model backends" in " ".join(out.split())
    code, out, _ = await check(tmp_path, "{}\n", "--json")
    assert json.loads(out)["warnings"][0].startswith("no model backends")


async def test_anything_unreachable_exits_1_and_says_why(tmp_path: Path) -> None:
    code, out, _ = await check(
        tmp_path,
        "mcp_servers:\n  broken: {command: /nonexistent/bin}\n"
        "a2a_agents:\n  gone: {url: 'http://127.0.0.1:9'}\n"
        "backends:\n  nope: {type: openai, url: 'http://127.0.0.1:9/v1'}\n",
    )
    assert code == 1
    for name in ("broken", "gone", "nope"):
        assert name in out
    assert out.count("unreachable") == 3
    assert "command not found" in out


async def test_an_invalid_config_exits_2_before_probing(tmp_path: Path) -> None:
    code, out, err = await check(tmp_path, "backends:\n  x: {type: openai, url: nope}\n")
    assert code == 2
    assert "backends.x.url" in err and out == ""
