"""An editor's first session does not wait for the MCP gateway: `session/new` needs the models
only, so it answers while the gateway (the `mcp` SDK's imports, the upstreams) still starts."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from junction.config import JunctionConfig
from mcp_gateway import Gateway
from tests.acp.wire import agent
from tests.mcp_gateway.conftest import SERVERS
from tests.router_core.llm_servers import Reply, openai_server


async def test_session_new_answers_while_the_gateway_is_still_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    entering = Gateway.__aenter__

    async def slow_start(self: Gateway) -> Gateway:
        await release.wait()
        return await entering(self)

    monkeypatch.setattr(Gateway, "__aenter__", slow_start)
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="tools are here")])
        config = JunctionConfig.model_validate(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'j.db'}"},
                "backends": {
                    "fake": {"type": "openai", "url": f"{server.url}/v1", "models": ["m1"]}
                },
                "acp": {"default_model": "m1"},
                "mcp_servers": {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}},
            }
        )
        async with agent(config) as client:
            await client.initialize()
            created: dict[str, Any] = await client.call(
                "session/new", {"cwd": str(tmp_path), "mcpServers": []}
            )
            release.set()  # the gateway starts now; the first turn sees its tools
            response = await client.prompt(created["sessionId"], "which tools?")
    model = next(o for o in created["configOptions"] if o["id"] == "model")
    assert model["currentValue"] == "m1" and [o["value"] for o in model["options"]] == ["m1"]
    assert response["result"] == {"stopReason": "end_turn"}
    offered = {t["function"]["name"] for t in server.chat_requests[0].body["tools"]}
    assert "ok__echo" in offered
