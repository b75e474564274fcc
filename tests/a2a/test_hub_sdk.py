"""The hub against the official a2a-sdk: SDK agents (1.0 and 0.3-only) behind it, the SDK's
client (in 1.0 and in 0.3 mode) in front of it, every method, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from a2a import A2aClient, A2aError, Hub
from router_core.http import close_session
from tests.a2a.harness import (
    SdkClient,
    Webhooks,
    running_hub,
    sdk_agent,
    sdk_client,
    task_of,
    texts,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
VERSIONS = ["1.0", "0.3"]


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    with sdk_agent("alpha", "1.0", ("research:web,search",)) as alpha:
        with sdk_agent("beta", "0.3", ("summarize:text",)) as beta:
            yield {"alpha": alpha, "beta": beta}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hub") / "junction.db"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(agents: dict[str, str], db: Path) -> AsyncIterator[tuple[Hub, str]]:
    async with running_hub(agents, db) as running:
        yield running
    await close_session()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(hub: tuple[Hub, str]) -> AsyncIterator[dict[str, SdkClient]]:
    async with sdk_client(hub[1], "1.0") as v10, sdk_client(hub[1], "0.3") as v03:
        yield {"1.0": v10, "0.3": v03}


async def test_hub_card_lists_skills_with_caching(hub: tuple[Hub, str]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{hub[1]}/.well-known/agent-card.json")
        assert response.status_code == 200
        card = response.json()
        ids = {s["id"] for s in card["skills"]}
        assert {"alpha/research", "beta/summarize"} <= ids
        assert "max-age" in response.headers["cache-control"]
        assert response.headers["last-modified"]
        again = await http.get(
            f"{hub[1]}/.well-known/agent-card.json",
            headers={"If-None-Match": response.headers["etag"]},
        )
        assert again.status_code == 304
        versions = {i["protocolVersion"] for i in card["supportedInterfaces"]}
        assert versions == {"1.0", "0.3"}
        assert card["url"].endswith("/a2a")  # the 0.3 shape, for 0.3 clients


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("agent", ["alpha", "beta"])
async def test_send_blocking_through_both_versions(
    clients: dict[str, SdkClient], version: str, agent: str
) -> None:
    events = await clients[version].ok("send", text="echo hello", metadata={"agent": agent})
    task = task_of(events)
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert texts(task) == ["echo: hello"]
    fetched = await clients[version].ok("get", id=task["id"])
    assert fetched["id"] == task["id"]
    assert fetched["status"]["state"] == "TASK_STATE_COMPLETED"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("agent", ["alpha", "beta"])
async def test_stream_relays_every_event_in_order(
    clients: dict[str, SdkClient], version: str, agent: str
) -> None:
    events = await clients[version].ok(
        "send", text="steps 3", metadata={"agent": agent}, stream=True
    )
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "task"
    chunks = [
        e["artifactUpdate"]["artifact"]["parts"][0]["text"] for e in events if "artifactUpdate" in e
    ]
    assert chunks == ["chunk 0", "chunk 1", "chunk 2"]
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    task_id = events[0]["task"]["id"]
    assert all(
        (e.get("statusUpdate") or e.get("artifactUpdate") or {"taskId": task_id})["taskId"]
        == task_id
        for e in events
    )
    stored = await clients[version].ok("get", id=task_id)
    assert [p["text"] for p in stored["artifacts"][0]["parts"]] == ["chunk 0", "chunk 1", "chunk 2"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_direct_message_reply(clients: dict[str, SdkClient], version: str) -> None:
    events = await clients[version].ok("send", text="reply hi", metadata={"agent": "beta"})
    assert events[0]["message"]["parts"][0]["text"] == "beta replies: hi"


async def test_routing_by_skill_and_tags(clients: dict[str, SdkClient]) -> None:
    by_skill = await clients["1.0"].ok("send", text="reply x", metadata={"skill": "summarize"})
    assert by_skill[0]["message"]["parts"][0]["text"].startswith("beta")
    by_tag = await clients["1.0"].ok("send", text="reply x", metadata={"tags": ["search"]})
    assert by_tag[0]["message"]["parts"][0]["text"].startswith("alpha")
    pinned = await clients["0.3"].ok("send", text="reply x", metadata={"skill": "alpha/research"})
    assert pinned[0]["message"]["parts"][0]["text"].startswith("alpha")


@pytest.mark.parametrize("version", VERSIONS)
async def test_continuation_goes_to_the_owner(clients: dict[str, SdkClient], version: str) -> None:
    first = task_of(await clients[version].ok("send", text="ask", metadata={"agent": "beta"}))
    assert first["status"]["state"] == "TASK_STATE_INPUT_REQUIRED"
    # no routing metadata: only the task id says where it goes
    second = task_of(
        await clients[version].ok(
            "send", text="blue", task_id=first["id"], context_id=first["contextId"]
        )
    )
    assert second["id"] == first["id"]
    assert second["status"]["state"] == "TASK_STATE_COMPLETED"
    assert texts(second) == ["beta got: blue"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("agent", ["alpha", "beta"])
async def test_resubscribe_then_cancel(
    clients: dict[str, SdkClient], version: str, agent: str
) -> None:
    client = clients[version]
    started = task_of(
        await client.ok("send", text="wait", metadata={"agent": agent}, return_immediately=True)
    )
    events = await client.ok("subscribe", id=started["id"], max_events=3)
    assert "task" in events[0] and events[0]["task"]["id"] == started["id"]
    assert len(events) == 3
    canceled = await client.ok("cancel", id=started["id"])
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    fetched = await client.ok("get", id=started["id"])
    assert fetched["status"]["state"] == "TASK_STATE_CANCELED"
    again = await client.call("cancel", id=started["id"])
    assert ("error" in again and "-32002" in again["error"]) or "cancel" in again["error"].lower()


async def test_list_tasks_paginates_newest_first(clients: dict[str, SdkClient]) -> None:
    for i in range(3):
        await clients["1.0"].ok(
            "send", text=f"echo page {i}", metadata={"agent": "alpha"}, context_id="ctx-list"
        )
    page = await clients["1.0"].ok("list", args={"context_id": "ctx-list", "page_size": 2})
    assert len(page["tasks"]) == 2 and page["nextPageToken"]
    rest = await clients["1.0"].ok(
        "list", args={"context_id": "ctx-list", "page_size": 2, "page_token": page["nextPageToken"]}
    )
    assert len(rest["tasks"]) == 1 and not rest.get("nextPageToken")
    seen = [t["id"] for t in page["tasks"] + rest["tasks"]]
    assert len(set(seen)) == 3
    assert all("artifacts" not in t for t in page["tasks"])


@pytest.mark.parametrize("version", VERSIONS)
async def test_push_config_methods_and_delivery(
    clients: dict[str, SdkClient], webhooks: tuple[Webhooks, str], version: str
) -> None:
    hooks, url = webhooks
    client = clients[version]
    started = task_of(
        await client.ok("send", text="wait", metadata={"agent": "alpha"}, return_immediately=True)
    )
    created = await client.ok(
        "push_set", task_id=started["id"], url=url, token=f"tok-{version}", id="cfg1"
    )
    assert created["url"] == url
    got = await client.ok("push_get", task_id=started["id"], id="cfg1")
    assert got["url"] == url
    listed = await client.ok("push_list", task_id=started["id"])
    assert [c["id"] for c in listed["configs"]] == ["cfg1"]
    await client.ok("cancel", id=started["id"])
    _headers, body = await hooks.wait_for(
        lambda h, b: (
            h.get("x-a2a-notification-token") == f"tok-{version}"
            and ("CANCELED" in str(b) or "canceled" in str(b))
        )
    )
    assert body
    await client.ok("push_delete", task_id=started["id"], id="cfg1")
    assert (await client.ok("push_list", task_id=started["id"])).get("configs", []) == []


async def test_push_config_with_the_message(
    clients: dict[str, SdkClient], webhooks: tuple[Webhooks, str]
) -> None:
    hooks, url = webhooks
    events = await clients["1.0"].ok(
        "send",
        text="steps 2",
        metadata={"agent": "beta"},
        stream=True,
        push_url=url,
        push_token="with-msg",
    )
    task_id = events[0]["task"]["id"]
    _, body = await hooks.wait_for(
        lambda h, b: h.get("x-a2a-notification-token") == "with-msg" and "COMPLETED" in str(b)
    )
    assert task_id in str(body)


@pytest.mark.parametrize("version", VERSIONS)
async def test_extended_card(clients: dict[str, SdkClient], version: str) -> None:
    card = await clients[version].ok("extended_card")
    assert card["name"] == "Junction"


@pytest.mark.parametrize("version", VERSIONS)
async def test_unknown_task_is_32001(clients: dict[str, SdkClient], version: str) -> None:
    answer = await clients[version].call("get", id="no-such-task")
    assert "error" in answer
    assert (
        "TaskNotFound" in answer["error"]
        or "-32001" in answer["error"]
        or "not found" in answer["error"].lower()
    )


async def raw(
    base: str, payload: Any, version: str | None = "1.0", path: str = "/a2a"
) -> dict[str, Any]:
    headers = {"A2A-Version": version} if version is not None else {}
    async with httpx.AsyncClient() as http:
        response = await http.post(base + path, json=payload, headers=headers)
        assert response.status_code == 200
        return dict(response.json())


async def test_error_shapes_per_version(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    missing = await raw(
        base, {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "nope"}}
    )
    assert missing["error"]["code"] == -32001
    assert missing["error"]["data"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert missing["error"]["data"][0]["reason"] == "TASK_NOT_FOUND"
    legacy = await raw(
        base,
        {"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": "nope"}},
        version=None,
    )
    assert legacy["error"]["code"] == -32001
    assert not isinstance(legacy["error"].get("data"), list)
    bad = await raw(
        base,
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "SendMessage",
            "params": {"message": {"role": "ROLE_USER"}},
        },
    )
    assert bad["error"]["code"] == -32602
    violations = bad["error"]["data"][1]["fieldViolations"]
    assert {v["field"] for v in violations} >= {"message.messageId", "message.parts"}
    stream_bad = await raw(
        base,
        {"jsonrpc": "2.0", "id": 4, "method": "SendStreamingMessage", "params": {"message": 5}},
    )
    assert stream_bad["error"]["code"] == -32602
    unsupported = await raw(
        base, {"jsonrpc": "2.0", "id": 5, "method": "GetTask", "params": {"id": "x"}}, version="2.0"
    )
    assert unsupported["error"]["code"] == -32009
    mismatch = await raw(
        base, {"jsonrpc": "2.0", "id": 6, "method": "GetTask", "params": {"id": "x"}}, version=None
    )
    assert mismatch["error"]["code"] == -32009
    unknown = await raw(base, {"jsonrpc": "2.0", "id": 7, "method": "Nope", "params": {}})
    assert unknown["error"]["code"] == -32601
    async with httpx.AsyncClient() as http:
        parse = (
            await http.post(
                base + "/a2a",
                content=b"{nope",
                headers={"A2A-Version": "1.0", "Content-Type": "application/json"},
            )
        ).json()
    assert parse["error"]["code"] == -32700


async def test_tasks_are_scoped_to_the_caller(
    hub: tuple[Hub, str], clients: dict[str, SdkClient]
) -> None:
    task = task_of(await clients["1.0"].ok("send", text="echo mine", metadata={"agent": "alpha"}))
    hub_obj = hub[0]
    original = hub_obj.principal
    hub_obj.principal = lambda request: request.headers.get("x-test-principal", "anonymous")
    try:
        async with httpx.AsyncClient() as http:
            other = await http.post(
                hub[1] + "/a2a",
                json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task["id"]}},
                headers={"A2A-Version": "1.0", "X-Test-Principal": "mallory"},
            )
            assert other.json()["error"]["code"] == -32001
            cancel = await http.post(
                hub[1] + "/a2a",
                json={
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "CancelTask",
                    "params": {"id": task["id"]},
                },
                headers={"A2A-Version": "1.0", "X-Test-Principal": "mallory"},
            )
            assert cancel.json()["error"]["code"] == -32001
            listed = await http.post(
                hub[1] + "/a2a",
                json={"jsonrpc": "2.0", "id": 3, "method": "ListTasks", "params": {}},
                headers={"A2A-Version": "1.0", "X-Test-Principal": "mallory"},
            )
            assert listed.json()["result"]["tasks"] == []
    finally:
        hub_obj.principal = original
    assert len(task["id"]) >= 22  # 128 random bits


async def test_per_agent_proxy_and_its_card(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    async with httpx.AsyncClient() as http:
        card = (await http.get(f"{base}/a2a/agents/beta/.well-known/agent-card.json")).json()
    assert card["name"] == "beta"
    assert {i["url"] for i in card["supportedInterfaces"]} == {f"{base}/a2a/agents/beta"}
    marks = [
        e for e in card["capabilities"]["extensions"] if e["uri"] == "urn:junction:a2a:proxied-card"
    ]
    assert marks and marks[0]["params"]["upstreamCardUrl"].endswith("/.well-known/agent-card.json")
    async with sdk_client(f"{base}/a2a/agents/beta", "1.0") as client:
        events = await client.ok("send", text="echo via proxy")
        assert texts(task_of(events)) == ["echo: via proxy"]


async def test_tasks_survive_a_restart(agents: dict[str, str], tmp_path: Path) -> None:
    db = tmp_path / "restart.db"
    async with running_hub(agents, db) as (_, base):
        async with sdk_client(base, "1.0") as client:
            done = task_of(
                await client.ok("send", text="echo persisted", metadata={"agent": "alpha"})
            )
            waiting = task_of(
                await client.ok(
                    "send", text="wait", metadata={"agent": "beta"}, return_immediately=True
                )
            )
    async with running_hub(agents, db) as (_, base):
        async with sdk_client(base, "0.3") as legacy:
            fetched = await legacy.ok("get", id=done["id"])
            assert texts(fetched) == ["echo: persisted"]
        async with sdk_client(base, "1.0") as client:
            listed = await client.ok("list")
            assert {done["id"], waiting["id"]} <= {t["id"] for t in listed["tasks"]}
            events = await client.ok("subscribe", id=waiting["id"], max_events=2)
            assert events[0]["task"]["id"] == waiting["id"]
            finished = await client.call("subscribe", id=done["id"])
            assert "error" in finished  # a terminal task cannot be subscribed to
            await client.ok("cancel", id=waiting["id"])


async def test_client_library_against_the_hub(hub: tuple[Hub, str]) -> None:
    client = A2aClient(hub[1])
    agents = {a.name: a for a in await client.agents()}
    assert {s["id"] for s in agents["alpha"].skills} == {"research"}
    assert any(s["id"] == "beta/summarize" for s in await client.skills())
    done = await client.send("echo lib", agent="beta")
    assert done["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert (await client.get_task(done["task"]["id"]))["id"] == done["task"]["id"]
    stream = await client.stream("wait", skill="research")
    seen = []
    async with stream:
        async for event in stream:
            seen.append(event)
            if len(seen) == 2:
                canceled = await stream.cancel()
                break
    assert "task" in seen[0]
    assert canceled is not None and canceled["status"]["state"] == "TASK_STATE_CANCELED"
    assert (await client.get_task(stream.task_id or ""))["status"]["state"] == "TASK_STATE_CANCELED"
    with pytest.raises(A2aError) as missing:
        await client.cancel_task("nope")
    assert missing.value.code == -32001
