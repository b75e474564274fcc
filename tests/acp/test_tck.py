"""The official ACP conformance kit (`agentclientprotocol/acp-tck`, v1 suite) against Junction.

`.ci/peers.d/acp-tck.sh` installs the vendored kit into `$JUNCTION_CI_CACHE/acp-tck`. The kit
spawns the agent once per check, as an editor does (`junction --mode stdio`), with the scripted
model server of this test process as its one backend. The same kit also runs against its own
fixture agent that advertises every v1 capability (the "direct" run, in parallel): what that
agent passes, Junction passes too, unless Junction does not advertise the capability (then the
kit skips the check; `NOT_ADVERTISED` says why for each). No tier may have a failure.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.peers import cache_dir
from tests.router_core.llm_servers import Received, Reply, openai_server

CANCEL_PROMPT = "TCK: write a long answer (this one is cancelled)"
"""The kit's cancel checks send this; the model streams slowly so the cancel lands mid-turn."""

NOT_ADVERTISED = {
    "ACP-PROMPTCAP-002": "audio prompts: no configured backend type takes audio input",
    "ACP-AUTH-004": "logout: stdio Junction has nothing to log in to (see docs/ide.md)",
}
"""Checks the fixture agent passes that the kit skips for Junction, and why."""

JUNCTION_COUNTS = {
    "MANDATORY": {"PASS": 21, "FAIL": 0, "SKIPPED": 0, "NOT_TESTED": 0},
    "CAPABILITY": {"PASS": 16, "FAIL": 0, "SKIPPED": 3, "NOT_TESTED": 0},
    "ADVISORY": {"PASS": 12, "FAIL": 0, "SKIPPED": 0, "NOT_TESTED": 0},
    "INFORMATIONAL": {"PASS": 4, "FAIL": 0, "SKIPPED": 0, "NOT_TESTED": 0},
}
"""Junction's measured counts per tier, exactly (a check that stops passing fails the test)."""


def kit() -> tuple[Path, Path]:
    """The kit's `acp-tck` command and its fixture agents' folder, or a failure saying how to
    install them."""
    root = cache_dir() / "acp-tck"
    command = root / "venv" / "bin" / "acp-tck"
    fixtures = root / "src" / "tests" / "fixtures" / "agents" / "v1"
    if not command.exists() or not fixtures.is_dir():
        pytest.fail(
            f"the ACP conformance kit is not installed under {root}: run `bash .ci/run` once "
            "(it sources .ci/peers.d/acp-tck.sh)"
        )
    return command, fixtures


def answer(received: Received) -> Reply:
    """The model's answer: slow for the kit's cancel prompt, short otherwise."""
    messages = received.body.get("messages") or [{}]
    if CANCEL_PROMPT in json.dumps(messages[-1].get("content")):
        return Reply(text="x" * 3000, chunk_size=1, chunk_delay=0.01)
    return Reply(text="ok")


def junction_config(tmp_path: Path, model_url: str) -> Path:
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


async def run_kit(report: Path, agent: list[str]) -> str:
    """Run the whole v1 suite against `agent`, writing its JSON report; the kit's output."""
    command, _ = kit()
    process = await asyncio.create_subprocess_exec(
        str(command),
        "--report-json",
        str(report),
        "--cancel-prompt",
        CANCEL_PROMPT,
        "--",
        *agent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 280)
    return output.decode(errors="replace")


def read_report(report: Path, output: str) -> dict[str, Any]:
    assert report.exists(), output[-6000:]
    result: dict[str, Any] = json.loads(report.read_text())
    result["output"] = output
    return result


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["requirements"]}


def failures(report: dict[str, Any]) -> str:
    """Each failed requirement with its tests' messages."""
    return "\n".join(
        f"{r['id']} ({r['tier']}): " + " | ".join(t["message"][:600] for t in r["tests"])
        for r in report["requirements"]
        if r["status"] == "FAIL"
    )


@pytest.mark.timeout(300)
async def test_acp_tck_junction_passes_what_the_fixture_agent_passes(tmp_path: Path) -> None:
    _, fixtures = kit()
    async with openai_server(models=["m1"]) as server:
        server.default = answer
        config = junction_config(tmp_path, server.url)
        junction = [str(Path(sys.executable).with_name("junction")), "--mode", "stdio"]
        direct_output, junction_output = await asyncio.gather(
            run_kit(
                tmp_path / "direct.json", [sys.executable, str(fixtures / "conforming_full.py")]
            ),
            run_kit(tmp_path / "junction.json", [*junction, "--config", str(config)]),
        )
    direct = read_report(tmp_path / "direct.json", direct_output)
    through = read_report(tmp_path / "junction.json", junction_output)
    direct_counts = direct["verdict"]["tier_counts"]
    junction_counts = through["verdict"]["tier_counts"]
    for tier in JUNCTION_COUNTS:
        print(f"acp-tck {tier:<13} direct {direct_counts[tier]}  junction {junction_counts[tier]}")
    print(
        "passed:",
        Counter(statuses(direct).values())["PASS"],
        "direct,",
        Counter(statuses(through).values())["PASS"],
        "junction",
    )

    assert direct["verdict"]["conformant"], failures(direct) or direct["output"][-4000:]
    assert not failures(through), failures(through)
    assert through["verdict"]["conformant"], through["output"][-4000:]
    lost = {
        rid: status
        for rid, status in statuses(through).items()
        if statuses(direct).get(rid) == "PASS" and status != "PASS" and rid not in NOT_ADVERTISED
    }
    assert not lost, lost
    for rid in NOT_ADVERTISED:
        assert statuses(through)[rid] == "SKIPPED", (rid, statuses(through)[rid])
    assert junction_counts == JUNCTION_COUNTS
