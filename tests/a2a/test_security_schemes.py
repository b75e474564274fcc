"""A2A security over real HTTP: the hub's cards declare exactly what Junction's guard enforces
(and the official a2a-sdk client authenticates by reading them), and calls to agents carry
the credentials each agent's card asks for: static ones, OAuth client credentials from the real
OpenID provider (tests/identity/provider.mjs), or the caller's own token only where the card
and the token say it is meant for that agent. Agents are a2a-sdk servers in their own venv."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from junction.root import Junction
from router_core.http import close_session
from tests.a2a.harness import PEERS, free_port, sdk_agent
from tests.identity.oidc import Provider, claims_of, oidc_provider
from tests.peers import python_peer
from tests.transports.servers import loopback_socket, serve_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "hub-key-3f9a"
"""Junction's API key (name `ops`)."""
BEARER = "agent-bearer-7c21"
API_KEY = "agent-apikey-55e0"


@contextlib.contextmanager
def secure_agent(name: str, scheme: str, *args: str) -> Iterator[str]:
    """tests/a2a/peers/sdk_secure_agent.py; yields its base URL."""
    port = free_port()
    command = [str(python_peer("a2a-sdk")), str(PEERS / "sdk_secure_agent.py")]
    command += ["--port", str(port), "--name", name, "--scheme", scheme, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "READY", f"agent {name} did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()


@asynccontextmanager
async def junction(
    tmp_path: Path,
    server: dict[str, Any],
    agents: dict[str, Any],
    *,
    sock: socket.socket | None = None,
    **extra: Any,
) -> AsyncIterator[tuple[Junction, str]]:
    """Junction on a real socket (`sock`, or a new one); `server` and `agents` may use
    `{base}` (its own URL, e.g. the audience)."""
    sock = sock or loopback_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = json.loads(json.dumps(server).replace("{base}", base))
    agents = json.loads(json.dumps(agents).replace("{base}", base))
    config = {
        "store": {"url": f"sqlite:///{tmp_path}/j-{sock.getsockname()[1]}.db"},
        "server": server,
        "a2a_agents": agents,
        **extra,
    }
    running = Junction.from_config(config)
    try:
        async with running, serve_app(running.asgi_app(), sock=sock):
            yield running, base
    finally:
        await close_session()


def keyed(key: str = KEY, version: str = "1.0") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "A2A-Version": version}


