"""Which values of a configuration are secrets: hidden when it is shown, and collected so the
log filter can hide them wherever else they turn up. One rule (`_is_secret`) serves both."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from junction.logs import REDACTED
from router_core import redact_url

__all__ = ["redact", "secret_values"]

_SECRET_FIELDS = frozenset({"api_key", "api_keys"})
_SECRET_HEADER = re.compile(r"authorization|token|key|secret|cookie|password", re.IGNORECASE)
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)


def _is_secret(path: tuple[str, ...]) -> bool:
    """Whether the string at this key path is a secret (shared by redaction and collection)."""
    if not path:
        return False
    if path[-1] in _SECRET_FIELDS or (len(path) >= 2 and path[-2] == "api_keys"):
        return True
    if len(path) >= 3 and path[-3] == "api_keys" and path[-1] == "key":
        return True  # a scoped key: its `key`, not its name, scopes or globs
    if len(path) == 3 and path[:2] == ("telemetry", "headers"):
        return bool(_SECRET_HEADER.search(path[2]))
    if path == ("mcp", "token_store", "key"):
        return True
    if len(path) == 4 and path[0] == "mcp_servers" and path[2:] == ("auth", "client_secret"):
        return True
    if len(path) >= 4 and path[0] == "a2a_agents" and path[2] == "auth":
        return path[-1] in ("bearer", "api_key", "client_secret")
    if len(path) >= 4 and path[0] in ("mcp_servers", "a2a_agents", "backends"):
        if path[2] == "headers":
            return bool(_SECRET_HEADER.search(path[3]))
        if path[2] == "env":
            return bool(_SECRET_ENV.search(path[3]))
    return False


def redact(node: Any, path: tuple[str, ...] = ()) -> Any:
    """Dumped config data with every secret replaced by `***` (URLs through `redact_url`)."""
    if isinstance(node, dict):
        return {key: redact(value, (*path, str(key))) for key, value in node.items()}
    if isinstance(node, list):
        return [redact(value, (*path, str(i))) for i, value in enumerate(node)]
    if isinstance(node, str):
        if node and _is_secret(path):
            return REDACTED
        if path and path[-1] == "url":
            return redact_url(node)
    return node


def secret_values(node: Any) -> list[str]:
    """Every non-empty secret in dumped config data (URL passwords included)."""
    found: list[str] = []
    _collect(node, (), found)
    return found


def _collect(node: Any, path: tuple[str, ...], found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            _collect(value, (*path, str(key)), found)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _collect(value, (*path, str(i)), found)
    elif isinstance(node, str) and node:
        if _is_secret(path):
            found.append(node)
        elif path and path[-1] == "url":
            password = urlsplit(node).password
            if password:
                found.append(password)
