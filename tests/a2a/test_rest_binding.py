"""The hub's HTTP+JSON (REST) binding: the official a2a-sdk client on its REST transports (1.0
`RestTransport`, 0.3 `CompatRestTransport`) against the hub and a per-agent proxy, over real
HTTP, plus raw requests for the exact error bodies and statuses of the spec (section 11.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from a2a import Hub
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
TRANSPORTS = {"1.0": "RestTransport", "0.3": "CompatRestTransport"}
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    with sdk_agent("alpha", "1.0", ("research:web,search",)) as alpha:
        with sdk_agent("beta", "0.3", ("summarize:text",)) as beta:
            yield {"alpha": alpha, "beta": beta}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(
    agents: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Hub, str]]:
    async with running_hub(agents, tmp_path_factory.mktemp("rest") / "junction.db") as running:
        yield running
    await close_session()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def clients(hub: tuple[Hub, str]) -> AsyncIterator[dict[str, SdkClient]]:
    script = "sdk_rest_client.py"
    async with (
        sdk_client(hub[1], "1.0", script) as v10,
        sdk_client(hub[1], "0.3", script) as v03,
    ):
        yield {"1.0": v10, "0.3": v03}


async def request(
    base: str, verb: str, path: str, version: str | None = "1.0", **kwargs: Any
) -> httpx.Response:
    headers = {"A2A-Version": version} if version is not None else {}
    headers.update(kwargs.pop("headers", {}))
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.request(verb, base + path, headers=headers, **kwargs)


def error_info(body: dict[str, Any]) -> dict[str, Any]:
    details = body["error"]["details"]
    assert details[0]["@type"] == ERROR_INFO
    assert details[0]["domain"] == "a2a-protocol.org"
    return dict(details[0])


# --------------------------------------------------------------------------- cards


async def test_cards_advertise_rest_next_to_jsonrpc(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    for path, url in (
        ("/.well-known/agent-card.json", f"{base}/a2a"),
        ("/a2a/agents/beta/.well-known/agent-card.json", f"{base}/a2a/agents/beta"),
    ):
        card = (await request(base, "GET", path, "0.3")).json()
        offered = {
            (i["protocolBinding"], i["protocolVersion"], i["url"])
            for i in card["supportedInterfaces"]
        }
        assert offered == {
            (binding, version, url) for binding in ("JSONRPC", "HTTP+JSON") for version in VERSIONS
        }
        # the 0.3 shape: JSON-RPC stays preferred, REST is an additional interface
        assert card["preferredTransport"] == "JSONRPC"
        assert {"url": url, "transport": "HTTP+JSON"} in card["additionalInterfaces"]


# --------------------------------------------------------------------------- the SDK client


@pytest.mark.parametrize("version", VERSIONS)
async def test_sdk_uses_its_rest_transport(clients: dict[str, SdkClient], version: str) -> None:
    assert clients[version].info["transport"] == TRANSPORTS[version]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("agent", ["alpha", "beta"])
async def test_send_and_get(clients: dict[str, SdkClient], version: str, agent: str) -> None:
    events = await clients[version].ok("send", text="echo rest", metadata={"agent": agent})
    task = task_of(events)
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    assert texts(task) == ["echo: rest"]
    fetched = await clients[version].ok("get", id=task["id"], history_length=1)
    assert fetched["id"] == task["id"] and texts(fetched) == ["echo: rest"]
    assert len(fetched.get("history", [])) <= 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_direct_message_reply(clients: dict[str, SdkClient], version: str) -> None:
    events = await clients[version].ok("send", text="reply hey", metadata={"agent": "beta"})
    assert events[0]["message"]["parts"][0]["text"] == "beta replies: hey"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("agent", ["alpha", "beta"])
async def test_stream_relays_every_event_in_order(
    clients: dict[str, SdkClient], version: str, agent: str
) -> None:
    events = await clients[version].ok(
        "send", text="steps 3", metadata={"agent": agent}, stream=True
    )
    assert "task" in events[0]
    chunks = [
        e["artifactUpdate"]["artifact"]["parts"][0]["text"] for e in events if "artifactUpdate" in e
    ]
    assert chunks == ["chunk 0", "chunk 1", "chunk 2"]
    assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    stored = await clients[version].ok("get", id=events[0]["task"]["id"])
    assert [p["text"] for p in stored["artifacts"][0]["parts"]] == ["chunk 0", "chunk 1", "chunk 2"]


@pytest.mark.parametrize("version", VERSIONS)
async def test_subscribe_then_cancel(clients: dict[str, SdkClient], version: str) -> None:
    client = clients[version]
    started = task_of(
        await client.ok("send", text="wait", metadata={"agent": "alpha"}, return_immediately=True)
    )
    events = await client.ok("subscribe", id=started["id"], max_events=3)
    assert events[0]["task"]["id"] == started["id"] and len(events) == 3
    canceled = await client.ok("cancel", id=started["id"])
    assert canceled["status"]["state"] == "TASK_STATE_CANCELED"
    assert (await client.ok("get", id=started["id"]))["status"]["state"] == "TASK_STATE_CANCELED"
    again = await client.call("cancel", id=started["id"])
    assert "TaskNotCancelableError" in again["error"], again
    finished = await client.call("subscribe", id=started["id"])
    assert "UnsupportedOperationError" in finished["error"], finished


async def test_list_tasks_paginates(clients: dict[str, SdkClient]) -> None:
    client = clients["1.0"]
    for i in range(3):
        await client.ok(
            "send", text=f"echo p{i}", metadata={"agent": "alpha"}, context_id="rest-list"
        )
    page = await client.ok("list", args={"context_id": "rest-list", "page_size": 2})
    assert len(page["tasks"]) == 2 and page["nextPageToken"]
    assert all("artifacts" not in t for t in page["tasks"])
    rest = await client.ok(
        "list",
        args={
            "context_id": "rest-list",
            "page_size": 2,
            "page_token": page["nextPageToken"],
            "include_artifacts": True,
        },
    )
    assert len(rest["tasks"]) == 1 and not rest.get("nextPageToken")
    assert texts(rest["tasks"][0])[0].startswith("echo: p")
    assert len({t["id"] for t in page["tasks"] + rest["tasks"]}) == 3


@pytest.mark.parametrize("version", VERSIONS)
async def test_push_configs_and_delivery(
    hub: tuple[Hub, str],
    clients: dict[str, SdkClient],
    webhooks: tuple[Webhooks, str],
    version: str,
) -> None:
    hooks, url = webhooks
    client = clients[version]
    started = task_of(
        await client.ok("send", text="wait", metadata={"agent": "beta"}, return_immediately=True)
    )
    token = f"rest-{version}"
    created = await client.ok("push_set", task_id=started["id"], url=url, token=token, id="c1")
    assert created["url"] == url and created["taskId"] == started["id"]
    got = await client.ok("push_get", task_id=started["id"], id="c1")
    assert got["url"] == url and got["id"] == "c1"
    if version == "1.0":
        listed = await client.ok("push_list", task_id=started["id"])
        assert [c["id"] for c in listed["configs"]] == ["c1"]
    else:  # the SDK's 0.3 REST client has no list: the route, raw, in the 0.3 proto's shape
        raw = await request(
            hub[1], "GET", f"/a2a/v1/tasks/{started['id']}/pushNotificationConfigs", None
        )
        assert raw.status_code == 200
        assert raw.json()["configs"][0]["name"] == (
            f"tasks/{started['id']}/pushNotificationConfigs/c1"
        )
    await client.ok("cancel", id=started["id"])
    await hooks.wait_for(
        lambda h, b: h.get("x-a2a-notification-token") == token and "CANCELED" in str(b).upper()
    )
    if version == "1.0":
        await client.ok("push_delete", task_id=started["id"], id="c1")
        assert (await client.ok("push_list", task_id=started["id"])).get("configs", []) == []
    else:
        path = f"/a2a/v1/tasks/{started['id']}/pushNotificationConfigs/c1"
        assert (await request(hub[1], "DELETE", path, None)).status_code == 200
        assert (await request(hub[1], "GET", path, None)).status_code == 404


async def test_push_config_with_the_message(
    clients: dict[str, SdkClient], webhooks: tuple[Webhooks, str]
) -> None:
    hooks, url = webhooks
    events = await clients["1.0"].ok(
        "send",
        text="steps 1",
        metadata={"agent": "alpha"},
        stream=True,
        push_url=url,
        push_token="rest-with-msg",
    )
    _, body = await hooks.wait_for(
        lambda h, b: h.get("x-a2a-notification-token") == "rest-with-msg" and "COMPLETED" in str(b)
    )
    assert events[0]["task"]["id"] in str(body)


@pytest.mark.parametrize("version", VERSIONS)
async def test_extended_card(clients: dict[str, SdkClient], version: str) -> None:
    card = await clients[version].ok("extended_card")
    assert card["name"] == "Junction"
    assert any(s["id"] == "alpha/research" for s in card["skills"])


@pytest.mark.parametrize("version", VERSIONS)
async def test_unknown_task_maps_to_the_sdk_error(
    clients: dict[str, SdkClient], version: str
) -> None:
    answer = await clients[version].call("get", id="no-such-task")
    assert answer["error"].startswith("TaskNotFoundError"), answer
    answer = await clients[version].call("cancel", id="no-such-task")
    assert answer["error"].startswith("TaskNotFoundError"), answer


async def test_per_agent_proxy_over_rest(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    async with sdk_client(f"{base}/a2a/agents/beta", "1.0", "sdk_rest_client.py") as client:
        assert client.info["transport"] == "RestTransport"
        task = task_of(await client.ok("send", text="echo proxied"))
        assert texts(task) == ["echo: proxied"]
        events = await client.ok("send", text="steps 2", stream=True)
        assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
    # the task belongs to beta: another agent's proxy does not know it, the hub does
    other = await request(base, "GET", f"/a2a/agents/alpha/tasks/{task['id']}")
    assert other.status_code == 404
    assert error_info(other.json())["reason"] == "TASK_NOT_FOUND"
    assert (await request(base, "GET", f"/a2a/tasks/{task['id']}")).status_code == 200
    missing = await request(base, "POST", "/a2a/agents/nobody/message:send", json={})
    assert missing.status_code == 404


# --------------------------------------------------------------------------- raw HTTP


async def test_unknown_task_is_404_with_the_spec_body(hub: tuple[Hub, str]) -> None:
    response = await request(hub[1], "GET", "/a2a/tasks/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == 404 and body["error"]["status"] == "NOT_FOUND"
    assert body["error"]["message"]
    info = error_info(body)
    assert info["reason"] == "TASK_NOT_FOUND" and info["metadata"] == {"taskId": "nope"}
    for verb, path in (
        ("POST", "/a2a/tasks/nope:cancel"),
        ("POST", "/a2a/tasks/nope:subscribe"),
        ("GET", "/a2a/tasks/nope/pushNotificationConfigs"),
        ("DELETE", "/a2a/tasks/nope/pushNotificationConfigs/x"),
    ):
        answer = await request(hub[1], verb, path)
        assert answer.status_code == 404, (verb, path, answer.text)
        assert error_info(answer.json())["reason"] == "TASK_NOT_FOUND"
    legacy = await request(hub[1], "GET", "/a2a/v1/tasks/nope", None)
    assert legacy.status_code == 404
    assert legacy.json()["type"] == "TaskNotFoundError"
    assert error_info(legacy.json())["reason"] == "TASK_NOT_FOUND"


async def test_malformed_bodies_are_400(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    for path in ("/a2a/message:send", "/a2a/message:stream"):
        parse = await request(
            base, "POST", path, content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert parse.status_code == 400, parse.text
        assert parse.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert error_info(parse.json())["reason"] == "INVALID_REQUEST"
        assert (await request(base, "POST", path, json=[1, 2])).status_code == 400
        invalid = await request(base, "POST", path, json={"message": {"role": "ROLE_USER"}})
        assert invalid.status_code == 400
        assert invalid.headers["content-type"] == "application/json"
        details = invalid.json()["error"]["details"]
        assert details[0]["reason"] == "INVALID_PARAMS"
        assert details[1]["@type"] == BAD_REQUEST
        fields = {v["field"] for v in details[1]["fieldViolations"]}
        assert {"message.messageId", "message.parts"} <= fields
    bad_query = await request(base, "GET", "/a2a/tasks", params={"pageSize": "many"})
    assert bad_query.status_code == 400
    assert error_info(bad_query.json())["reason"] == "INVALID_PARAMS"
    bad_state = await request(base, "GET", "/a2a/tasks", params={"status": "SLEEPING"})
    assert bad_state.status_code == 400
    no_url = await request(base, "POST", "/a2a/tasks/x/pushNotificationConfigs", json={})
    assert no_url.status_code == 400


async def test_versions(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    for version, path in (
        ("2.0", "/a2a/tasks"),  # unsupported anywhere
        (None, "/a2a/tasks"),  # missing = 0.3, and 0.3 lives under /v1
        ("0.3", "/a2a/tasks/x"),
        ("1.0", "/a2a/v1/tasks/x"),
    ):
        answer = await request(base, "GET", path, version)
        assert answer.status_code == 400, (version, path)
        assert error_info(answer.json())["reason"] == "VERSION_NOT_SUPPORTED"
    assert (await request(base, "GET", "/a2a/tasks", "1")).status_code == 200
    assert (await request(base, "GET", "/a2a/tasks", "1.0.3")).status_code == 200


async def test_sse_frames_are_bare_stream_responses(hub: tuple[Hub, str]) -> None:
    message = {"messageId": "m-sse", "role": "ROLE_USER", "parts": [{"text": "steps 2"}]}
    frames: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=10) as http,
        http.stream(
            "POST",
            hub[1] + "/a2a/message:stream",
            json={"message": message, "metadata": {"agent": "alpha"}},
            headers={"A2A-Version": "1.0"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                frames.append(orjson.loads(line[5:]))
    assert all(len(f) == 1 and "jsonrpc" not in f for f in frames)
    assert "task" in frames[0]
    assert frames[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"


async def test_v03_proto_shapes(hub: tuple[Hub, str]) -> None:
    base = hub[1]
    body = {  # proto field names, as the 0.3 SDK sends them
        "request": {
            "message_id": "m-03",
            "role": "ROLE_USER",
            "content": [{"text": "wait"}],
            "metadata": {"agent": "beta"},
        },
        "configuration": {"blocking": False},
    }
    sent = await request(base, "POST", "/a2a/v1/message:send", None, json=body)
    assert sent.status_code == 200, sent.text
    task = sent.json()["task"]
    assert "content" in task["history"][0] and "parts" not in task["history"][0]
    canceled = await request(base, "POST", f"/a2a/v1/tasks/{task['id']}:cancel", None)
    assert canceled.json()["status"]["state"] == "TASK_STATE_CANCELLED"
    again = await request(base, "POST", f"/a2a/v1/tasks/{task['id']}:cancel", None)
    assert again.status_code == 400 and again.json()["type"] == "TaskNotCancelableError"
    listed = await request(base, "GET", "/a2a/v1/tasks", None, params={"pageSize": "100"})
    assert task["id"] in {t["id"] for t in listed.json()["tasks"]}


async def test_both_bindings_share_tasks_and_callers(hub: tuple[Hub, str]) -> None:
    """One store and one dispatch: a task sent over REST is the same task over JSON-RPC, and
    another caller sees neither."""
    hub_obj, base = hub
    message = {"messageId": "m-share", "role": "ROLE_USER", "parts": [{"text": "echo shared"}]}
    sent = await request(
        base, "POST", "/a2a/message:send", json={"message": message, "metadata": {"agent": "alpha"}}
    )
    task_id = sent.json()["task"]["id"]
    rpc = await request(
        base,
        "POST",
        "/a2a",
        json={"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task_id}},
    )
    assert rpc.json()["result"]["id"] == task_id
    original = hub_obj.principal
    hub_obj.principal = lambda r: r.headers.get("x-test-principal", "anonymous")
    try:
        other = await request(
            base, "GET", f"/a2a/tasks/{task_id}", headers={"X-Test-Principal": "mallory"}
        )
        assert other.status_code == 404
        listed = await request(base, "GET", "/a2a/tasks", headers={"X-Test-Principal": "mallory"})
        assert listed.json()["tasks"] == []
    finally:
        hub_obj.principal = original
