"""`junction.version.__version__`: the installed distribution's version, else pyproject's."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from junction import version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_version_is_the_installed_distributions() -> None:
    assert version.__version__ == metadata.version("junction-hub")


def test_a_source_tree_without_metadata_reads_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    expected = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    assert version._read_version() == expected


def test_without_metadata_or_pyproject_the_version_says_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    monkeypatch.setattr(version, "_PYPROJECT", tmp_path / "absent.toml")
    assert version._read_version() == "0+unknown"
