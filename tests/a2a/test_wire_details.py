"""Wire details the A2A TCK found lost through the hub (issue 15), each checked on its own over
real HTTP against a hub with one a2a-sdk agent, so a regression names itself without a TCK run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from a2a import Hub
from router_core.http import close_session
from tests.a2a.harness import running_hub, sdk_agent, send_params

pytestmark = pytest.mark.asyncio(loop_scope="module")
V10 = {"A2A-Version": "1.0"}


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    with sdk_agent("alpha", "1.0", (), "--binding", "both") as alpha:
        yield {"alpha": alpha}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(
    agents: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Hub, str]]:
    async with running_hub(agents, tmp_path_factory.mktemp("wire") / "junction.db") as running:
        yield running
    await close_session()


async def call(base: str, verb: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {**V10, **kwargs.pop("headers", {})}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.request(verb, base + path, headers=headers, **kwargs)


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": params}


async def test_every_a2a_route_takes_a_trailing_slash(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    for path in ("/a2a/", "/a2a/agents/alpha/"):
        reply = await call(
            base, "POST", path, json=rpc("SendMessage", send_params("echo hi", "alpha"))
        )
        assert reply.status_code == 200, (path, reply.text)
        assert reply.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    rest = await call(
        base, "POST", "/a2a/agents/alpha/message:send/", json=send_params("echo r", "alpha")
    )
    assert rest.status_code == 200, rest.text
    task_id = rest.json()["task"]["id"]
    assert (await call(base, "GET", f"/a2a/tasks/{task_id}/")).status_code == 200
    for card in ("/.well-known/agent-card.json/", "/a2a/agents/alpha/.well-known/agent-card.json/"):
        assert (await call(base, "GET", card)).status_code == 200, card


async def test_unknown_routes_under_a2a_answer_an_a2a_error(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    for verb, path in (
        ("GET", "/a2a/no/such/thing"),
        ("POST", "/a2a/agents/alpha/nope:send"),
        ("GET", "/a2a"),  # the JSON-RPC endpoint is POST only
        ("DELETE", "/a2a/agents/alpha/"),
    ):
        reply = await call(base, verb, path)
        assert reply.status_code == 404, (verb, path, reply.text)
        error = reply.json()["error"]
        assert error["status"] == "NOT_FOUND" and error["code"] == 404, (verb, path)
        assert error["details"][0]["reason"] == "METHOD_NOT_FOUND"
    stranger = await call(base, "POST", "/a2a/agents/nobody", json=rpc("GetTask", {"id": "t"}))
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == -32601
