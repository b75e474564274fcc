"""File access confinement: the model may only touch files under the session's roots.

The roots are `cwd` plus `additionalDirectories`. A path is checked twice: lexically (no `..`
component may climb out, before anything touches the disk) and after resolving symlinks (a link
inside a root that points outside does not count as inside). Paths the client reads and writes
are absolute and normalised, as `fs/*` requires.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePosixPath


class PathDenied(ValueError):
    """A path outside the session's roots, or not usable as a file path."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class Roots:
    """The directories a session may read and write under."""

    def __init__(self, cwd: str, additional: Sequence[str] = ()) -> None:
        self.cwd = os.path.normpath(cwd)
        self.all = [self.cwd, *(os.path.normpath(d) for d in additional)]
        self._real = [os.path.realpath(root) for root in self.all]

    def resolve(self, path: str) -> str:
        """The absolute, normalised form of `path` (relative to cwd), or raise PathDenied."""
        if not isinstance(path, str) or not path.strip():
            raise PathDenied("the path is empty")
        if "\x00" in path:
            raise PathDenied("the path contains a NUL byte")
        if ".." in PurePosixPath(path).parts:
            raise PathDenied(f"{path}: '..' is not allowed in paths")
        absolute = os.path.normpath(path if os.path.isabs(path) else os.path.join(self.cwd, path))
        if not any(_inside(absolute, root) for root in self.all):
            raise PathDenied(f"{absolute} is outside the session's directories ({self.describe()})")
        real = os.path.realpath(absolute)
        if not any(_inside(real, root) for root in self._real):
            raise PathDenied(
                f"{absolute} resolves through a symlink to {real}, outside the session"
            )
        return absolute

    def describe(self) -> str:
        return ", ".join(self.all)


__all__ = ["PathDenied", "Roots"]
