"""Credentials in agent URLs and headers stay out of what the hub shows: the admin API, its
errors, agent states and the proxied cards (real HTTP, a real card server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from a2a import Hub, SqliteTaskStore
from a2a.settings import AgentSpec
from router_core.http import close_session
from router_core.redaction import redact_url, redact_urls
from tests.a2a.harness import hub_settings
from tests.transports.servers import serve_app

SECRETS = ("hunter2-pw", "sekrit-key", "sekrit-token", "header-secret-value")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:8/a?x=1", "http://user:***@host:8/a?x=1"),
        ("https://ghp_abcdef@host/", "https://***@host/"),
        ("http://u:p@ss@host/p@q", "http://u:***@host/p@q"),
        (
            "http://h/a?api_key=k&page=2&X-Amz-Signature=s",
            "http://h/a?api_key=***&page=2&X-Amz-Signature=***",
        ),
        ("http://h/cb#access_token=t&state=1", "http://h/cb#access_token=***&state=1"),
        ("http://u:pw@[::1/x?token=t", "http://u:***@[::1/x?token=***"),
        ("http://h/plain", "http://h/plain"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_urls() -> None:
    text = "refused: 'ftp://u:pw@x/?sig=abc' after Bearer tok-123456 and tok-123456"
    assert (
        redact_urls(text, ["Bearer tok-123456"])
        == "refused: 'ftp://u:***@x/?sig=***' after *** and ***"
    )


def card_app() -> Starlette:
    async def good(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "name": "good",
                "description": "d",
                "version": "1",
                "supportedInterfaces": [
                    {
                        "url": f"{base}/good/rpc",
                        "protocolBinding": "JSONRPC",
                        "protocolVersion": "1.0",
                    }
                ],
                "capabilities": {},
                "defaultInputModes": ["text/plain"],
                "defaultOutputModes": ["text/plain"],
                "skills": [{"id": "s", "name": "s", "description": "s", "tags": []}],
            }
        )

    async def echo(request: Request) -> Response:
        """Bounces the card fetch to a refused URL that quotes the agent's API key header."""
        key = request.headers.get("x-api-key", "")
        return Response(status_code=307, headers={"Location": f"ftp://elsewhere.example/?x={key}"})

    return Starlette(
        routes=[
            Route("/good/.well-known/agent-card.json", good),
            Route("/echo/.well-known/agent-card.json", echo),
        ]
    )


@asynccontextmanager
async def hub_with(agents: dict[str, AgentSpec], db: Path) -> AsyncIterator[str]:
    hub = Hub(SqliteTaskStore(db), hub_settings())
    await hub.start(agents)
    try:
        async with serve_app(Starlette(routes=hub.routes())) as base:
            yield base
    finally:
        await hub.close()
        await close_session()


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


async def test_admin_api_and_proxied_card_show_no_credentials(tmp_path: Path) -> None:
    async with serve_app(card_app()) as cards:
        authority = cards.replace("http://", "http://user:hunter2-pw@")
        agents = {
            "secret-url": AgentSpec(
                url=f"{authority}/good?api_key=sekrit-key",
                card_url=f"{authority}/good/.well-known/agent-card.json?token=sekrit-token",
            ),
            "echo": AgentSpec(url=f"{cards}/echo", headers={"X-Api-Key": "header-secret-value"}),
        }
        async with hub_with(agents, tmp_path / "hub.db") as base, httpx.AsyncClient() as http:
            listed = await http.get(f"{base}/admin/a2a/agents")
            card = await http.get(f"{base}/a2a/agents/secret-url/.well-known/agent-card.json")
            refused = await http.post(
                f"{base}/admin/a2a/agents",
                json={
                    "name": "echo2",
                    "url": f"{cards}/echo",
                    "headers": {"X-Api-Key": "header-secret-value"},
                },
            )
    assert_clean(listed.text)
    assert_clean(card.text)
    assert_clean(refused.text)
    states = {a["name"]: a for a in listed.json()["agents"]}
    assert states["secret-url"]["state"] == "ready"
    assert (
        states["secret-url"]["url"] == authority.replace("hunter2-pw", "***") + "/good?api_key=***"
    )
    assert states["echo"]["state"].startswith("error: card redirect refused")
    assert refused.status_code == 422 and "redirect refused" in refused.json()["error"]
    assert card.json()["capabilities"]["extensions"][-1]["params"]["upstreamCardUrl"].endswith(
        "agent-card.json?token=***"
    )
