"""The schema: alembic's head is the version the stores check for, `junction migrate` brings
a database to it on either engine (and then finds it current), and an unreachable server is
one clear line and exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stores.schema import HEAD, head_revision, render

ROOT = Path(__file__).resolve().parent.parent


def _migrate(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "junction.yaml"
    config.write_text(f'store: {{url: "{url}"}}\n')
    return subprocess.run(
        [sys.executable, "-m", "junction", "migrate", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_the_version_the_stores_expect_is_alembics_head() -> None:
    assert head_revision() == HEAD


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_each_step_renders_for_each_engine(dialect: str) -> None:
    everything = render(dialect, None)
    assert "CREATE TABLE IF NOT EXISTS a2a_tasks" in everything
    assert "a2a_push_outbox" in everything
    assert f"version_num='{HEAD}'" in everything.replace(" = ", "=")
    assert "a2a_tasks" not in render(dialect, "0001")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'data' / 'junction.db'}"


def test_junction_migrate_brings_a_store_to_head_once(tmp_path: Path, url: str) -> None:
    first = _migrate(tmp_path, url)
    second = _migrate(tmp_path, url)
    assert first.returncode == 0, first.stderr
    assert f"migrated to schema {HEAD} (applied 0001, 0002)" in first.stdout
    assert second.returncode == 0
    assert f"schema {HEAD} is current; nothing to do" in second.stdout


def test_junction_migrate_on_a_server_that_is_down_says_so(tmp_path: Path) -> None:
    result = _migrate(tmp_path, "postgresql://postgres:hunter2@127.0.0.1:1/x")
    assert result.returncode == 1
    assert "migrate failed: the store at postgresql://postgres:***@127.0.0.1:1/x" in result.stderr
    assert "unavailable" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