async def send(base: str, headers: dict[str, str], agent: str, text: str = "echo hi") -> Any:
    """SendMessage through the hub's proxy for `agent`; the JSON-RPC reply."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {
                "messageId": os.urandom(6).hex(),
                "role": "ROLE_USER",
                "parts": [{"text": text}],
            }
        },
    }
    async with httpx.AsyncClient(timeout=30) as http:
        reply = await http.post(f"{base}/a2a/agents/{agent}", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    return reply.json()


def completed(reply: Any) -> bool:
    return reply.get("result", {}).get("task", {}).get("status", {}).get("state") == (
        "TASK_STATE_COMPLETED"
    )


async def seen(agent_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        return list((await http.get(agent_url + "/seen")).json())


# ----------------------------------------------------------------- what the cards declare

BEARER_SCHEME = {"httpAuthSecurityScheme": {"scheme": "Bearer"}}
APIKEY_SCHEME = {"apiKeySecurityScheme": {"location": "header", "name": "x-api-key"}}


def without_descriptions(schemes: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {kind: {k: v for k, v in body.items() if k != "description"}}
        for name, scheme in schemes.items()
        for kind, body in scheme.items()
        if kind.endswith("SecurityScheme")
    }


async def test_cards_declare_exactly_what_the_hub_enforces(tmp_path: Path) -> None:
    issuer = "http://127.0.0.1:9/idp"  # never asked: no token is presented here
    pem = tmp_path / "hub.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    oauth = {"issuer": issuer, "audience": "{base}"}
    with (
        sdk_agent("plain", "1.0", ("research:web",)) as plain,
        secure_agent("guarded", "bearer", "--secret", BEARER) as guarded,
    ):
        agents = {"plain": {"url": plain}, "guarded": {"url": guarded}}
        signing = {"card_signatures": {"signing_key_file": str(pem)}}
        server = {"api_keys": [{"key": KEY, "name": "ops"}], "oauth": oauth}
        async with (
            junction(tmp_path, server, agents, a2a=signing) as (running, base),
            httpx.AsyncClient(timeout=10) as http,
        ):
            hub = (await http.get(f"{base}/.well-known/agent-card.json", headers=keyed())).json()
            oidc = {
                "openIdConnectSecurityScheme": {
                    "openIdConnectUrl": f"{issuer}/.well-known/openid-configuration"
                }
            }
            expected = {"bearer": BEARER_SCHEME, "apiKey": APIKEY_SCHEME, "openIdConnect": oidc}
            assert without_descriptions(hub["securitySchemes"]) == expected
            assert (
                base
                in hub["securitySchemes"]["openIdConnect"]["openIdConnectSecurityScheme"][
                    "description"
                ]
            )
            assert hub["securityRequirements"] == [
                {"schemes": {"bearer": {"list": []}}},
                {"schemes": {"apiKey": {"list": []}}},
                {"schemes": {"openIdConnect": {"list": ["a2a"]}}},
            ]
            assert "security" not in hub  # a 1.0 card has no 0.3 fields
            # a 0.3 caller gets 0.3's `security` and each scheme's 0.3 fields beside 1.0's
            legacy = (
                await http.get(f"{base}/.well-known/agent-card.json", headers=keyed(version="0.3"))
            ).json()
            assert legacy["security"] == [
                {"bearer": []},
                {"apiKey": []},
                {"openIdConnect": ["a2a"]},
            ]
            assert legacy["securitySchemes"]["apiKey"]["type"] == "apiKey"
            assert legacy["securitySchemes"]["apiKey"]["in"] == "header"
            assert legacy["securitySchemes"]["apiKey"]["name"] == "x-api-key"
            assert legacy["securitySchemes"]["bearer"]["type"] == "http"
            assert legacy["securitySchemes"]["openIdConnect"]["openIdConnectUrl"].startswith(issuer)
            # the guarded agent's proxy card: the hub's schemes, never the agent's own
            proxy = (
                await http.get(
                    f"{base}/a2a/agents/guarded/.well-known/agent-card.json", headers=keyed()
                )
            ).json()
            own = (await http.get(f"{guarded}/.well-known/agent-card.json")).json()
            assert list(own["securitySchemes"]) == ["bearer"]
            assert proxy["securitySchemes"] == hub["securitySchemes"]
            assert proxy["securityRequirements"] == hub["securityRequirements"]
            # signed after the security fields were set: the signature covers them
            verifier = running.hub.registry._verifier
            from a2a.signing import KeySource, SignatureError

            async def fetch(url: str) -> dict[str, Any]:
                return dict((await http.get(url, headers=keyed())).json())

            source = KeySource(fetch, lambda url: url.startswith(base))
            for card in (hub, proxy):
                assert await verifier.verify(card, "required", source)
                stripped = {k: v for k, v in card.items() if k != "securityRequirements"}
                with pytest.raises(SignatureError, match="does not verify"):
                    await verifier.verify(stripped, "required", source)
        # keys only: the two key schemes; an open hub: none at all
        async with (
            junction(tmp_path, {"api_keys": [KEY]}, agents) as (_, base),
            httpx.AsyncClient(timeout=10) as http,
        ):
            card = (await http.get(f"{base}/.well-known/agent-card.json", headers=keyed())).json()
            assert without_descriptions(card["securitySchemes"]) == {
                "bearer": BEARER_SCHEME,
                "apiKey": APIKEY_SCHEME,
            }
        async with (
            junction(tmp_path, {}, agents) as (_, base),
            httpx.AsyncClient(timeout=10) as http,
        ):
            for path in (
                "/.well-known/agent-card.json",
                "/a2a/agents/guarded/.well-known/agent-card.json",
            ):
                for version in ("1.0", "0.3"):
                    card = (await http.get(base + path, headers={"A2A-Version": version})).json()
                    assert card["name"], card
                    fields = {"securitySchemes", "securityRequirements", "security"}
                    assert not fields & set(card), (path, version, card)


async def sdk_auth_client(
    url: str, credentials: dict[str, str], version: str = "1.0", card_key: str = ""
) -> dict[str, Any]:
    """tests/a2a/peers/sdk_auth_client.py: reads the card (the public one unless `card_key`)
    and sends one message with what the card's requirements pick from `credentials`."""
    env = {**os.environ, "CARD_KEY": card_key, "CREDENTIALS": json.dumps(credentials)}
    process = await asyncio.create_subprocess_exec(
        str(python_peer("a2a-sdk")),
        str(PEERS / "sdk_auth_client.py"),
        url,
        version,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return dict(orjson.loads(out))


async def test_the_sdk_client_authenticates_as_the_card_says(tmp_path: Path) -> None:
    async with oidc_provider() as provider:
        with sdk_agent("plain", "1.0", ("research:web",)) as plain:
            server = {
                "api_keys": [{"key": KEY, "name": "ops"}],
                "oauth": {"issuer": provider.issuer, "audience": "{base}"},
            }
            async with junction(tmp_path, server, {"plain": {"url": plain}}) as (_, base):
                token = await provider.client_token("service", scope="a2a", resource=base)
                for version in ("1.0", "0.3"):
                    by_key = await sdk_auth_client(base, {"apiKey": KEY}, version)
                    assert set(by_key["schemes"]) == {"bearer", "apiKey", "openIdConnect"}
                    assert "events" in by_key, by_key
                    assert by_key["events"][-1]["task"]["status"]["state"] == (
                        "TASK_STATE_COMPLETED"
                    )
                by_token = await sdk_auth_client(base, {"openIdConnect": token})
                assert "events" in by_token, by_token
                assert "error" in await sdk_auth_client(base, {})  # nothing to present: 401


# --------------------------------------------------------------- calls to guarded agents


async def test_static_credentials_reach_the_agents_that_ask_for_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        secure_agent("guarded", "bearer", "--secret", BEARER) as bearer_url,
        secure_agent("keyed", "apikey", "--secret", API_KEY, "--header", "X-Agent-Key") as key_url,
    ):
        agents = {
            "guarded": {"url": bearer_url, "auth": {"bearer": BEARER}},
            "keyed": {"url": key_url, "auth": {"api_key": API_KEY}},
            "bare": {"url": bearer_url},
            "wrong": {"url": bearer_url, "auth": {"bearer": "not-it"}},
        }
        async with junction(tmp_path, {"api_keys": [KEY]}, agents) as (running, base):
            assert completed(await send(base, keyed(), "guarded")), "bearer"
            assert completed(await send(base, keyed(), "keyed")), "api key in the card's header"
            assert len(await seen(key_url)) == 1
            # nothing configured for what the card requires: said at registration, refused
            # with a clear A2A error, and the agent never sees the call
            before = len(await seen(bearer_url))
            bare = await send(base, keyed(), "bare")
            assert bare["error"]["code"] == -32603, bare
            assert "requires bearer (HTTP Bearer)" in bare["error"]["message"]
            assert "a2a_agents.bare.auth" in bare["error"]["message"]
            assert len(await seen(bearer_url)) == before
            # a credential the agent refuses: its 401 said as such, the agent still ready
            wrong = await send(base, keyed(), "wrong")
            assert "refused Junction's credentials (HTTP 401" in wrong["error"]["message"], wrong
            assert completed(await send(base, keyed(), "guarded"))
            async with httpx.AsyncClient(timeout=10) as http:
                admin = (await http.get(f"{base}/admin/a2a/agents", headers=keyed())).text
                cards = [
                    (await http.get(f"{base}{path}", headers=keyed())).text
                    for path in (
                        "/.well-known/agent-card.json",
                        "/a2a/agents/guarded/.well-known/agent-card.json",
                    )
                ]
            states = {a["name"]: a for a in json.loads(admin)["agents"]}
            assert states["bare"]["state"].startswith("needs credentials: its card requires")
            assert states["guarded"]["state"] == "ready" and states["wrong"]["state"] == "ready"
            assert states["guarded"]["auth"] == "bearer"
            assert states["keyed"]["security"] == ["apikey (API key in header X-Agent-Key)"]
            from junction.config.redaction import redact

            dump = json.dumps(redact(running.config.model_dump()))
            for secret in (BEARER, API_KEY):
                for where, text in (
                    ("admin", admin),
                    ("config dump", dump),
                    *(("card", card) for card in cards),
                ):
                    assert secret not in text, where
                assert secret not in caplog.text
        # `junction agents` tells the same, without a running hub
        from junction.cli.inspect import inspect_agents
        from junction.config import JunctionConfig

        config = JunctionConfig.model_validate({"a2a_agents": agents})
        summaries = {s["name"]: s for s in await inspect_agents(config)}
        await close_session()
        assert summaries["bare"]["state"].startswith("needs credentials")
        assert summaries["guarded"]["state"] == "ready"


