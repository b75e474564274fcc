"""API keys limited to some A2A agents, through a real Junction app on a real socket: a key
sees and uses only its agents, and an agent it may not use looks exactly like one that does
not exist (cards, routing, per-agent proxies, tasks). Agents and one client are the official
a2a-sdk's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from junction.root import Junction
from router_core.http import close_session
from tests.a2a.harness import sdk_agent, sdk_client, send_params
from tests.transports.servers import serve_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

NARROW = "k-narrow"
"""Key `team` limited to agents matching `alpha*`."""
OTHER = "k-other"
"""Key `bob`, limited to `beta`."""
WIDE = "k-wide"
"""Key `carol`, every agent."""


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    with (
        sdk_agent("alpha", "1.0", ("research:web",)) as alpha,
        sdk_agent("beta", "1.0", ("summarize:text",)) as beta,
    ):
        yield {"alpha": alpha, "beta": beta}


def junction(db: Path, agents: dict[str, str], team: list[str]) -> Junction:
    """Junction with three keys; `team` is the agent globs of the key `NARROW`."""
    return Junction.from_config(
        {
            "store": {"url": f"sqlite:///{db}"},
            "server": {
                "api_keys": [
                    {"key": NARROW, "name": "team", "a2a_agents": team},
                    {"key": OTHER, "name": "bob", "a2a_agents": ["beta"]},
                    {"key": WIDE, "name": "carol"},
                ]
            },
            "a2a_agents": {name: {"url": url} for name, url in agents.items()},
        }
    )


@asynccontextmanager
async def served(db: Path, agents: dict[str, str], team: list[str]) -> AsyncIterator[str]:
    """Junction on a real socket (entered and left in the test's own task, as its task groups
    require); yields its base URL."""
    running = junction(db, agents, team)
    async with running, serve_app(running.asgi_app()) as url:
        yield url
    await close_session()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "A2A-Version": "1.0"}


async def call(base: str, key: str, method: str, params: Any, path: str = "/a2a") -> Any:
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            base + path,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers=auth(key),
        )
        return response.json()


def skill_ids(card: dict[str, Any]) -> set[str]:
    return {skill["id"] for skill in card["skills"]}


async def test_hub_card_shows_only_the_keys_agents(agents: dict[str, str], tmp_path: Path) -> None:
    async with served(tmp_path / "junction.db", agents, ["alpha*"]) as base:
        async with httpx.AsyncClient(timeout=20) as http:
            url = f"{base}/.well-known/agent-card.json"
            narrow = await http.get(url, headers=auth(NARROW))
            other = await http.get(url, headers=auth(OTHER))
            wide = await http.get(url, headers=auth(WIDE))
            assert skill_ids(narrow.json()) == {"alpha/research"}
            assert skill_ids(other.json()) == {"beta/summarize"}
            assert skill_ids(wide.json()) == {"alpha/research", "beta/summarize"}
            assert narrow.headers["etag"] != other.headers["etag"] != wide.headers["etag"]
            assert "authorization" in narrow.headers["vary"].lower()
            # another key's ETag is not a match: the narrow key gets its own card, not a 304
            stale = await http.get(
                url, headers={**auth(NARROW), "If-None-Match": wide.headers["etag"]}
            )
            assert stale.status_code == 200 and skill_ids(stale.json()) == {"alpha/research"}
        extended = await call(base, NARROW, "GetExtendedAgentCard", {})
        assert skill_ids(extended["result"]) == {"alpha/research"}


async def test_the_sdk_client_sees_and_uses_only_its_agents(
    agents: dict[str, str], tmp_path: Path
) -> None:
    async with served(tmp_path / "junction.db", agents, ["alpha*"]) as base:
        async with sdk_client(base, "1.0", token=OTHER) as client:
            card = await client.ok("card")
            assert skill_ids(card) == {"beta/summarize"}
            events = await client.ok("send", text="reply hi")  # the only agent it may use
            assert events[0]["message"]["parts"][0]["text"] == "beta replies: hi"
            hidden = await client.call("send", text="reply hi", metadata={"agent": "alpha"})
            ghost = await client.call("send", text="reply hi", metadata={"agent": "ghost"})
            assert hidden["error"].replace("alpha", "X") == ghost["error"].replace("ghost", "X")


async def test_a_forbidden_agent_answers_like_an_unknown_one(
    agents: dict[str, str], tmp_path: Path
) -> None:
    async with served(tmp_path / "junction.db", agents, ["alpha*"]) as base:
        forbidden = await call(base, NARROW, "SendMessage", send_params("reply x", "beta"))
        unknown = await call(base, NARROW, "SendMessage", send_params("reply x", "nobody"))
        assert forbidden["error"]["code"] == unknown["error"]["code"] == -32602
        assert forbidden["error"]["message"].replace("beta", "?") == unknown["error"][
            "message"
        ].replace("nobody", "?")
        by_skill = send_params("reply x", "-")
        by_skill["message"]["metadata"] = {"skill": "summarize"}
        refused = await call(base, NARROW, "SendMessage", by_skill)
        assert "no healthy agent offers skill 'summarize'" in refused["error"]["message"]
        by_skill["message"]["metadata"] = {"skill": "beta/summarize"}
        assert "error" in await call(base, NARROW, "SendMessage", by_skill)
        async with httpx.AsyncClient(timeout=20) as http:
            for name in ("beta", "nobody"):
                card = await http.get(
                    f"{base}/a2a/agents/{name}/.well-known/agent-card.json", headers=auth(NARROW)
                )
                assert card.status_code == 404, name
                proxy = await http.post(
                    f"{base}/a2a/agents/{name}",
                    json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "t"}},
                    headers=auth(NARROW),
                )
                assert proxy.status_code == 404, name
                rest = await http.get(f"{base}/a2a/agents/{name}/tasks/t", headers=auth(NARROW))
                assert rest.status_code == 404 and "no agent" in rest.json()["error"]["message"]
            allowed = await http.get(
                f"{base}/a2a/agents/alpha/.well-known/agent-card.json", headers=auth(NARROW)
            )
            assert allowed.status_code == 200


async def test_tasks_of_a_forbidden_agent_are_not_found(
    agents: dict[str, str], tmp_path: Path
) -> None:
    """The key's agents were narrowed between two runs: tasks it made on the agent it lost
    are gone for it (GetTask, CancelTask, SubscribeToTask, continuing, ListTasks)."""
    db = tmp_path / "junction.db"
    async with served(db, agents, ["*"]) as url:
        lost = (await call(url, NARROW, "SendMessage", send_params("ask", "beta")))["result"]
        kept = (await call(url, NARROW, "SendMessage", send_params("ask", "alpha")))["result"]
    async with served(db, agents, ["alpha*"]) as url:
        task_id = lost["task"]["id"]
        for method in ("GetTask", "CancelTask", "SubscribeToTask"):
            answer = await call(url, NARROW, method, {"id": task_id})
            assert answer["error"]["code"] == -32001, (method, answer)
        follow_up = send_params("more", "alpha")
        follow_up["message"]["taskId"] = task_id
        assert (await call(url, NARROW, "SendMessage", follow_up))["error"]["code"] == -32001
        listed = {t["id"] for t in (await call(url, NARROW, "ListTasks", {}))["result"]["tasks"]}
        assert listed == {kept["task"]["id"]}
        still = await call(url, NARROW, "GetTask", {"id": kept["task"]["id"]})
        assert still["result"]["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
