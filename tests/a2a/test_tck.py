"""The official A2A TCK, run against one a2a-sdk agent directly and through Junction.

`a2aproject/a2a-tck` (branch 1.0-dev, the vendored archive; installed by .ci/peers.d/a2a-tck.sh)
is run unmodified, with its `run_tck.py`, against tests/a2a/peers/tck_agent.py (the TCK's own SUT
on the a2a-sdk the tests pin): directly, through `junction --mode serve`'s per-agent path
`/a2a/agents/tck`, and through the hub's root (its own card and `/a2a`) with the agent as the one
registered agent. Each run gets an agent and a Junction of its own, so that no run lists another's
tasks. A hub is lossless when no TCK test ends worse through it than direct: `LOSSES` names
those that still do, and `THROUGH` pins the counts measured through Junction, so that a
regression fails as surely as a fix that is not recorded. The counts are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from tests.a2a.harness import PEERS, free_port
from tests.peers import python_peer
from tests.test_serve_mode import JUNCTION, Served, stop

TARGETS = ("direct", "agent", "root")
DIRECT = (151, 5)
"""(passed, failed + errors) of the a2a-sdk agent itself. Its five failures are the SDK's (no
Cache-Control or Last-Modified on its card, `application/a2a+json` answers on HTTP+JSON, -32700
instead of -32005 for a body whose Content-Type is not JSON), and the hub passes them."""
THROUGH: dict[str, tuple[int, int]] = {"agent": (157, 0), "root": (170, 0)}
"""The same counts through Junction, measured: pinned exactly, so a regression fails. The
hub's root runs more tests than direct: its card offers push notifications (webhooks are
registered by URL and judged at delivery) and an extended card, which the agent's does not."""
LOSSES: dict[str, frozenset[str]] = {}
"""TCK tests that end worse through Junction than direct (failed or error where direct did
not); none today."""


def kit() -> Path:
    """Where .ci/peers.d/a2a-tck.sh extracted the TCK (`src/`) and its venv (`venv/`)."""
    root = Path(os.environ.get("JUNCTION_CI_CACHE", Path.home() / ".cache" / "junction-ci"))
    root /= "a2a-tck"
    for part in ("venv/bin/python", "src/run_tck.py"):
        if not (root / part).exists():
            pytest.fail(
                f"the A2A TCK is not installed ({root / part} is missing): run `bash .ci/run` "
                "once, or source .ci/peers.d/a2a-tck.sh with $cache and $JUNCTION_SHARED set"
            )
    return root


@dataclass(frozen=True)
class Outcome:
    counts: Counter[str]
    """How many TCK tests ended each way: passed, failed, error, skipped, xfailed."""
    results: dict[str, str]
    """Each test's outcome by its name (`Class::test[transport]`)."""

    @property
    def passed(self) -> int:
        return self.counts["passed"]

    @property
    def failed(self) -> int:
        return self.counts["failed"] + self.counts["error"]

    def summary(self) -> str:
        return ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))


def outcomes(junit: Path) -> Outcome:
    """Each test's outcome from the JUnit XML that run_tck.py writes."""
    results = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rpartition('.')[2]}::{case.get('name')}"
        kinds = {child.tag: child.get("type", "") for child in case}
        if "error" in kinds:
            results[name] = "error"
        elif "failure" in kinds:
            results[name] = "failed"
        elif "skipped" in kinds:
            results[name] = "xfailed" if kinds["skipped"] == "pytest.xfail" else "skipped"
        else:
            results[name] = "passed"
    return Outcome(Counter(results.values()), results)


async def run_tck(url: str, out: Path) -> Outcome:
    """One unmodified run of the TCK against `url`; reports go to `out`, not into the kit."""
    root = kit()
    process = await asyncio.create_subprocess_exec(
        str(root / "venv/bin/python"),
        "run_tck.py",
        "--sut-host",
        url,
        "--",
        f"--junitxml={out / 'junit.xml'}",
        f"--compatibility-report={out / 'compatibility'}",
        f"--html={out / 'report.html'}",
        "-p",
        "no:cacheprovider",
        cwd=root / "src",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    printed = (await process.communicate())[0].decode()
    assert (out / "junit.xml").exists(), f"the TCK wrote no results:\n{printed[-4000:]}"
    return outcomes(out / "junit.xml")


@asynccontextmanager
async def tck_agent() -> AsyncIterator[str]:
    """tests/a2a/peers/tck_agent.py in the a2a-sdk peer's venv; yields its base URL."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        str(python_peer("a2a-sdk")),
        str(PEERS / "tck_agent.py"),
        "--port",
        str(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert line.strip() == b"READY", f"the TCK agent did not start: {line!r}"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


@asynccontextmanager
async def junction_with(agent: str, tmp_path: Path) -> AsyncIterator[Served]:
    """`junction --mode serve` with `agent` registered as `tck`, up once `/health` answers; its
    log is drained (a full pipe would stall it) and the tail kept for a failure's message."""
    config = tmp_path / "junction.yaml"
    config.write_text(
        f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\na2a_agents:\n  tck: {{url: '{agent}'}}\n"
    )
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "--mode",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "JUNCTION_LOG_FORMAT": "plain"},
    )
    served = Served(process, f"http://127.0.0.1:{port}", port)
    tail: deque[str] = deque(maxlen=40)

    async def drain() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            tail.append(line.decode(errors="replace"))

    draining = asyncio.create_task(drain())
    try:
        async with httpx.AsyncClient(timeout=2) as http, asyncio.timeout(30):
            while process.returncode is None:
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{served.base}/health/live")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        assert process.returncode is None, "junction exited:\n" + "".join(tail)
        yield served
    finally:
        code = await stop(served)
        await draining
        assert code == 0, f"junction exited with {code}:\n" + "".join(tail)


def folders(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / name).mkdir()


@pytest.mark.timeout(360)  # three TCK runs in parallel: ~100 s on two idle cores, more when loaded
async def test_the_tck_passes_through_junction_as_it_passes_direct(tmp_path: Path) -> None:
    kit()
    folders(tmp_path, "j-agent", "j-root", *TARGETS)
    async with (
        tck_agent() as direct,
        tck_agent() as behind_path,
        tck_agent() as behind_root,
        junction_with(behind_path, tmp_path / "j-agent") as by_path,
        junction_with(behind_root, tmp_path / "j-root") as by_root,
    ):
        urls = {
            "direct": direct,
            "agent": f"{by_path.base}/a2a/agents/tck",
            "root": by_root.base,
        }
        runs = [run_tck(urls[target], tmp_path / target) for target in TARGETS]
        got = dict(zip(TARGETS, await asyncio.gather(*runs), strict=True))
    base = got["direct"]
    report = [f"direct: {base.summary()}"]
    lost: dict[str, set[str]] = {}
    for target in TARGETS[1:]:
        differs = sorted(
            f"{name} ({base.results.get(name)} -> {outcome})"
            for name, outcome in got[target].results.items()
            if outcome != base.results.get(name)
        )
        lost[target] = {
            name
            for name, outcome in got[target].results.items()
            if outcome in ("failed", "error") and base.results.get(name) not in ("failed", "error")
        }
        report.append(
            f"via {target}: {got[target].summary()}; differs: {', '.join(differs) or '-'}"
        )
    print("\n".join(report))
    assert (base.passed, base.failed) == DIRECT, "\n".join(report)
    for target in TARGETS[1:]:
        assert lost[target] == LOSSES.get(target, frozenset()), "\n".join(report)
        assert (got[target].passed, got[target].failed) == THROUGH[target], "\n".join(report)
