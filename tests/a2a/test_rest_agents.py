"""Agents that serve only the HTTP+JSON (REST) binding: official a2a-sdk agents (1.0 and 0.3)
behind the hub, the SDK's JSON-RPC client in front of it, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from a2a import A2aClient, AgentConnection, AgentPool, AgentSpec, Hub, RestConnection
from router_core.http import close_session
from tests.a2a.harness import (
    SdkClient,
    rpc,
    running_hub,
    sdk_agent,
    sdk_client,
    send_params,
    task_of,
    texts,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
REST_AGENTS = ["rest10", "rest03"]


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    rest = ("--binding", "rest")
    with (
        sdk_agent("rest10", "1.0", ("draw:art",), *rest) as rest10,
        sdk_agent("rest03", "0.3", ("paint:art",), *rest) as rest03,
        sdk_agent("both", "1.0", (), "--binding", "both") as both,
        sdk_agent("mortal", "1.0", (), *rest) as mortal,
    ):
        yield {"rest10": rest10, "rest03": rest03, "both": both, "mortal": mortal}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(
    agents: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Hub, str]]:
    db: Path = tmp_path_factory.mktemp("rest-agents") / "junction.db"
    async with running_hub(agents, db) as running:
        yield running
    await close_session()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(hub: tuple[Hub, str]) -> AsyncIterator[SdkClient]:
    async with sdk_client(hub[1], "1.0") as sdk:
        yield sdk


async def test_rest_only_agents_are_registered_over_rest(hub: tuple[Hub, str]) -> None:
    for name, version in (("rest10", "1.0"), ("rest03", "0.3"), ("mortal", "1.0")):
        agent = hub[0].registry.get(name)
        assert agent is not None and agent.state() == "ready", name
        assert isinstance(agent.connection, RestConnection)
        assert agent.connection.version == version
    both = hub[0].registry.get("both")
    assert both is not None
    assert isinstance(both.connection, AgentConnection)  # JSON-RPC preferred when offered


@pytest.mark.parametrize("agent", REST_AGENTS)
async def test_blocking_send_and_get(client: SdkClient, agent: str) -> None:
    task = task_of(await client.ok("send", text="echo over rest", metadata={"agent": agent}))
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert texts(task) == ["echo: over rest"]
    fetched = await client.ok("get", id=task["id"])
    assert fetched["status"]["state"] == "TASK_STATE_COMPLETED"
    reply = await client.ok("send", text="reply hi", metadata={"agent": agent})
    assert reply[0]["message"]["parts"][0]["text"] == f"{agent} replies: hi"


@pytest.mark.parametrize("agent", REST_AGENTS)
async def test_stream_relays_every_event(client: SdkClient, agent: str) -> None:
    events = await client.ok("send", text="steps 3", metadata={"agent": agent}, stream=True)
    chunks = [
        part["text"]
        for event in events
        if "artifactUpdate" in event
        for part in event["artifactUpdate"]["artifact"]["parts"]
    ]
    assert chunks == ["chunk 0", "chunk 1", "chunk 2"]
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    task_id = events[-1]["statusUpdate"]["taskId"]
    stored = await client.ok("get", id=task_id)
    assert stored["status"]["state"] == "TASK_STATE_COMPLETED"


@pytest.mark.parametrize("agent", REST_AGENTS)
async def test_subscribe_then_cancel(hub: tuple[Hub, str], client: SdkClient, agent: str) -> None:
    started = task_of(
        await client.ok("send", text="wait", metadata={"agent": agent}, return_immediately=True)
    )
    events = await client.ok("subscribe", id=started["id"], max_events=3)
    assert events[0]["task"]["id"] == started["id"] and len(events) == 3
    # Raw JSON-RPC from here on: the hub's 1.0 JSON itself, not what the SDK makes of it.
    canceled = (await rpc(hub[1], "CancelTask", {"id": started["id"]}))["result"]
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"  # 0.3 says CANCELLED
    fetched = (await rpc(hub[1], "GetTask", {"id": started["id"]}))["result"]
    assert fetched["status"]["state"] == "TASK_STATE_CANCELED"
    assert fetched["history"] and all("parts" in m for m in fetched["history"])
    assert all("content" not in m for m in fetched["history"])  # 0.3 proto's name for parts


@pytest.mark.parametrize("agent", [*REST_AGENTS, "both"])
async def test_agent_errors_come_back_as_a2a_errors(hub: tuple[Hub, str], agent: str) -> None:
    """A message to a finished task: the agent refuses it (a REST error body for the REST
    agents), and the caller gets the same A2A error as from a JSON-RPC agent."""
    done = await rpc(hub[1], "SendMessage", send_params("echo once", agent))
    task = done["result"]["task"]
    again = send_params("echo twice", agent)
    again["message"]["taskId"] = task["id"]
    refused = await rpc(hub[1], "SendMessage", again)
    assert "error" in refused, refused
    assert refused["error"]["code"] not in (-32603, -32006), refused  # not "the agent broke"
    assert "terminal" in refused["error"]["message"].lower(), refused
    assert hub[0].registry.get(agent).state() == "ready"  # type: ignore[union-attr]


async def test_rest_agent_dying_mid_stream(hub: tuple[Hub, str], client: SdkClient) -> None:
    events = await rpc(hub[1], "SendStreamingMessage", send_params("die", "mortal"))
    assert "task" in events[0]["result"]
    last = events[-1]["result"]["statusUpdate"]
    assert last["status"]["state"] == "TASK_STATE_FAILED"
    assert "mortal failed" in last["status"]["message"]["parts"][0]["text"]
    stored = await client.ok("get", id=last["taskId"])
    assert stored["status"]["state"] == "TASK_STATE_FAILED"
    still = task_of(await client.ok("send", text="echo alive", metadata={"agent": "rest10"}))
    assert texts(still) == ["echo: alive"]


@pytest.mark.parametrize("agent", REST_AGENTS)
async def test_the_client_library_speaks_rest_to_rest_only_agents(
    agents: dict[str, str], agent: str
) -> None:
    """What ACP sessions and the MCP tools use (`AgentPool`, `A2aClient`), straight at a
    REST-only agent: a streamed task to its end, then a task cancelled mid-way."""
    pool = AgentPool({agent: AgentSpec(url=agents[agent])})
    progress: list[str] = []

    async def note(text: str) -> None:
        progress.append(text)

    result = await pool.run_task(agent, "steps 2", on_progress=note, metadata={"trace": "t1"})
    assert result.state == "TASK_STATE_COMPLETED"
    assert progress == ["chunk 0", "chunk 1"]
    client = A2aClient(agents[agent])
    started = await client.send("wait", return_immediately=True)
    canceled = await client.cancel_task(started["task"]["id"])
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    assert isinstance(client._connection, RestConnection)
