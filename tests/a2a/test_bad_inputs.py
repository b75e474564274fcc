"""Bad cards, bad agents and bad webhooks: each gets a clear error and the hub stays up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from a2a import Hub
from router_core.http import close_session
from tests.a2a.harness import (
    Webhooks,
    rpc,
    running_hub,
    sdk_agent,
    send_params,
    webhook_receiver,
)
from tests.transports.servers import serve_app

pytestmark = pytest.mark.asyncio(loop_scope="module")


def card(base: str, path: str) -> dict[str, Any]:
    return {
        "name": path,
        "description": "a fake agent",
        "version": "1",
        "supportedInterfaces": [
            {"url": f"{base}/{path}/rpc", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "fake", "name": "fake", "description": "fake", "tags": []}],
    }


def fake_agent_app() -> Starlette:
    async def good_card(request: Request) -> Response:
        return JSONResponse(card(str(request.base_url).rstrip("/"), request.path_params["name"]))

    async def invalid_card(request: Request) -> Response:
        return JSONResponse({"name": 5, "skills": "many"})

    async def huge_card(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b'{"name": "huge", "description": "'
            for _ in range(20 * 16):
                yield b"x" * 65536
            yield b'"}'

        return StreamingResponse(body(), media_type="application/json")

    async def slow_card(request: Request) -> Response:
        await asyncio.sleep(30)
        return JSONResponse({})

    async def redirect_card(request: Request) -> Response:
        return RedirectResponse("http://169.254.169.254/latest/meta-data/", status_code=302)

    async def rpc(request: Request) -> Response:
        message = orjson.loads(await request.body())
        text = message["params"]["message"]["parts"][0]["text"]
        if text == "garbage":

            async def events() -> AsyncIterator[bytes]:
                task = {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}
                yield (
                    b"data: "
                    + orjson.dumps(
                        {"jsonrpc": "2.0", "id": message["id"], "result": {"task": task}}
                    )
                    + b"\n\n"
                )
                await asyncio.sleep(0.05)
                yield b"data: {this is not json\n\n"
                await asyncio.sleep(30)

            return StreamingResponse(events(), media_type="text/event-stream")
        if text == "wrong-shape":
            return JSONResponse({"jsonrpc": "2.0", "id": message["id"], "result": {"neither": 1}})
        await asyncio.sleep(30)  # "silent": never answers
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/invalid/.well-known/agent-card.json", invalid_card),
            Route("/huge/.well-known/agent-card.json", huge_card),
            Route("/slow/.well-known/agent-card.json", slow_card),
            Route("/redirect/.well-known/agent-card.json", redirect_card),
            Route("/{name}/.well-known/agent-card.json", good_card),
            Route("/{name}/rpc", rpc, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def dying_agent() -> Iterator[str]:
    with sdk_agent("mortal", "1.0") as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fake() -> AsyncIterator[str]:
    async with serve_app(fake_agent_app()) as base:
        yield base


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hub(
    fake: str, dying_agent: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Hub, str]]:
    db = tmp_path_factory.mktemp("bad") / "bad.db"
    agents = {"fake": f"{fake}/fake", "broken": f"{fake}/invalid"}
    async with running_hub(agents, db, request_timeout=1.0, stream_idle_timeout=1.0) as running:
        yield running
    await close_session()


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("invalid", "invalid agent card"),
        ("huge", "byte limit"),
        ("slow", "timed out"),
        ("redirect", "redirect refused"),
    ],
)
async def test_bad_cards_are_refused_with_a_reason(
    hub: tuple[Hub, str], fake: str, path: str, reason: str
) -> None:
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            f"{hub[1]}/admin/a2a/agents", json={"name": path, "url": f"{fake}/{path}"}
        )
        assert response.status_code == 422
        assert reason in response.json()["error"]
        listed = (await http.get(f"{hub[1]}/admin/a2a/agents")).json()["agents"]
    assert path not in {a["name"] for a in listed}


async def test_configured_agent_with_a_bad_card_does_not_stop_the_hub(hub: tuple[Hub, str]) -> None:
    async with httpx.AsyncClient() as http:
        listed = {
            a["name"]: a for a in (await http.get(f"{hub[1]}/admin/a2a/agents")).json()["agents"]
        }
    assert listed["broken"]["state"].startswith("error: invalid agent card")
    assert listed["fake"]["state"] == "ready"
    answer = await rpc(hub[1], "SendMessage", send_params("hi", "broken"))
    assert answer["error"]["code"] == -32004


async def test_register_and_deregister(hub: tuple[Hub, str], dying_agent: str) -> None:
    async with httpx.AsyncClient() as http:
        created = await http.post(
            f"{hub[1]}/admin/a2a/agents", json={"name": "extra", "url": dying_agent}
        )
        assert created.status_code == 201 and created.json()["state"] == "ready"
        card = (await http.get(f"{hub[1]}/.well-known/agent-card.json")).json()
        assert any(s["id"].startswith("extra/") for s in card["skills"])
        assert (await http.delete(f"{hub[1]}/admin/a2a/agents/extra")).status_code == 204
        assert (await http.delete(f"{hub[1]}/admin/a2a/agents/extra")).status_code == 404
        bad = await http.post(f"{hub[1]}/admin/a2a/agents", json={"url": dying_agent})
        assert bad.status_code == 400


async def test_malformed_event_ends_the_stream_failed(hub: tuple[Hub, str]) -> None:
    events = await rpc(hub[1], "SendStreamingMessage", send_params("garbage", "fake"))
    assert "task" in events[0]["result"]
    last = events[-1]["result"]["statusUpdate"]
    assert last["status"]["state"] == "TASK_STATE_FAILED"
    assert "malformed" in last["status"]["message"]["parts"][0]["text"]
    stored = await rpc(hub[1], "GetTask", {"id": last["taskId"]})
    assert stored["result"]["status"]["state"] == "TASK_STATE_FAILED"


async def test_agent_that_never_answers(hub: tuple[Hub, str]) -> None:
    answer = await rpc(hub[1], "SendMessage", send_params("silent", "fake"))
    assert answer["error"]["code"] == -32603
    assert "did not answer" in answer["error"]["message"]
    wrong = await rpc(hub[1], "SendMessage", send_params("wrong-shape", "fake"))
    assert wrong["error"]["code"] == -32603


async def test_agent_dying_mid_stream(dying_agent: str, tmp_path: Path) -> None:
    """A real a2a-sdk agent process that exits mid-stream (its own hub: the module's hub
    gives agents one second, which a busy machine's first SDK answer may need)."""
    async with running_hub({}, tmp_path / "mortal.db") as (_, base):
        async with httpx.AsyncClient() as http:
            created = await http.post(
                f"{base}/admin/a2a/agents", json={"name": "mortal", "url": dying_agent}
            )
            assert created.status_code == 201
        events = await rpc(base, "SendStreamingMessage", send_params("die", "mortal"))
        assert "task" in events[0]["result"]
        assert events[-1]["result"]["statusUpdate"]["status"]["state"] == "TASK_STATE_FAILED"
        # the hub is still up and answers
        assert (await rpc(base, "GetTask", {"id": "nope"}))["error"]["code"] == -32001


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest",
        "https://10.0.0.1/hook",
        "http://example.com/hook",
        "https://[::1]:1/",
    ],
)
async def test_push_targets_are_guarded(hub: tuple[Hub, str], url: str) -> None:
    done = await rpc(hub[1], "SendMessage", {**send_params("wrong-shape", "fake")})
    assert "error" in done
    params = send_params("garbage", "fake")
    params["configuration"] = {"taskPushNotificationConfig": {"url": url}}
    answer = await rpc(hub[1], "SendStreamingMessage", params)
    if url.startswith("https://[::1]"):
        assert isinstance(answer, list)  # loopback is allowed by this hub's settings (tests)
    else:
        assert answer["error"]["code"] == -32602
        assert "refused" in answer["error"]["message"]


