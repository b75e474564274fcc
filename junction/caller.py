"""Who a request is for, below the HTTP layer: the limits of the API key it came with.

The access guard (`junction.http.security`) puts a key's grant in the ASGI `scope["state"]` and
in `CALLER` for the request's duration; adapters that act for the caller in-process (Junction's
own A2A agent, reached from the hub, an `a2a__` MCP tool or an ACP session; the key limits on a
remote ACP connection) read it here without depending on HTTP.

A grant is plain data: `principal` (the key's name), `scopes` (frozenset of surfaces) and
`allowed_mcp_tools`, `allowed_a2a_agents`, `allowed_models` (tuples of `fnmatch` globs, or None
when the key is not limited).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from fnmatch import fnmatchcase
from typing import Any, Literal

LimitKind = Literal["mcp_tools", "a2a_agents", "models"]

CALLER: ContextVar[Mapping[str, Any] | None] = ContextVar("junction_caller", default=None)
"""The grant of the API key whose request is being served; None: no key."""


def allows(state: Mapping[str, Any], kind: LimitKind, name: str) -> bool:
    """Whether the caller with this grant may use the named tool, agent or model."""
    globs = state.get(f"allowed_{kind}")
    return globs is None or any(fnmatchcase(name, glob) for glob in globs)


__all__ = ["CALLER", "LimitKind", "allows"]
