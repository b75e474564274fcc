"""Credentials embedded in backend URLs (`user:password@`, `?api_key=`) never show in
`/admin/backends` (nor in `junction backends`, which prints the same snapshot), over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from router_core import BackendSpec, redact_url, redact_urls
from router_core.backends.base import map_client_error
from router_core.http import close_session
from tests.router_core.llm_servers import openai_server
from tests.router_core.test_openai_api import junction
from tests.router_core.test_router import FAST


@pytest.fixture(autouse=True)
async def _shared_session() -> AsyncIterator[None]:
    yield
    await close_session()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("https://ann:pa55word@llm.example:8443/v1", "https://ann:***@llm.example:8443/v1"),
        ("https://sk-abcdef0123456789@llm.example/v1", "https://***@llm.example/v1"),
        (
            "https://llm.example/v1?api_key=TOPSECRET&api-version=2024",
            "https://llm.example/v1?api_key=***&api-version=2024",
        ),
        (
            "http://h/v1?access_token=a&sig=b&model=m",
            "http://h/v1?access_token=***&sig=***&model=m",
        ),
        ("http://[::1]:9/v1?key=k", "http://[::1]:9/v1?key=***"),
        ("not a url", "not a url"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_urls_quoted_in_error_messages_are_redacted() -> None:
    text = "400, message='Bad Request', url='http://h/v1/chat/completions?api_key=TOPSECRET'"
    assert redact_urls(text) == (
        "400, message='Bad Request', url='http://h/v1/chat/completions?api_key=***'"
    )
    assert redact_urls("no url here") == "no url here"
    error = map_client_error(aiohttp.InvalidURL("http://u:TOPSECRET@h/v1"), "b", "sending")
    assert "TOPSECRET" not in str(error) and "u:***@h" in str(error)


async def test_admin_backends_shows_no_credentials() -> None:
    async with openai_server(["m1"]) as upstream:
        host = upstream.url.removeprefix("http://")
        configured = BackendSpec(
            name="configured",
            type="openai",
            url=f"http://ann:CONFIGSECRET@{host}/v1?api_key=QUERYSECRET",
            models=["m1"],
            timeouts=FAST,
        )
        async with junction([configured]) as (client, router):
            registration = {
                "name": "registered",
                "type": "openai",
                "url": f"http://REGISTEREDTOKEN@{host}/v1?token=OTHERSECRET&tenant=t1",
                "models": ["m2"],
            }
            response = await client.post("/admin/backends", json=registration)
            assert response.status_code == 201, response.text
            entry = router.registry.get("configured")
            assert entry is not None
            entry.stats.fail(f"invalid HTTP response (url='{configured.url}/chat/completions')")

            response = await client.get("/admin/backends")
            assert response.status_code == 200
            for secret in ("CONFIGSECRET", "QUERYSECRET", "REGISTEREDTOKEN", "OTHERSECRET"):
                assert secret not in response.text
            rows = {row["name"]: row for row in response.json()["backends"]}
            assert rows["configured"]["url"] == f"http://ann:***@{host}/v1?api_key=***"
            assert rows["registered"]["url"] == f"http://***@{host}/v1?token=***&tenant=t1"
            assert "api_key=***" in rows["configured"]["last_error"]
            # only what is shown changes: requests still go to the URL as configured
            assert entry.backend.url == configured.url
