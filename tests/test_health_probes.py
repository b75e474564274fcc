"""`/health/live` and `/health/ready` as a load balancer or Kubernetes probes them: no key
needed, live while the process serves, ready once started and every required component is up."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from junction import Junction
from junction.config import ConfigError, load_config
from tests.transports.servers import serve_app


def config(tmp_path: Path, requires: list[str]) -> dict[str, object]:
    return {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "server": {"api_keys": ["k"], "ready_requires": requires},
        "mcp_servers": {"gone": {"command": sys.executable, "args": ["-c", "raise SystemExit(3)"]}},
        "mcp": {"connect_timeout": 2},
    }


async def probe(tmp_path: Path, requires: list[str]) -> tuple[int, int, dict[str, object]]:
    junction = Junction.from_config(config(tmp_path, requires))
    async with junction, serve_app(junction.asgi_app()) as base:
        await junction.gateway.wait_settled(5)
        async with httpx.AsyncClient(base_url=base) as http:
            live = await http.get("/health/live")
            ready = await http.get("/health/ready")
    return live.status_code, ready.status_code, ready.json()


async def test_ready_without_requirements_once_started(tmp_path: Path) -> None:
    live, ready, body = await probe(tmp_path, [])
    assert (live, ready) == (200, 200)
    assert body == {"status": "ready", "down": []}


async def test_not_ready_while_a_required_component_is_down(tmp_path: Path) -> None:
    live, ready, body = await probe(tmp_path, ["mcp_servers.gone"])
    assert (live, ready) == (200, 503)
    assert body["down"] == ["mcp_servers.gone"]


async def test_a_required_name_that_is_not_configured_is_never_ready(tmp_path: Path) -> None:
    _, ready, body = await probe(tmp_path, ["backends.typo"])
    assert ready == 503 and body["down"] == ["backends.typo"]


def test_requirements_name_components(tmp_path: Path) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text("server: {ready_requires: [everything]}\n")
    with pytest.raises(ConfigError, match=r"server\.ready_requires"):
        load_config(path)