async def test_a_push_name_is_taken_at_registration_and_judged_at_delivery(
    hub: tuple[Hub, str],
) -> None:
    """A webhook named by a host name is registered without a lookup (the TCK registers
    https://example.com/... where that name may not resolve); each delivery resolves it and
    refuses what it finds (here: nothing), and the hub stays up."""
    params = send_params("garbage", "fake")
    params["configuration"] = {"taskPushNotificationConfig": {"url": "https://hooks.invalid/x"}}
    failed_before = hub[0].push.failed
    events = await rpc(hub[1], "SendStreamingMessage", params)
    assert isinstance(events, list), events
    assert events[-1]["result"]["statusUpdate"]["status"]["state"] == "TASK_STATE_FAILED"
    async with asyncio.timeout(15):
        while hub[0].push.failed == failed_before:  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture(loop_scope="module")
async def webhooks() -> AsyncIterator[tuple[Webhooks, str]]:
    async with webhook_receiver() as receiver:
        yield receiver


async def test_webhook_500_is_retried(hub: tuple[Hub, str], webhooks: tuple[Webhooks, str]) -> None:
    hooks, url = webhooks
    hooks.failures_left = 2
    params = send_params("garbage", "fake")
    params["configuration"] = {"taskPushNotificationConfig": {"url": url, "token": "retry"}}
    await rpc(hub[1], "SendStreamingMessage", params)
    await hooks.wait_for(lambda h, b: "FAILED" in str(b))
    assert hooks.attempts >= 3


async def test_webhook_that_hangs_does_not_block(
    hub: tuple[Hub, str], webhooks: tuple[Webhooks, str]
) -> None:
    hooks, url = webhooks
    hooks.mode = "hang"
    params = send_params("garbage", "fake")
    params["configuration"] = {"taskPushNotificationConfig": {"url": url}}
    events = await rpc(hub[1], "SendStreamingMessage", params)
    assert events[-1]["result"]["statusUpdate"]["status"]["state"] == "TASK_STATE_FAILED"
    failed_before = hub[0].push.failed
    async with asyncio.timeout(15):
        while hub[0].push.failed == failed_before:  # noqa: ASYNC110 (polling a counter)
            await asyncio.sleep(0.1)
    assert (await rpc(hub[1], "GetTask", {"id": "nope"}))["error"]["code"] == -32001


async def test_oversized_and_batched_requests(hub: tuple[Hub, str], tmp_path: Path) -> None:
    async with httpx.AsyncClient() as http:
        big = await http.post(
            hub[1] + "/a2a",
            content=b"[" + b" " * (9 * 1024 * 1024) + b"]",
            headers={"A2A-Version": "1.0", "Content-Type": "application/json"},
        )
        assert big.json()["error"]["code"] == -32600
        batch = await http.post(
            hub[1] + "/a2a",
            json=[{"jsonrpc": "2.0", "id": 1, "method": "GetTask"}],
            headers={"A2A-Version": "1.0"},
        )
        assert batch.json()["error"]["code"] == -32600


async def test_rest_error_bodies_with_odd_details_are_still_read() -> None:
    from a2a.errors import error_from_body

    for details in (5, "x", None, [1, "y"]):
        error = error_from_body(
            {"error": {"message": "gone", "status": "NOT_FOUND", "details": details}}
        )
        assert error is not None and error.message == "gone" and error.code == -32001
