"""The official MCP conformance suite, run against one fixture server directly and through Junction.

`@modelcontextprotocol/conformance` (installed by .ci/peers.d/mcp-conformance.sh, pinned there) is
run in `server` mode: 0.1.x at `--spec-version 2025-11-25`, 0.2 at `--suite all --spec-version
2026-07-28`. The same fixture (tests/fixtures/mcp_conformance_server.py) is called directly and
through `junction --mode serve`'s `/mcp` with it as the one upstream (`prefix: never`), over
Streamable HTTP and over stdio. A gateway is lossless when the counts through it equal the direct
ones; `LOSSES` holds what is still lost (the counts measured through Junction), so that a
regression fails as surely as a fix that is not recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_serve_mode import Served, start, stop

FIXTURE = str(Path(__file__).parent / "fixtures" / "mcp_conformance_server.py")
SUITES = {
    "2025-11-25": ("v1", ["--spec-version", "2025-11-25"]),
    "2026-07-28": ("v2", ["--suite", "all", "--spec-version", "2026-07-28"]),
}
# (suite, upstream transport) -> (passed, failed) through Junction while it is not yet lossless;
# empty since every count through Junction equals the direct one (both suites, both upstreams).
LOSSES: dict[tuple[str, str], tuple[int, int]] = {}


def kit() -> Path:
    """Where the CI script installed the suites and a Node that runs them."""
    root = (
        Path(os.environ.get("JUNCTION_CI_CACHE", Path.home() / ".cache" / "junction-ci"))
        / "mcp-conformance"
    )
    for part in (
        "node/bin/node",
        *(
            f"{v}/node_modules/@modelcontextprotocol/conformance/dist/index.js"
            for v in ("v1", "v2")
        ),
    ):
        if not (root / part).exists():
            pytest.fail(
                f"the MCP conformance suite is not installed ({root / part} is missing): "
                "run `bash .ci/run` once, or source .ci/peers.d/mcp-conformance.sh with $cache set"
            )
    return root


@dataclass(frozen=True)
class Outcome:
    passed: int
    failed: int
    failures: frozenset[str]
    """`scenario/check-id` of each check that failed."""


def failed_checks(out: Path) -> frozenset[str]:
    """`scenario/check-id` of each failed check in a run's output folder (one checks.json a scenario)."""
    failures = set()
    for checks in out.glob("*/checks.json"):
        scenario = re.sub(r"-\d{4}-\d\d-\d\dT.*", "", checks.parent.name.removeprefix("server-"))
        for check in json.loads(checks.read_text()):
            if check.get("status") == "FAILURE":
                failures.add(f"{scenario}/{check['id']}")
    return frozenset(failures)


async def run_suite(suite: str, url: str, out: Path) -> Outcome:
    """One run of the suite against `url`: the totals it prints and the checks that failed."""
    root = kit()
    line, args = SUITES[suite]
    cli = root / line / "node_modules/@modelcontextprotocol/conformance/dist/index.js"
    process = await asyncio.create_subprocess_exec(
        str(root / "node/bin/node"),
        str(cli),
        "server",
        "--url",
        url,
        *args,
        "--output-dir",
        str(out),
        cwd=out.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    printed = (await process.communicate())[0].decode()
    totals = re.search(r"Total: (\d+) passed, (\d+) failed", printed)
    assert totals, f"the suite printed no totals:\n{printed[-4000:]}"
    return Outcome(int(totals.group(1)), int(totals.group(2)), failed_checks(out))


async def fixture_over_http() -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, FIXTURE, "http", stdin=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, "the conformance fixture exited before listening"
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                # Keep reading its log, or a chatty run fills the pipe and the fixture stalls.
                drain = asyncio.ensure_future(_drain(process.stderr))
                _DRAINS.add(drain)
                drain.add_done_callback(_DRAINS.discard)
                return process, found.group(1)


_DRAINS: set[asyncio.Future[None]] = set()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


@pytest.fixture
async def upstream_url() -> AsyncIterator[str]:
    process, url = await fixture_over_http()
    yield url
    process.terminate()
    await process.wait()


async def through_junction(tmp_path: Path, upstream: str) -> Served:
    entry = (
        f"{{url: '{upstream}'}}"
        if upstream.startswith("http")
        # The fixture keeps no state between calls: a second process may serve 2025-11-25 clients.
        else f"{{command: {sys.executable!r}, args: [{FIXTURE!r}, stdio], legacy_session: true}}"
    )
    return await start(tmp_path, f"mcp: {{prefix: never}}\nmcp_servers:\n  conformance: {entry}\n")


async def test_the_conformance_suites_pass_through_junction_as_they_pass_direct(
    tmp_path: Path, upstream_url: str
) -> None:
    kit()
    (tmp_path / "http").mkdir()
    (tmp_path / "stdio").mkdir()
    over_http = await through_junction(tmp_path / "http", upstream_url)
    over_stdio = await through_junction(tmp_path / "stdio", "stdio")
    targets = {
        "direct": upstream_url,
        "http": f"{over_http.base}/mcp",
        "stdio": f"{over_stdio.base}/mcp",
    }
    try:

        async def one_after_another(suite: str) -> list[Outcome]:
            # One run of a suite at a time: its list-change checks wait on notifications, and
            # a loaded machine turns them into warnings. The two suites run side by side.
            return [
                await run_suite(suite, url, tmp_path / f"{suite}-{target}")
                for target, url in targets.items()
            ]

        done = await asyncio.gather(*(one_after_another(suite) for suite in SUITES))
        outcomes = {
            (suite, target): outcome
            for suite, runs in zip(SUITES, done, strict=True)
            for target, outcome in zip(targets, runs, strict=True)
        }
    finally:
        await stop(over_http)
        await stop(over_stdio)
    report = []
    for suite in SUITES:
        direct = outcomes[suite, "direct"]
        for upstream in ("http", "stdio"):
            got = outcomes[suite, upstream]
            lost = sorted(got.failures - direct.failures)
            report.append(
                f"{suite} via {upstream}: {got.passed} passed, {got.failed} failed "
                f"(direct {direct.passed}/{direct.failed}); lost: {', '.join(lost) or 'nothing'}"
            )
    print("\n".join(report))
    for suite in SUITES:
        direct = outcomes[suite, "direct"]
        assert direct.failed == 0, (
            f"the fixture fails the {suite} suite directly: {sorted(direct.failures)}"
        )
        for upstream in ("http", "stdio"):
            got = outcomes[suite, upstream]
            want = LOSSES.get((suite, upstream), (direct.passed, direct.failed))
            assert (got.passed, got.failed) == want, "\n".join(report)