async def test_oauth_credentials_toward_agents(tmp_path: Path) -> None:
    async with oidc_provider() as provider:
        await oauth_checks(tmp_path, provider)


async def oauth_checks(tmp_path: Path, provider: Provider) -> None:
    issuer = provider.issuer
    sock = loopback_socket()  # bound first: Junction's URL is the audience `team` accepts
    hub_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with (
        # client credentials: the card's OAuth 2 flow names the token URL
        secure_agent(
            "cc",
            "oauth2",
            "--issuer",
            issuer,
            "--audience",
            "self",
            "--token-url",
            f"{issuer}/token",
        ) as cc,
        # one-second tokens, the token endpoint found through the card's OpenID Connect scheme
        secure_agent("short", "oidc", "--issuer", issuer, "--audience", "urn:short") as short,
        # an agent that takes tokens for Junction's own audience, from the same issuer
        secure_agent("team", "oidc", "--issuer", issuer, "--audience", hub_url) as team,
    ):
        agents = {
            "cc": {
                "url": cc,
                "auth": {
                    "oauth_client_credentials": {
                        "client_id": "service",
                        "client_secret": "service-secret",
                        "scopes": ["a2a"],
                        "resource": cc,
                    }
                },
            },
            "short": {
                "url": short,
                "auth": {
                    "oauth_client_credentials": {
                        "client_id": "short",
                        "client_secret": "short-secret",
                        "resource": "urn:short",
                    }
                },
            },
            "team": {"url": team, "auth": {"forward_caller": True, "audience": hub_url}},
            "elsewhere": {"url": team, "auth": {"forward_caller": True}},
        }
        server = {"api_keys": [KEY], "oauth": {"issuer": issuer, "audience": hub_url}}
        async with junction(tmp_path, server, agents, sock=sock) as (running, base):
            assert base == hub_url
            # client credentials: one token for both calls (cached), for the agent's audience
            assert completed(await send(base, keyed(), "cc"))
            assert completed(await send(base, keyed(), "cc"))
            first, second = await seen(cc)
            assert first["client_id"] == "service" and first["aud"] == cc
            assert first["jti"] == second["jti"]
            # a token that has run out is fetched again (the provider's `short` ones live 1 s)
            assert completed(await send(base, keyed(), "short"))
            await asyncio.sleep(1.5)
            assert completed(await send(base, keyed(), "short"))
            one, two = await seen(short)
            assert one["jti"] != two["jti"]
            # the caller's own token goes on only to the agent that takes Junction's audience
            token = await provider.client_token("service", scope="a2a", resource=hub_url)
            assert completed(await send(base, {**keyed(token)}, "team"))
            (forwarded,) = await seen(team)
            assert forwarded["jti"] == claims_of(token)["jti"]
            elsewhere = await send(base, keyed(token), "elsewhere")
            assert "not for this agent's audience" in elsewhere["error"]["message"], elsewhere
            by_key = await send(base, keyed(), "team")  # an API key caller has no token
            assert "signed in without one" in by_key["error"]["message"], by_key
            assert len(await seen(team)) == 1  # neither reached it
            states = {a.name: a.state() for a in running.hub.registry.all()}
            assert set(states.values()) == {"ready"}, states
        # a card naming another issuer than Junction's: forward_caller is refused at once
        other = {"issuer": "http://127.0.0.1:9/other", "audience": "{base}"}
        async with junction(tmp_path, {"api_keys": [KEY], "oauth": other}, agents) as (
            running,
            base,
        ):
            state = running.hub.registry.get("team")
            assert state is not None
            assert "another issuer" in state.state(), state.state()
            reply = await send(base, keyed(), "team")
            assert "another issuer" in reply["error"]["message"], reply


