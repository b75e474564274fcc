"""`junction init`: write a starting configuration from what this machine already has: the MCP
servers of Claude Desktop, Cursor and VS Code, the model providers whose keys are in the
environment, and a local Ollama. Secrets are never copied: keys stay `${VARIABLE}` references,
and MCP servers' env and headers keep whatever form their file had."""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from junction.config import ConfigError, load_config, load_mcp_servers_file

OLLAMA_PROBE_SECONDS = 1.0


def mcp_files(home: Path) -> list[tuple[str, Path]]:
    """Where editors keep their `mcpServers` (the ones that exist)."""
    candidates = [
        ("Claude Desktop", home / ".config" / "Claude" / "claude_desktop_config.json"),
        (
            "Claude Desktop",
            home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json",
        ),
        ("Cursor", home / ".cursor" / "mcp.json"),
        ("VS Code", home / ".config" / "Code" / "User" / "mcp.json"),
        ("VS Code", home / "Library" / "Application Support" / "Code" / "User" / "mcp.json"),
    ]
    return [(tool, path) for tool, path in candidates if path.is_file()]


def _ollama_models(host: str) -> list[str] | None:
    """The models a local Ollama serves, or None when none answers quickly."""
    url = host if "://" in host else f"http://{host}"
    try:
        with urllib.request.urlopen(
            f"{url.rstrip('/')}/api/tags", timeout=OLLAMA_PROBE_SECONDS
        ) as r:
            doc = json.loads(r.read())
    except (OSError, ValueError):
        return None
    models = doc.get("models") if isinstance(doc, dict) else None
    return [str(m["name"]) for m in models or [] if isinstance(m, dict) and "name" in m]


def starting_config(home: Path, env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The configuration to write and one line per thing found."""
    found: list[str] = []
    backends: dict[str, Any] = {}
    if env.get("OPENAI_API_KEY"):
        backends["openai"] = {
            "type": "openai",
            "url": "${OPENAI_BASE_URL:-https://api.openai.com/v1}",
            "api_key": "${OPENAI_API_KEY}",
        }
        found.append("OPENAI_API_KEY: an OpenAI backend (the key stays in the environment)")
    if env.get("ANTHROPIC_API_KEY"):
        backends["anthropic"] = {
            "type": "anthropic",
            "url": "https://api.anthropic.com",
            "api_key": "${ANTHROPIC_API_KEY}",
        }
        found.append("ANTHROPIC_API_KEY: an Anthropic backend (the key stays in the environment)")
    host = env.get("OLLAMA_HOST") or "127.0.0.1:11434"
    models = _ollama_models(host)
    if models is not None:
        url = host if "://" in host else f"http://{host}"
        backends["ollama"] = {
            "type": "ollama",
            "url": url,
            **({"models": models} if models else {}),
        }
        found.append(f"Ollama at {url}: {', '.join(models) or 'no models pulled yet'}")
    servers: dict[str, Any] = {}
    for tool, path in mcp_files(home):
        try:
            loaded = load_mcp_servers_file(path)
        except ConfigError as exc:
            found.append(f"{tool} ({path}): skipped, {exc}")
            continue
        for name, server in loaded.items():
            # As validated (`type: sse` already `transport: sse`), defaults left out.
            servers.setdefault(name, server.model_dump(mode="json", exclude_defaults=True))
        found.append(f"{tool} ({path}): MCP servers {', '.join(loaded) or 'none'}")
    config: dict[str, Any] = {"backends": backends, "mcp_servers": servers}
    if not backends:
        found.append(
            "no model backend found: add one under `backends:` (see docs/configuration.md)"
        )
    return config, found


def init_command(path: Path, *, force: bool) -> int:
    """Write the starting configuration to `path` (not over an existing file unless `force`),
    check that it loads, and say what was found. Exit 0, or 2 when nothing was written."""
    if path.exists() and not force:
        print(f"junction: {path} exists; pass --force to replace it", file=sys.stderr)
        return 2
    config, found = starting_config(Path.home(), os.environ)
    header = "# Written by `junction init`; every key: docs/configuration.md.\n"
    text = header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, {**os.environ})
    except ConfigError as exc:
        print(f"junction: the written configuration does not load:\n{exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    for line in found:
        print(f"  {line}")
    return 0


__all__ = ["init_command", "mcp_files", "starting_config"]
