"""An editor's first `session/new` does not wait for the router either: while it starts, the
stdio agent offers the models the configuration names (`AgentRuntime.models_hint`), the list the
router gives once it runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from junction.bridges.acp_services import serve_acp
from junction.build import build_router
from junction.config import JunctionConfig
from junction.modes.acp_stdio import static_models, stdio_runtime
from router_core import Router
from tests.acp.wire import HANG_GUARD, WireClient
from tests.router_core.llm_servers import Reply, openai_server
from tests.transports.conftest import pipe_pair


def config_for(url: str, tmp_path: Path, **extra: Any) -> JunctionConfig:
    return JunctionConfig.model_validate(
        {
            "store": {"url": f"sqlite:///{tmp_path / 'j.db'}"},
            "backends": {
                "fake": {"type": "openai", "url": f"{url}/v1", "models": ["m1", "m2"]},
                "other": {"type": "openai", "url": f"{url}/v1", "models": ["m3"]},
            },
            "routing": {"aliases": {"fast": "m2", "gone": "nowhere"}},
            "acp": {"default_model": "m2"},
            **extra,
        }
    )


def choices(created: dict[str, Any]) -> tuple[str, list[str]]:
    model = next(o for o in created["configOptions"] if o["id"] == "model")
    return model["currentValue"], [o["value"] for o in model["options"]]


async def test_session_new_answers_while_the_router_is_still_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()
    entering = Router.__aenter__

    async def slow_start(self: Router) -> Router:
        await release.wait()
        return await entering(self)

    monkeypatch.setattr(Router, "__aenter__", slow_start)
    async with openai_server(models=["m1", "m2", "m3"]) as server:
        server.script([Reply(text="routed")])
        runtime = stdio_runtime(config_for(server.url, tmp_path))
        async with pipe_pair(1024 * 1024) as (server_side, client_side):
            served = asyncio.create_task(serve_acp(server_side, runtime))
            client = WireClient(client_side)
            client.start()
            try:
                await client.initialize()
                first = await client.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
                assert not release.is_set() and runtime.starting  # answered without the router
                release.set()
                response = await client.prompt(first["sessionId"], "hi")
                second = await client.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            finally:
                await client.aclose()
                await asyncio.wait_for(served, HANG_GUARD)
                await runtime.aclose()
    assert choices(first) == ("m2", ["fast", "m1", "m2", "m3"])
    assert choices(second) == choices(first)  # the router, running now, lists the same
    assert response["result"] == {"stopReason": "end_turn"}
    assert server.chat_requests[0].body["model"] == "m2"


async def test_the_hint_is_what_the_router_lists(tmp_path: Path) -> None:
    config = config_for("http://127.0.0.1:9", tmp_path)
    async with build_router(config) as router:
        listed = tuple(sorted(router.available_models()))
    assert static_models(config) == listed == ("fast", "m1", "m2", "m3")


def test_no_hint_when_a_backend_must_be_asked_for_its_models(tmp_path: Path) -> None:
    config = config_for(
        "http://127.0.0.1:9",
        tmp_path,
        backends={
            "fake": {"type": "openai", "url": "http://127.0.0.1:9/v1", "models": ["m1"]},
            "discovered": {"type": "openai", "url": "http://127.0.0.1:9/v1"},
        },
    )
    assert static_models(config) is None
    assert static_models(JunctionConfig.model_validate({})) is None
