"""Wire details the A2A TCK found lost through the hub (issue 15), each checked on its own over
real HTTP against a hub with one a2a-sdk agent, so a regression names itself without a TCK run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
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


async def events(lines: AsyncIterator[str], until: str | None = None) -> list[dict[str, Any]]:
    """JSON-RPC results off an SSE stream: up to the first event in state `until`, or to the
    stream's end."""
    got = []
    async for line in lines:
        if line.startswith("data:"):
            got.append(orjson.loads(line[5:])["result"])
            if until is not None and state(got[-1]) == until:
                break
    return got


def state(event: dict[str, Any]) -> str | None:
    body = event.get("task") or event.get("statusUpdate") or {}
    return body.get("status", {}).get("state")


async def test_an_interrupted_task_keeps_its_streams_open(hub: tuple[Hub, str]) -> None:
    """1.0: a stream ends at a terminal state only. A subscriber to an input-required task
    stays on (as it does on the a2a-sdk agent itself) and gets the rest once the caller answers;
    the send's own stream ends where the agent's ends (this agent closes it at input-required)."""
    proxy = hub[1] + "/a2a/agents/alpha"
    asked = rpc("SendStreamingMessage", send_params("ask", "alpha"))
    async with httpx.AsyncClient(timeout=20) as http:
        async with http.stream("POST", proxy, json=asked, headers=V10) as sent:
            head = await events(sent.aiter_lines())
        assert state(head[-1]) == "TASK_STATE_INPUT_REQUIRED"
        task_id = head[0]["task"]["id"]
        subscribe = rpc("SubscribeToTask", {"id": task_id})
        async with http.stream("POST", proxy, json=subscribe, headers=V10) as watched:
            watching = watched.aiter_lines()
            snapshot = await events(watching, until="TASK_STATE_INPUT_REQUIRED")
            assert snapshot[0]["task"]["id"] == task_id
            answer = send_params("more please", "alpha")
            answer["message"]["taskId"] = task_id
            done = await http.post(proxy, json=rpc("SendMessage", answer), headers=V10)
            assert state(done.json()["result"]) == "TASK_STATE_COMPLETED", done.text
            rest = await events(watching)
        assert rest and state(rest[-1]) == "TASK_STATE_COMPLETED", rest
        # one snapshot only: the agent's own (opening the hub's upstream subscription) is not
        # relayed after the hub's, which a subscriber joining later would not get
        assert not [event for event in rest if "task" in event], rest


async def test_a_body_that_is_not_json_by_its_content_type_is_refused(
    hub: tuple[Hub, str],
) -> None:
    """Whatever the body: -32005 on JSON-RPC, 415 on HTTP+JSON; and HTTP+JSON answers in
    `application/json`."""
    base = hub[1]
    body = orjson.dumps(rpc("SendMessage", send_params("echo hi", "alpha")))
    for path in ("/a2a", "/a2a/agents/alpha"):
        refused = await call(
            base, "POST", path, content=body, headers={"Content-Type": "text/plain"}
        )
        assert refused.json()["error"]["code"] == -32005, (path, refused.text)
        taken = await call(
            base, "POST", path, content=body, headers={"Content-Type": "application/a2a+json"}
        )
        assert "result" in taken.json(), (path, taken.text)
    rest_body = orjson.dumps(send_params("echo hi", "alpha"))
    for path in ("/a2a/message:send", "/a2a/agents/alpha/message:send"):
        refused = await call(
            base, "POST", path, content=rest_body, headers={"Content-Type": "text/plain"}
        )
        assert refused.status_code == 415, (path, refused.text)
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["error"]["details"][0]["reason"] == "CONTENT_TYPE_NOT_SUPPORTED"
        taken = await call(
            base, "POST", path, content=rest_body, headers={"Content-Type": "application/json"}
        )
        assert taken.status_code == 200 and taken.headers["content-type"] == "application/json"


async def test_a_body_without_a_content_type_is_not_taken_as_json(
    hub: tuple[Hub, str],
) -> None:
    """No Content-Type is not JSON: -32005 on JSON-RPC, 415 on HTTP+JSON; an HTTP+JSON call
    whose body is optional (cancel) may still leave out both body and header."""
    base = hub[1]
    body = orjson.dumps(rpc("SendMessage", send_params("echo hi", "alpha")))
    for path in ("/a2a", "/a2a/agents/alpha"):
        refused = await call(base, "POST", path, content=body)
        assert "content-type" not in refused.request.headers
        assert refused.json()["error"]["code"] == -32005, (path, refused.text)
    rest_body = orjson.dumps(send_params("echo hi", "alpha"))
    for path in ("/a2a/message:send", "/a2a/agents/alpha/message:send"):
        refused = await call(base, "POST", path, content=rest_body)
        assert refused.status_code == 415, (path, refused.text)
        assert refused.json()["error"]["details"][0]["reason"] == "CONTENT_TYPE_NOT_SUPPORTED"
    cancel = await call(base, "POST", "/a2a/agents/alpha/tasks/no-such-task:cancel")
    assert cancel.status_code == 404, cancel.text
    assert cancel.json()["error"]["details"][0]["reason"] == "TASK_NOT_FOUND"


V03_FIELDS = {"url", "preferredTransport", "protocolVersion", "additionalInterfaces"}


async def test_cards_answer_in_the_callers_version(hub: tuple[Hub, str]) -> None:
    """1.0 (its schema forbids other properties): no 0.3 field; 0.3: the 0.3 fields; no
    `A2A-Version`: the shape of the agent's own card (this one is 1.0 only)."""
    base = hub[1]
    for path in ("/.well-known/agent-card.json", "/a2a/agents/alpha/.well-known/agent-card.json"):
        v10 = (await call(base, "GET", path)).json()
        assert not V03_FIELDS & v10.keys() and "supportsAuthenticatedExtendedCard" not in v10
        v03 = (await call(base, "GET", path, headers={"A2A-Version": "0.3"})).json()
        assert v03.keys() >= V03_FIELDS, path
        async with httpx.AsyncClient(timeout=10) as http:
            plain = (await http.get(base + path)).json()
        assert not V03_FIELDS & plain.keys(), path
    hub_card = await call(base, "POST", "/a2a", json=rpc("GetExtendedAgentCard", {}))
    assert not V03_FIELDS & hub_card.json()["result"].keys()


async def test_an_agents_path_answers_what_its_card_offers(hub: tuple[Hub, str]) -> None:
    """The agent offers neither push notifications nor an extended card: its path says so as
    the agent would (-32003, -32004), not with the hub's own."""
    proxy = hub[1] + "/a2a/agents/alpha"
    push = {"taskId": "t1", "url": "https://example.com/hook"}
    refused = await call(proxy, "POST", "", json=rpc("CreateTaskPushNotificationConfig", push))
    assert refused.json()["error"]["code"] == -32003, refused.text
    rest = await call(proxy, "GET", "/tasks/t1/pushNotificationConfigs")
    assert rest.status_code == 400 and rest.json()["error"]["status"] == "FAILED_PRECONDITION"
    card = await call(proxy, "POST", "", json=rpc("GetExtendedAgentCard", {}))
    assert card.json()["error"]["code"] == -32004, card.text
