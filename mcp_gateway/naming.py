"""Exposed names: `{server}{sep}{name}`, always `[A-Za-z0-9_-]{1,64}`, never a silent drop.

LLM APIs reject tool names outside `^[A-Za-z0-9_-]{1,64}$`, so a longer or otherwise invalid
name is sanitised and suffixed with a short hash of its (server, tool) identity: the result is
stable across restarts and across changes to other servers, and still routes to the tool.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable

from mcp_gateway.specs import PrefixMode

MAX_NAME = 64
VALID_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_INVALID_CHAR = re.compile(r"[^A-Za-z0-9_-]")
_HASH_LEN = 8


def stable_hash(*parts: str) -> str:
    """A short hex digest of the parts, the same on every run (unlike `hash()`)."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:_HASH_LEN]


def _hashed(candidate: str, identity: tuple[str, ...]) -> str:
    cleaned = _INVALID_CHAR.sub("_", candidate) or "tool"
    suffix = f"_{stable_hash(*identity)}"
    return cleaned[: MAX_NAME - len(suffix)] + suffix


def safe_name(candidate: str, identity: tuple[str, ...]) -> str:
    """`candidate` if it is a valid tool name, else a sanitised, hash-suffixed version of it."""
    if VALID_NAME.fullmatch(candidate):
        return candidate
    return _hashed(candidate, identity)


def assign_names(
    entries: Iterable[tuple[str, str]], *, prefix: PrefixMode, separator: str
) -> dict[tuple[str, str], str]:
    """Map each (server, name) to a unique, valid exposed name.

    Bare names are used when `prefix` allows and the name is unique across servers; a bare name
    two servers share is prefixed for both (even with `prefix: never`: dropping one would lose a
    tool). A name that still collides after sanitising gets its identity hash appended.
    """
    ordered = list(dict.fromkeys(entries))
    servers_per_name = Counter(name for _, name in {(s, n) for s, n in ordered})
    taken: set[str] = set()
    result: dict[tuple[str, str], str] = {}
    for server, name in ordered:
        bare = prefix == "never" or (prefix == "on_collision" and servers_per_name[name] == 1)
        if prefix == "never" and servers_per_name[name] > 1:
            bare = False
        candidate = name if bare else f"{server}{separator}{name}"
        identity = (server, name)
        exposed = safe_name(candidate, identity)
        if exposed in taken:
            exposed = _hashed(candidate, identity)
        attempt = 0
        while exposed in taken:  # two identities hashing alike: astronomically rare, still handled
            attempt += 1
            exposed = _hashed(candidate, (*identity, str(attempt)))
        taken.add(exposed)
        result[(server, name)] = exposed
    return result
