"""What Junction's own agent and its other surfaces need from the hub: local (in-process)
agents, a fallback agent, the `junction/via` loop guard between real hubs, per-state task
counts, registry change listeners and the trace context on upstream calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from a2a import AgentConnection, Hub, RestConnection, SqliteTaskStore
from router_core import BreakerSettings, tracing
from router_core.http import close_session
from tests.a2a.harness import (
    SdkClient,
    recording_proxy,
    rpc,
    running_hub,
    sdk_agent,
    sdk_client,
    send_params,
    task_of,
    texts,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOCAL_CARD: dict[str, Any] = {
    "name": "In-process",
    "description": "an agent living in the hub's process",
    "version": "1.0.0",
    "capabilities": {"streaming": True},
    "defaultInputModes": ["text/plain"],
    "defaultOutputModes": ["text/plain"],
    "skills": [
        {"id": "ponder", "name": "ponder", "description": "thinks", "tags": ["inproc"]},
    ],
}


class LocalAgent:
    """An in-process agent as `Registry.add_local` takes it; a real SDK agent answers behind
    it, and every call's params are kept so the test sees what the hub handed over."""

    version = "1.0"

    def __init__(self, url: str) -> None:
        self.inner = AgentConnection(url + "/", "1.0")
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def call(self, method_v10: str, params: dict[str, Any]) -> Any:
        self.seen.append((method_v10, params))
        return await self.inner.call(method_v10, params)

    def stream(self, method_v10: str, params: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self.seen.append((method_v10, params))
        return self.inner.stream(method_v10, params)


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    with (
        sdk_agent("alpha", "1.0", ("research:web",)) as alpha,
        sdk_agent("beta", "1.0", ("summarize:text",)) as beta,
        sdk_agent("gamma", "1.0") as gamma,
    ):
        yield {"alpha": alpha, "beta": beta, "gamma": gamma}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hooks") / "junction.db"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(agents: dict[str, str], db: Path) -> AsyncIterator[tuple[Hub, str]]:
    remote = {k: v for k, v in agents.items() if k != "gamma"}
    async with running_hub(remote, db, hub_id="hub-a", fallback_agent="beta") as running:
        yield running
    await close_session()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(hub: tuple[Hub, str]) -> AsyncIterator[SdkClient]:
    async with sdk_client(hub[1], "1.0") as sdk:
        yield sdk


async def test_local_agent_is_routed_served_and_protected(
    hub: tuple[Hub, str], agents: dict[str, str], client: SdkClient
) -> None:
    hub_, base = hub
    changes: list[int] = []
    unsubscribe = hub_.registry.subscribe(lambda: changes.append(1))
    local = LocalAgent(agents["gamma"])
    agent = await hub_.registry.add_local("inproc", LOCAL_CARD, local)
    assert agent.source == "local" and agent.state() == "ready"
    assert changes, "adding an agent tells the listeners"
    async with httpx.AsyncClient(timeout=20) as http:
        card = (await http.get(f"{base}/.well-known/agent-card.json")).json()
        assert "inproc/ponder" in {s["id"] for s in card["skills"]}
        own = (await http.get(f"{base}/a2a/agents/inproc/.well-known/agent-card.json")).json()
        assert own["name"] == "In-process"
        assert {i["url"] for i in own["supportedInterfaces"]} == {f"{base}/a2a/agents/inproc"}
        listed = (await http.get(f"{base}/admin/a2a/agents")).json()["agents"]
        entry = next(a for a in listed if a["name"] == "inproc")
        assert (entry["source"], entry["state"]) == ("local", "ready")
        replace = await http.post(
            f"{base}/admin/a2a/agents", json={"name": "inproc", "url": agents["alpha"]}
        )
        assert replace.status_code == 409 and "built into" in replace.json()["error"]
        remove = await http.delete(f"{base}/admin/a2a/agents/inproc")
        assert remove.status_code == 409
        # by skill, through the SDK client on the hub's JSON-RPC endpoint
        task = task_of(await client.ok("send", text="echo local", metadata={"skill": "ponder"}))
        assert texts(task) == ["echo: local"]
        assert local.seen[-1][1]["message"]["metadata"]["junction/via"] == ["hub-a"]
        # streamed, through the per-agent proxy's REST binding
        async with http.stream(
            "POST",
            f"{base}/a2a/agents/inproc/message:stream",
            json=send_params("steps 2", "inproc"),
            headers={"A2A-Version": "1.0"},
        ) as stream:
            body = (await stream.aread()).decode()
        assert "chunk 1" in body and "TASK_STATE_COMPLETED" in body
        assert local.seen[-1][0] == "SendStreamingMessage"
        assert local.seen[-1][1]["message"]["metadata"]["junction/via"] == ["hub-a"]
    changes.clear()
    assert await hub_.registry.remove("inproc")
    assert changes == [1]
    unsubscribe()
    assert await hub_.registry.remove("inproc") is False
    gone = await rpc(base, "SendMessage", send_params("echo x", "inproc"))
    assert gone["error"]["code"] == -32602


async def test_fallback_takes_what_nothing_else_does(hub: tuple[Hub, str], db: Path) -> None:
    base = hub[1]
    unrouted = send_params("reply hello", "x")
    del unrouted["message"]["metadata"]  # no hint, two agents: ambiguous
    answer = await rpc(base, "SendMessage", unrouted)
    assert answer["result"]["message"]["parts"][0]["text"] == "beta replies: hello"
    no_skill = send_params("reply skills", "x")
    no_skill["message"]["metadata"] = {"skill": "juggling"}
    answer = await rpc(base, "SendMessage", no_skill)
    assert answer["result"]["message"]["parts"][0]["text"] == "beta replies: skills"
    ghost = await rpc(base, "SendMessage", send_params("reply boo", "ghost"))
    assert ghost["error"]["code"] == -32602 and "ghost" in ghost["error"]["message"]
    agents = {a.name: a.spec.url for a in hub[0].registry.all() if a.spec is not None}
    async with running_hub(agents, db.with_name("plain.db")) as (_, plain):
        refused = await rpc(plain, "SendMessage", unrouted)
        assert refused["error"]["code"] == -32602
        assert "say which agent" in refused["error"]["message"]


async def _register(base: str, name: str, url: str) -> None:
    async with httpx.AsyncClient(timeout=20) as http:
        created = await http.post(f"{base}/admin/a2a/agents", json={"name": name, "url": url})
        assert created.status_code == 201, created.text


async def test_two_hubs_registered_to_each_other_stop_the_loop(
    hub: tuple[Hub, str], db: Path
) -> None:
    a = hub[1]
    async with running_hub({}, db.with_name("b.db"), hub_id="hub-b") as (_, b):
        await _register(a, "peer", b)
        await _register(b, "peer", a)
        answer = await rpc(a, "SendMessage", send_params("echo ping", "peer"))
        error = answer["error"]
        assert "routing loop" in error["message"], error
        assert "hub-a -> hub-b" in error["message"]
        streamed = await rpc(a, "SendStreamingMessage", send_params("echo ping", "peer"))
        assert "routing loop" in str(streamed), streamed
    async with httpx.AsyncClient() as http:
        await http.delete(f"{a}/admin/a2a/agents/peer")


async def test_a_hub_registered_as_its_own_agent(hub: tuple[Hub, str]) -> None:
    a = hub[1]
    await _register(a, "me", a)
    try:
        answer = await rpc(a, "SendMessage", send_params("echo me", "me"))
        assert "routing loop" in answer["error"]["message"]
        assert "(via hub-a)" in answer["error"]["message"]
    finally:
        async with httpx.AsyncClient() as http:
            await http.delete(f"{a}/admin/a2a/agents/me")


async def test_too_many_hops_in_every_binding(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    via = [f"h{i}" for i in range(8)]
    params = send_params("echo far", "alpha")
    params["message"]["metadata"]["junction/via"] = via
    jsonrpc = await rpc(base, "SendMessage", params)
    assert "too many hops (8 >= max_hops 8)" in jsonrpc["error"]["message"]
    async with httpx.AsyncClient(timeout=20) as http:
        rest = await http.post(
            f"{base}/a2a/message:stream", json=params, headers={"A2A-Version": "1.0"}
        )
        assert rest.status_code == 400 and "too many hops" in rest.json()["error"]["message"]
        legacy = await http.post(
            f"{base}/a2a",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "message/send",
                "params": {
                    "message": {
                        "kind": "message",
                        "messageId": "m03",
                        "role": "user",
                        "parts": [{"kind": "text", "text": "echo old"}],
                        "metadata": {"agent": "alpha", "junction/via": via},
                    }
                },
            },
        )
        assert "too many hops" in legacy.json()["error"]["message"]
    fewer = send_params("echo near", "alpha")
    fewer["message"]["metadata"]["junction/via"] = via[:7]
    assert texts((await rpc(base, "SendMessage", fewer))["result"]["task"]) == ["echo: near"]


async def test_task_state_counts_follow_the_store(hub: tuple[Hub, str], db: Path) -> None:
    hub_, base = hub
    before = hub_.task_state_counts()
    await rpc(base, "SendMessage", send_params("echo count", "alpha"))
    waiting = send_params("wait", "alpha")
    waiting["configuration"] = {"returnImmediately": True}
    started = (await rpc(base, "SendMessage", waiting))["result"]["task"]
    await rpc(base, "CancelTask", {"id": started["id"]})
    after = hub_.task_state_counts()
    done, canceled = "TASK_STATE_COMPLETED", "TASK_STATE_CANCELED"
    assert after.get(done, 0) == before.get(done, 0) + 1
    assert after.get(canceled, 0) == before.get(canceled, 0) + 1
    assert sum(after.values()) == sum(before.values()) + 2
    await hub_.store.flush()  # type: ignore[attr-defined]
    reopened = SqliteTaskStore(db)
    await reopened.open()
    try:
        assert reopened.state_counts() == after
    finally:
        await reopened.close()


async def test_listeners_hear_an_agent_become_unavailable(db: Path, agents: dict[str, str]) -> None:
    with sdk_agent("doomed", "1.0") as doomed:
        breaker = BreakerSettings(consecutive_failures=1, cooldown=60)
        async with running_hub({"doomed": doomed}, db.with_name("doomed.db"), breaker=breaker) as (
            hub_,
            base,
        ):
            heard: list[bool] = []
            agent = hub_.registry.get("doomed")
            assert agent is not None
            hub_.registry.subscribe(lambda: heard.append(agent.available()))
            await rpc(base, "SendStreamingMessage", send_params("die", "doomed"))
            assert heard == [False]


async def test_upstream_calls_carry_the_trace_context(agents: dict[str, str]) -> None:
    with sdk_agent("rest", "1.0", (), "--binding", "rest") as rest:
        async with (
            recording_proxy(agents["gamma"]) as (rpc_seen, rpc_url),
            recording_proxy(rest) as (rest_seen, rest_url),
        ):
            message = send_params("echo traced", "x")
            connections = [(AgentConnection(rpc_url + "/", "1.0"), rpc_seen)]
            connections.append((RestConnection(rest_url, "1.0"), rest_seen))
            incoming = tracing.parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            assert incoming is not None
            for connection, seen in connections:
                await connection.call("SendMessage", message)
                assert "traceparent" not in seen.requests[-1][1]
                with tracing.active(incoming):
                    await connection.call("SendMessage", message)
                    async for _ in connection.stream("SendStreamingMessage", message):
                        pass
                for _, headers in seen.requests[-2:]:
                    assert headers["traceparent"] == incoming.traceparent


async def test_a_traced_request_to_junction_reaches_the_agent_traced(
    agents: dict[str, str], tmp_path: Path
) -> None:
    """Through the real app: Junction accepts the caller's trace context, and the hub's call to
    the agent carries the same trace with Junction's span as parent."""
    from junction.root import Junction
    from tests.transports.servers import serve_app

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with recording_proxy(agents["alpha"]) as (seen, url):
        junction = Junction.from_config(
            {"store": {"url": f"sqlite:///{tmp_path}/j.db"}, "a2a_agents": {"alpha": {"url": url}}}
        )
        async with junction, serve_app(junction.asgi_app()) as base:
            async with httpx.AsyncClient(timeout=20) as http:
                reply = await http.post(
                    f"{base}/a2a",
                    json={
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "SendMessage",
                        "params": send_params("echo traced", "alpha"),
                    },
                    headers={
                        "A2A-Version": "1.0",
                        "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
                    },
                )
            assert texts(reply.json()["result"]["task"]) == ["echo: traced"]
    card_fetch, call = seen.requests[0][1], seen.requests[-1][1]
    assert "traceparent" not in card_fetch
    version, traced, parent, flags = call["traceparent"].split("-")
    assert (version, traced, flags) == ("00", trace_id, "01")
    assert parent != "00f067aa0ba902b7"  # Junction's own span sits in between
