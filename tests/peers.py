"""Where the third-party peers that `.ci/run` installs live, so tests can launch them.

They are installed under the CI cache directory (not in the repo): npm packages in `npm/`, Python
peers each in a venv of its own under `peers/`. Run `bash .ci/run` once before running pytest
directly.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    explicit = os.environ.get("JUNCTION_CI_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "junction-ci"


def _must_exist(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} is not installed at {path}: run `bash .ci/run` once")
    return path


def npm_bin(name: str) -> Path:
    """An executable from an npm peer, e.g. `mcp-server-everything`."""
    return _must_exist(cache_dir() / "npm" / "node_modules" / ".bin" / name, f"npm peer {name}")


def npm_package_dir(package: str) -> Path:
    """An npm peer's package directory, e.g. `@agentclientprotocol/sdk`."""
    return _must_exist(cache_dir() / "npm" / "node_modules" / package, f"npm peer {package}")


def python_peer(name: str) -> Path:
    """The Python interpreter of a peer's own venv: `mcp-server-time`, `a2a-sdk`, `agent-client-protocol`."""
    return _must_exist(cache_dir() / "peers" / name / "bin" / "python", f"Python peer {name}")
