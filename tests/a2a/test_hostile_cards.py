"""Hostile agent cards, served over real HTTP: each makes its agent unavailable with a reason;
none stops the hub's start-up, none makes the admin API answer 500, none escapes the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from a2a import A2aClient, CardError
from router_core.http import close_session
from tests.a2a.harness import running_hub
from tests.transports.servers import serve_app

pytestmark = pytest.mark.asyncio(loop_scope="module")


def card_v10(interface_url: str) -> dict[str, Any]:
    return {
        "name": "hostile",
        "description": "a card with one thing wrong",
        "version": "1",
        "supportedInterfaces": [
            {"url": interface_url, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ],
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "s", "name": "s", "description": "s", "tags": []}],
    }


def card_v03(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "legacy",
        "description": "a 0.3 card",
        "version": "1",
        "url": url,
        "protocolVersion": "0.3.0",
        "capabilities": {},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "s", "name": "s", "description": "s", "tags": []}],
        **fields,
    }


# name -> (status, body, Location) served at /<name>/.well-known/agent-card.json, and a piece of
# the reason the agent's state must give.
HOSTILE: dict[str, tuple[int, bytes, str | None, str]] = {
    "not-an-object": (200, b"[1, 2]", None, "not a JSON object"),
    "not-utf8": (200, b'{"name": "\xff\xfe"}', None, "not JSON"),
    "wrong-types": (
        200,
        orjson.dumps(
            card_v03(
                "http://127.0.0.1:1/",
                capabilities="yes",
                supportsAuthenticatedExtendedCard=True,
            )
        ),
        None,
        "invalid agent card: capabilities",
    ),
    "interface-port": (
        200,
        orjson.dumps(card_v10("http://127.0.0.1:99999/rpc")),
        None,
        "interface URL is unusable",
    ),
    "interface-ipv6": (200, orjson.dumps(card_v10("http://[::1/rpc")), None, "interface"),
    "interface-list": (
        200,
        orjson.dumps({**card_v10("http://127.0.0.1:1/"), "supportedInterfaces": [1, "x"]}),
        None,
        "invalid agent card: supportedInterfaces",
    ),
    "redirect-loop": (307, b"", "/redirect-loop/.well-known/agent-card.json", "redirects"),
    "redirect-ipv6": (307, b"", "http://[::1/card", "card fetch failed"),
    "redirect-port": (307, b"", "http://127.0.0.1:99999/card", "redirect refused"),
    "redirect-not-utf8": (307, b"", "http://\u00ff\u00fe.example/card", "redirect refused"),
}


def hostile_app() -> Starlette:
    async def hostile(request: Request) -> Response:
        status, body, location, _ = HOSTILE[request.path_params["name"]]
        headers = {"Location": location} if location else None
        return Response(body, status_code=status, headers=headers, media_type="application/json")

    async def tolerated(request: Request) -> Response:
        """A 0.3 card whose optional `additionalInterfaces` has the wrong type: ignored."""
        base = str(request.base_url).rstrip("/")
        return JSONResponse(card_v03(f"{base}/tolerated/rpc", additionalInterfaces=5))

    return Starlette(
        routes=[
            Route("/tolerated/.well-known/agent-card.json", tolerated),
            Route("/{name}/.well-known/agent-card.json", hostile),
        ]
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cards() -> AsyncIterator[str]:
    async with serve_app(hostile_app()) as base:
        yield base
    await close_session()


async def test_start_up_goes_on_with_each_hostile_agent_unavailable(
    cards: str, tmp_path: Path
) -> None:
    agents = {name: f"{cards}/{name}" for name in [*HOSTILE, "tolerated"]}
    async with running_hub(agents, tmp_path / "hub.db") as (hub, base):
        for name, (*_, reason) in HOSTILE.items():
            agent = hub.registry.get(name)
            assert agent is not None and not agent.available(), name
            assert agent.state().startswith("error: ") and reason in agent.state(), name
        tolerated = hub.registry.get("tolerated")
        assert tolerated is not None and tolerated.state() == "ready"
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"{base}/admin/a2a/agents")).json()["agents"]
        assert {a["name"] for a in health} == set(agents)


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_admin_registration_answers_422_with_the_reason(
    cards: str, tmp_path: Path, name: str
) -> None:
    async with running_hub({}, tmp_path / "hub.db") as (_, base), httpx.AsyncClient() as http:
        response = await http.post(
            f"{base}/admin/a2a/agents", json={"name": name, "url": f"{cards}/{name}"}
        )
        assert response.status_code == 422
        assert HOSTILE[name][3] in response.json()["error"]
        listed = (await http.get(f"{base}/admin/a2a/agents")).json()["agents"]
    assert listed == []


async def test_admin_registration_of_a_tolerated_card(cards: str, tmp_path: Path) -> None:
    async with running_hub({}, tmp_path / "hub.db") as (_, base), httpx.AsyncClient() as http:
        response = await http.post(
            f"{base}/admin/a2a/agents", json={"name": "t", "url": f"{cards}/tolerated"}
        )
    assert response.status_code == 201 and response.json()["state"] == "ready"


@pytest.mark.parametrize("name", ["wrong-types", "interface-list", "redirect-ipv6"])
async def test_the_client_library_raises_card_error(cards: str, name: str) -> None:
    client = A2aClient(f"{cards}/{name}")
    with pytest.raises(CardError, match=HOSTILE[name][3]):
        await client.send("hello")


async def test_a_bad_agent_url_is_a_card_error(tmp_path: Path) -> None:
    async with running_hub({}, tmp_path / "hub.db") as (_, base), httpx.AsyncClient() as http:
        response = await http.post(
            f"{base}/admin/a2a/agents", json={"name": "typo", "url": "http://[::1:8000"}
        )
    assert response.status_code == 422 and "card fetch failed" in response.json()["error"]