async def test_unmet_requirements_are_named_and_card_token_urls_checked() -> None:
    from a2a.credentials import credentials_for
    from a2a.settings import AgentAuth

    def no_session() -> Any:
        raise AssertionError("nothing is fetched while credentials are chosen")

    discovery = "https://idp.example/.well-known/openid-configuration"
    card = {
        "securitySchemes": {
            "sso": {"openIdConnectSecurityScheme": {"openIdConnectUrl": discovery}},
            "cc": {
                "oauth2SecurityScheme": {
                    "flows": {"clientCredentials": {"tokenUrl": "http://idp.example/token"}}
                }
            },
        },
        "securityRequirements": [
            {"schemes": {"sso": {"list": []}}},
            {"schemes": {"cc": {"list": []}}},
        ],
    }
    where = {"agent_url": "https://x.example", "hub_issuer": None, "session": no_session}
    refused, problem = credentials_for("x", None, {}, card, **where)
    assert problem == (
        f"its card requires sso (OpenID Connect, {discovery}) or cc (OAuth 2), and nothing "
        "is configured for it (a2a_agents.x.auth)"
    )
    assert refused is not None
    # a client secret never goes to a plain-http token URL a card names (https.../sso is fine)
    auth = AgentAuth.model_validate(
        {"oauth_client_credentials": {"client_id": "j", "client_secret": "s"}}
    )
    only_cc = {**card, "securityRequirements": card["securityRequirements"][1:]}
    _, problem = credentials_for("x", auth, {}, only_cc, **where)
    assert problem is not None and "http://idp.example/token is not https" in problem
    chosen, problem = credentials_for("x", auth, {}, card, **where)
    assert problem is None and type(chosen).__name__ == "ClientCredentials"
    # forward_caller needs the card's issuer to be Junction's
    forward = AgentAuth(forward_caller=True)
    _, problem = credentials_for("x", forward, {}, card, **{**where, "hub_issuer": "https://a"})
    assert problem is not None and "another issuer" in problem
    # fixed headers that carry what a scheme asks for meet it
    met, problem = credentials_for("x", None, {"Authorization": "Bearer t"}, card, **where)
    assert met is None and problem is None
    # one kind of credential per agent
    with pytest.raises(ValueError, match="exactly one of"):
        AgentAuth.model_validate({"bearer": "a", "api_key": "b"})
