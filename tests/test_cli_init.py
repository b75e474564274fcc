"""`junction init` as a person runs it: a starting junction.yaml from the MCP servers their
editors already have, the keys in their environment (as references, never the values) and a
local Ollama, which then loads; an existing file is kept unless --force."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import yaml

from junction.config import load_config
from tests.router_core.llm_servers import ollama_server

JUNCTION = str(Path(sys.executable).with_name("junction"))


async def init(home: Path, out: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "init",
        "--config",
        str(out),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
            "HOME": str(home),
            **env,
        },
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_init_gathers_editors_keys_and_ollama(tmp_path: Path) -> None:
    home = tmp_path / "home"
    claude = home / ".config" / "Claude" / "claude_desktop_config.json"
    claude.parent.mkdir(parents=True)
    claude.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "time": {"command": "uvx", "args": ["mcp-server-time"]},
                    "off": {"command": "x", "disabled": True},
                }
            }
        )
    )
    cursor = home / ".cursor" / "mcp.json"
    cursor.parent.mkdir(parents=True)
    cursor.write_text(
        json.dumps({"mcpServers": {"docs": {"url": "http://127.0.0.1:9/sse", "type": "sse"}}})
    )
    out = tmp_path / "junction.yaml"
    async with ollama_server(models=["llama3"]) as ollama:
        code, stdout, stderr = await init(
            home, out, {"OPENAI_API_KEY": "sk-very-secret", "OLLAMA_HOST": ollama.url}
        )
    assert code == 0, stderr
    text = out.read_text()
    assert "sk-very-secret" not in text and "${OPENAI_API_KEY}" in text
    data = yaml.safe_load(text)
    assert set(data["backends"]) == {"openai", "ollama"}
    assert data["backends"]["ollama"]["models"] == ["llama3"]
    assert data["mcp_servers"] == {
        "time": {"command": "uvx", "args": ["mcp-server-time"]},
        "docs": {"url": "http://127.0.0.1:9/sse", "transport": "sse"},
    }
    config = load_config(out, {"OPENAI_API_KEY": "sk-very-secret"})
    assert set(config.mcp_servers) == {"time", "docs"}
    assert "Claude Desktop" in stdout and "Cursor" in stdout and "Ollama" in stdout


async def test_init_keeps_an_existing_file_and_says_when_no_model_was_found(
    tmp_path: Path,
) -> None:
    out = tmp_path / "junction.yaml"
    out.write_text("# mine\n")
    code, _, stderr = await init(tmp_path, out, {"OLLAMA_HOST": "127.0.0.1:9"})
    assert code == 2 and "--force" in stderr and out.read_text() == "# mine\n"
    code, stdout, _ = await init(tmp_path, out, {"OLLAMA_HOST": "127.0.0.1:9"}, "--force")
    assert code == 0 and "no model backend found" in stdout
    assert yaml.safe_load(out.read_text()) == {"backends": {}, "mcp_servers": {}}
