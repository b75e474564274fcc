"""Junction's version, the one copy: read once from the installed distribution's metadata
(`junction-hub`), so cards, `serverInfo` and `agentInfo` say what is actually installed."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

__all__ = ["__version__"]

_DISTRIBUTION = "junction-hub"
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _read_version() -> str:
    """The installed version; in a source tree never installed, the one pyproject.toml names."""
    try:
        return metadata.version(_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    try:
        version: str = tomllib.loads(_PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"
    return version


__version__ = _read_version()
