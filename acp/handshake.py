"""The `initialize` answer as plain JSON, built without pydantic or the transports.

`junction --mode stdio` answers an editor's `initialize` from this before anything else loads
(`junction.modes.acp_early`), and every connection answers it from this too, so the two
answers cannot differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_NAME = "junction"
DEFAULT_TITLE = "Junction"


def initialize_result(
    *,
    name: str = DEFAULT_NAME,
    title: str = DEFAULT_TITLE,
    version: str,
    image: bool = True,
    auth_methods: Sequence[Mapping[str, Any]] = (),
    logout: bool = False,
) -> dict[str, Any]:
    """What the agent offers every client: sessions that load, list, resume, close and delete;
    prompts with embedded context (and images unless turned off); MCP servers over HTTP and
    SSE; `authMethods` (and `logout`) only where there is something to log in to."""
    capabilities: dict[str, Any] = {
        "loadSession": True,
        "promptCapabilities": {"image": image, "audio": False, "embeddedContext": True},
        "mcpCapabilities": {"http": True, "sse": True},
        "sessionCapabilities": {
            "list": {},
            "resume": {},
            "close": {},
            "delete": {},
            "additionalDirectories": {},
        },
    }
    if logout:
        capabilities["auth"] = {"logout": {}}
    result: dict[str, Any] = {
        "protocolVersion": PROTOCOL_VERSION,
        "agentCapabilities": capabilities,
        "agentInfo": {"name": name, "title": title, "version": version},
    }
    if auth_methods:
        result["authMethods"] = [dict(method) for method in auth_methods]
    return result


__all__ = ["DEFAULT_NAME", "DEFAULT_TITLE", "PROTOCOL_VERSION", "initialize_result"]
