"""The CLI as a person meets it: `--version`, help that explains the modes and commands and
says which config file is in effect, and one help per command and per mode; all of it fits 80
columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from junction.version import __version__

JUNCTION = str(Path(sys.executable).with_name("junction"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JUNCTION_CONFIG"}
    env["COLUMNS"] = "80"
    return subprocess.run(
        [JUNCTION, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"junction {__version__}"


def test_the_help_explains_modes_commands_and_the_config_in_effect(tmp_path: Path) -> None:
    bare = run("--help", cwd=tmp_path)
    assert bare.returncode == 0
    for word in ("--mode stdio", "--mode serve", "check", "backends", "demo"):
        assert word in bare.stdout
    assert "embedded defaults" in bare.stdout
    (tmp_path / "junction.yaml").write_text("{}\n")
    found = run("--help", cwd=tmp_path)
    assert "config in effect without --config: junction.yaml" in found.stdout
    assert max(len(line) for line in bare.stdout.splitlines()) <= 80


@pytest.mark.parametrize(
    ("args", "has", "lacks"),
    [
        (("check", "--help"), "--json", "--port"),
        (("backends", "-h"), "--json", "--connect"),
        (("--mode", "serve", "--help"), "--port", "--json"),
        (("--mode=bridge", "--help"), "--connect", "--port"),
        (("--mode", "stdio", "--help"), "--config", "--port"),
    ],
)
def test_each_command_and_mode_has_its_own_help(
    args: tuple[str, ...], has: str, lacks: str
) -> None:
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: junction ")
    assert has in done.stdout and lacks not in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
