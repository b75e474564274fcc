"""`mcp_servers_file` and `--mcp-config`: the `mcpServers` JSON other tools write, read as is.

An existing Claude Desktop / Cursor / VS Code file works unchanged: keys that mean nothing
here are ignored, `type` becomes `transport`, and `disabled: true` entries are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from junction.config.errors import ConfigError, format_validation_error
from junction.config.mcp import McpServerConfig

__all__ = ["load_mcp_servers_file"]

_FOREIGN_MCP_KEYS = frozenset(
    {"disabled", "autoApprove", "alwaysAllow", "description", "envFile", "type", "name"}
)
_MCP_TYPES = {"stdio": None, "http": "streamable_http", "streamable-http": "streamable_http"}
_MCP_TYPES |= {"streamableHttp": "streamable_http", "sse": "sse"}


def load_mcp_servers_file(path: Path) -> dict[str, McpServerConfig]:
    """Read a JSON file in the common `mcpServers` shape (`servers` as VS Code writes it too).

    `type: sse` becomes `transport: sse`; `disabled: true` entries are skipped; keys other tools
    use (autoApprove, ...) are ignored. Errors are `<file>: mcpServers.<name>.<key>: ...` lines.
    """
    source = str(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid JSON: {exc}") from None
    key = "mcpServers" if isinstance(data, dict) and "mcpServers" in data else "servers"
    servers = data.get(key) if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        raise ConfigError(f"{source}: (top level): expected an object with an 'mcpServers' object")
    adapter: TypeAdapter[McpServerConfig] = TypeAdapter(McpServerConfig)
    result: dict[str, McpServerConfig] = {}
    errors: list[str] = []
    for name, entry in servers.items():
        if isinstance(entry, dict):
            if entry.get("disabled") is True:
                continue
            kind = entry.get("type")
            if kind is not None and kind not in _MCP_TYPES:
                errors.append(f"{source}: {key}.{name}.type: unknown server type {kind!r}")
                continue
            entry = _cleaned(entry, _MCP_TYPES.get(kind or ""))  # noqa: PLW2901
        try:
            result[name] = adapter.validate_python(entry)
        except ValidationError as exc:
            errors.extend(format_validation_error(exc, source, McpServerConfig, (key, name)))
    if errors:
        raise ConfigError(errors)
    return result


def _cleaned(entry: dict[str, Any], transport: str | None) -> dict[str, Any]:
    """The entry without other tools' keys, its `type` turned into our `transport`."""
    kept = {k: v for k, v in entry.items() if k not in _FOREIGN_MCP_KEYS}
    if transport and "transport" not in kept:
        kept["transport"] = transport
    return kept
