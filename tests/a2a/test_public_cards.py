"""Public agent cards on a hub that asks for credentials, over real HTTP (A2A 1.0 sections
3.1.11, 13.3, 14.3): the hub's card and each agent's are readable without a key, declare the
schemes and say `extendedAgentCard`, and show only `a2a.public_agents`' skills; the extended
card (JSON-RPC 1.0 and 0.3, HTTP+JSON) and a card fetched with a key show what that key may
use; both views carry a signature the official a2a-sdk verifies; a web page is still refused.
Agents are a2a-sdk servers in their own venv."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from a2a.paths import is_public_card
from tests.a2a.harness import sdk_agent
from tests.a2a.test_card_signatures import sdk_verifies
from tests.a2a.test_security_schemes import KEY, junction, keyed, sdk_auth_client

NARROW = "hub-key-narrow-81d0"
"""A key limited to the agent `docs`."""
MODELS = "hub-key-models-2b7e"
"""A key without the a2a scope."""

HUB_CARD = "/.well-known/agent-card.json"
PLAIN_CARD = "/a2a/agents/plain/.well-known/agent-card.json"
DOCS_CARD = "/a2a/agents/docs/.well-known/agent-card.json"


def skill_ids(card: dict[str, Any]) -> set[str]:
    return {skill["id"] for skill in card["skills"]}


def signing_key(tmp_path: Path) -> Path:
    pem = tmp_path / "hub.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem


async def rpc(
    http: httpx.AsyncClient, url: str, method: str, headers: dict[str, str]
) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {}}
    return await http.post(url, json=body, headers=headers)


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/.well-known/agent-card.json", True),
        ("/.well-known/agent-card.json/", True),
        ("/a2a/.well-known/agent-card.json", True),
        ("/a2a/agents/x/.well-known/agent-card.json", True),
        ("/a2a/agents/x/.well-known/agent-card.json/", True),
        ("/a2a/jwks.json", True),
        ("/a2a/agents//.well-known/agent-card.json", False),
        ("/a2a/agents/x/y/.well-known/agent-card.json", False),
        ("/a2a/extendedAgentCard", False),
        ("/a2a/v1/card", False),
        ("/a2a", False),
        ("/mcp/.well-known/agent-card.json", False),
        ("/.well-known/agent-card.jsonx", False),
    ],
)
def test_which_paths_are_public_cards(path: str, public: bool) -> None:
    assert is_public_card(path) is public


@pytest.mark.asyncio
async def test_cards_are_public_and_the_extended_card_is_not(tmp_path: Path) -> None:
    server = {
        "api_keys": [
            {"key": KEY, "name": "ops"},
            {"key": NARROW, "name": "narrow", "a2a_agents": ["docs"]},
            {"key": MODELS, "name": "models", "scopes": ["openai"]},
        ]
    }
    a2a = {
        "public_agents": ["docs"],
        "card_signatures": {"signing_key_file": str(signing_key(tmp_path))},
    }
    with (
        sdk_agent("plain", "1.0", ("research:web",)) as plain,
        sdk_agent("docs", "1.0", ("lookup:docs",)) as docs,
    ):
        agents = {"plain": {"url": plain}, "docs": {"url": docs}}
        async with (
            junction(tmp_path, server, agents, a2a=a2a) as (running, base),
            httpx.AsyncClient(timeout=20) as http,
        ):
            v10 = {"A2A-Version": "1.0"}
            # the hub's public card, at every path it is served on, without a credential
            for path in (HUB_CARD, HUB_CARD + "/", "/a2a" + HUB_CARD, "/a2a" + HUB_CARD + "/"):
                response = await http.get(base + path, headers=v10)
                assert response.status_code == 200, (path, response.text)
                card = response.json()
                assert skill_ids(card) == {"docs/lookup"}, path
                assert card["capabilities"]["extendedAgentCard"] is True
                assert set(card["securitySchemes"]) == {"bearer", "apiKey"}
                assert card["securityRequirements"]
                assert card["supportedInterfaces"][0]["url"] == f"{base}/a2a"
                assert card["signatures"]
            public_hub = await http.get(base + HUB_CARD, headers=v10)
            legacy = (await http.get(base + HUB_CARD, headers={"A2A-Version": "0.3"})).json()
            assert legacy["supportsAuthenticatedExtendedCard"] is True
            assert legacy["security"] == [{"bearer": []}, {"apiKey": []}]
            # each agent's public card: a private agent's skills are kept back, and neither
            # names the agent's own (internal) address
            for path in (PLAIN_CARD, PLAIN_CARD + "/"):
                response = await http.get(base + path, headers=v10)
                assert response.status_code == 200, (path, response.text)
                card = response.json()
                assert card["name"] == "plain" and card["skills"] == []
                assert card["capabilities"]["extendedAgentCard"] is True
                assert set(card["securitySchemes"]) == {"bearer", "apiKey"}
                assert plain not in response.text and "upstreamCardUrl" not in response.text
            docs_card = (await http.get(base + DOCS_CARD, headers=v10)).json()
            assert skill_ids(docs_card) == {"lookup"} and docs not in str(docs_card)
            # both public cards verify with the official SDK, key set fetched without a key
            for path in (HUB_CARD, PLAIN_CARD):
                assert await asyncio.to_thread(sdk_verifies, base + path) == "VERIFIED", path

            # with a key: the caller's view, on the card and as the extended card
            full = await http.get(base + HUB_CARD, headers=keyed())
            assert skill_ids(full.json()) == {"plain/research", "docs/lookup"}
            assert full.headers["etag"] != public_hub.headers["etag"]
            assert "authorization" in public_hub.headers["vary"].lower()
            stale = await http.get(
                base + HUB_CARD, headers={**keyed(), "If-None-Match": public_hub.headers["etag"]}
            )
            assert stale.status_code == 200, "a key's card is not the public one's 304"
            extended = await rpc(http, f"{base}/a2a", "GetExtendedAgentCard", keyed())
            assert skill_ids(extended.json()["result"]) == {"plain/research", "docs/lookup"}
            narrow = await rpc(http, f"{base}/a2a", "GetExtendedAgentCard", keyed(NARROW))
            assert skill_ids(narrow.json()["result"]) == {"docs/lookup"}
            old = await rpc(
                http, f"{base}/a2a", "agent/getAuthenticatedExtendedCard", keyed(version="0.3")
            )
            assert skill_ids(old.json()["result"]) == {"plain/research", "docs/lookup"}
            rest = await http.get(f"{base}/a2a/extendedAgentCard", headers=keyed())
            assert skill_ids(rest.json()) == {"plain/research", "docs/lookup"}
            extended_url = f"{base}/a2a/extendedAgentCard"
            assert await asyncio.to_thread(sdk_verifies, extended_url, KEY) == "VERIFIED"
            # the per-agent extended card has what its public card keeps back, signed too
            agent_extended = await rpc(
                http, f"{base}/a2a/agents/plain", "GetExtendedAgentCard", keyed()
            )
            result = agent_extended.json()["result"]
            assert skill_ids(result) == {"research"}
            assert result["capabilities"]["extendedAgentCard"] is True
            verifier = running.hub.registry._verifier
            from a2a.signing import KeySource

            async def fetch(url: str) -> dict[str, Any]:
                return dict((await http.get(url)).json())

            source = KeySource(fetch, lambda url: url.startswith(base))
            assert await verifier.verify(result, "required", source)
            assert await verifier.verify(narrow.json()["result"], "required", source)

            # the extended card stays behind the guard, in every binding and version
            refused = [
                await rpc(http, f"{base}/a2a", "GetExtendedAgentCard", v10),
                await rpc(http, f"{base}/a2a/agents/plain", "GetExtendedAgentCard", v10),
                await http.get(f"{base}/a2a/extendedAgentCard", headers=v10),
                await http.get(f"{base}/a2a/v1/card", headers={"A2A-Version": "0.3"}),
            ]
            assert [r.status_code for r in refused] == [401, 401, 401, 401]
            # public is not cross-origin: a web page is refused, key or not
            page = {"Origin": "http://evil.example", **v10}
            for path in (HUB_CARD, PLAIN_CARD, "/a2a/jwks.json"):
                assert (await http.get(base + path, headers=page)).status_code == 403, path
                assert (await http.get(base + path, headers={**page, **keyed()})).status_code == 403
            # a credential that is presented is checked: wrong, or without the a2a scope
            wrong = await http.get(base + HUB_CARD, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert (await http.get(base + HUB_CARD, headers=keyed(MODELS))).status_code == 403
            assert (await http.get(f"{base}/a2a/jwks.json")).status_code == 200
            # everything else on the surface still wants a key
            tasks = await http.get(f"{base}/a2a/tasks", headers=v10)
            assert tasks.status_code == 401

            # the official client learns the schemes from the public card, then authenticates
            by_key = await sdk_auth_client(f"{base}/a2a/agents/plain", {"apiKey": KEY})
            assert set(by_key["schemes"]) == {"bearer", "apiKey"}
            assert by_key["events"][-1]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
            assert "error" in await sdk_auth_client(f"{base}/a2a/agents/plain", {})


@pytest.mark.asyncio
async def test_an_open_hub_shows_one_card(tmp_path: Path) -> None:
    """No keys and no OAuth: nothing is private, the public card is the whole card and the
    agents' capabilities are their own (no extended card is made up for them)."""
    with sdk_agent("plain", "1.0", ("research:web",)) as plain:
        async with (
            junction(tmp_path, {}, {"plain": {"url": plain}}, a2a={"public_agents": []}) as (
                _,
                base,
            ),
            httpx.AsyncClient(timeout=20) as http,
        ):
            v10 = {"A2A-Version": "1.0"}
            hub = (await http.get(base + HUB_CARD, headers=v10)).json()
            assert skill_ids(hub) == {"plain/research"}
            card = (await http.get(base + PLAIN_CARD, headers=v10)).json()
            assert skill_ids(card) == {"research"}
            assert not card["capabilities"].get("extendedAgentCard")
            unsupported = await rpc(http, f"{base}/a2a/agents/plain", "GetExtendedAgentCard", v10)
            assert unsupported.json()["error"]["code"] == -32004
