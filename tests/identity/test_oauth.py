"""Junction as an OAuth 2.1 resource server, against a real OpenID provider (node-oidc-provider)
on loopback and a Junction app on a real socket: tokens beside keys on every surface, the MCP
authorization flow walked by the `mcp` SDK's OAuth client, the bad tokens refused, the audit
trail, and a token's identity owning its work."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from junction.root import Junction
from router_core.http import close_session
from tests.identity.oidc import REDIRECT_URI, Browser, Provider, claims_of, oidc_provider
from tests.router_core.llm_servers import openai_server
from tests.transports.servers import loopback_socket, serve_app

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


@asynccontextmanager
async def junction_with_oauth(
    tmp_path: Path, provider: Provider, **extra: Any
) -> AsyncIterator[str]:
    """Junction whose audience is its own base URL (known before it serves), trusting the
    provider; an API key `ops-key` beside; the audit trail in tmp_path/audit.jsonl."""
    sock = loopback_socket()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    oauth = {"issuer": provider.issuer, "audience": base, "leeway_seconds": 0}
    oauth.update(extra.pop("oauth", {}))
    config = {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "server": {"api_keys": [{"key": "ops-key", "name": "ops"}], "oauth": oauth},
        "logging": {"audit_file": str(tmp_path / "audit.jsonl")},
        **extra,
    }
    running = Junction.from_config(config)
    try:
        async with running, serve_app(running.asgi_app(), sock=sock) as url:
            assert url == base
            yield base
    finally:
        await close_session()


def audit_records(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_of(reply: httpx.Response) -> str:
    return str(reply.headers.get("www-authenticate", ""))


async def test_tokens_work_beside_keys_and_bad_ones_are_refused(tmp_path: Path) -> None:
    async with (
        oidc_provider() as provider,
        openai_server(models=["m1", "m2"]) as model,
        junction_with_oauth(
            tmp_path,
            provider,
            oauth={"claims": {"models": "junction_models"}},
            backends={
                "local": {"type": "openai", "url": f"{model.url}/v1", "models": ["m1", "m2"]}
            },
        ) as base,
        httpx.AsyncClient(timeout=20) as http,
    ):
        # Protected resource metadata (RFC 9728): Junction, and the MCP endpoint's own resource.
        root = (await http.get(f"{base}/.well-known/oauth-protected-resource")).json()
        assert root["resource"] == base and root["authorization_servers"] == [provider.issuer]
        mcp_doc = (await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")).json()
        assert mcp_doc["resource"] == f"{base}/mcp" and mcp_doc["scopes_supported"] == ["mcp"]

        # No credential: 401 pointing at the metadata of the surface asked for.
        bare = await http.post(f"{base}/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        assert bare.status_code == 401
        assert (
            f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
            in challenge_of(bare)
        )
        bare_v1 = await http.get(f"{base}/v1/models")
        assert bare_v1.status_code == 401
        assert f'resource_metadata="{base}/.well-known/oauth-protected-resource"' in challenge_of(
            bare_v1
        )

        # A service token for Junction, with two surfaces: both open, the others not.
        service = await provider.client_token("service", scope="mcp openai", resource=base)
        listed = await http.get(f"{base}/v1/models", headers=bearer(service))
        assert listed.status_code == 200
        assert listed.json()["data"] == []  # models are mapped from a claim it lacks: none
        opened = await http.post(
            f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **bearer(service)}
        )
        assert opened.status_code == 200, opened.text
        admin = await http.get(f"{base}/admin/mcp", headers=bearer(service))
        assert admin.status_code == 403
        assert 'error="insufficient_scope"' in challenge_of(admin)
        assert 'scope="admin"' in challenge_of(admin)

        # The key path still works beside tokens.
        by_key = await http.get(f"{base}/v1/models", headers=bearer("ops-key"))
        assert {m["id"] for m in by_key.json()["data"]} == {"m1", "m2"}

        # Claims map to a key's limits: `limited` carries junction_models: [m1].
        limited = await provider.client_token("limited", scope="openai", resource=base)
        narrowed = await http.get(f"{base}/v1/models", headers=bearer(limited))
        assert {m["id"] for m in narrowed.json()["data"]} == {"m1"}

        # A token for the MCP endpoint's own resource is good on /mcp only.
        for_mcp = await provider.client_token("service", scope="mcp openai", resource=f"{base}/mcp")
        opened = await http.post(
            f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **bearer(for_mcp)}
        )
        assert opened.status_code == 200
        assert (await http.get(f"{base}/v1/models", headers=bearer(for_mcp))).status_code == 403

        # Missing scope: 403 insufficient_scope naming the scope to ask for.
        no_mcp = await provider.client_token("service", scope="openai", resource=base)
        refused = await http.post(
            f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **bearer(no_mcp)}
        )
        assert refused.status_code == 403
        assert 'error="insufficient_scope"' in challenge_of(refused)
        assert 'scope="mcp"' in challenge_of(refused)

        # Bad tokens: another audience, a key the issuer never published, expired, malformed.
        other = await provider.client_token(
            "service", scope="mcp openai", resource="http://127.0.0.1:9/elsewhere"
        )
        rogue = await provider.client_token(
            "service", scope="mcp openai", resource=base, base=provider.rogue_url
        )
        assert claims_of(rogue)["iss"] == provider.issuer  # all right but the key
        short = await provider.client_token("short", scope="openai", resource=base)
        await asyncio.sleep(max(0.0, claims_of(short)["exp"] + 0.05 - time.time()))
        for token, reason in (
            (other, "another audience"),
            (rogue, "key the issuer does not publish"),
            (short, "expired"),
            ("eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "signature does not verify"),
            ("eyJhbGciOiJub25lIn0.e30.", "algorithm 'none' is not accepted"),
            ("not-a-key", "invalid API key"),
        ):
            reply = await http.get(f"{base}/v1/models", headers=bearer(token))
            assert reply.status_code == 401, (reason, reply.text)
            assert reason in reply.text
            assert 'error="invalid_token"' in challenge_of(reply)

    records = audit_records(tmp_path)
    allowed = {(r["principal"], r["surface"]) for r in records if r["decision"] == "allow"}
    assert {("service", "openai"), ("service", "mcp"), ("limited", "openai")} <= allowed
    denied = [r for r in records if r["decision"] == "deny"]
    reasons = " | ".join(r["reason"] for r in denied)
    for reason in ("another audience", "does not publish", "expired", "'admin' scope"):
        assert reason in reasons
    scoped = next(r for r in denied if "'mcp' scope" in r["reason"])
    assert scoped["principal"] == "service" and scoped["surface"] == "mcp"
    assert scoped["event"] == "access" and scoped["logger"] == "junction.audit"
    text = (tmp_path / "audit.jsonl").read_text()
    for secret in (service, limited, rogue, short, "ops-key", "service-secret"):
        assert secret not in text


async def sign_in(base: str, user: str) -> tuple[str, list[str]]:
    """`user` signs in with the `mcp` SDK's OAuth client walking the whole MCP authorization
    flow against /mcp (401, metadata discovery, registration, authorization code + PKCE, token),
    then lists tools; returns the access token and the tool names."""
    from mcp import Client
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

    from mcp_gateway._sdk import create_mcp_http_client

    class Memory:
        tokens: OAuthToken | None = None
        client: OAuthClientInformationFull | None = None

        async def get_tokens(self) -> OAuthToken | None:
            return self.tokens

        async def set_tokens(self, tokens: OAuthToken) -> None:
            self.tokens = tokens

        async def get_client_info(self) -> OAuthClientInformationFull | None:
            return self.client

        async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
            self.client = client_info

    storage = Memory()
    browser = Browser(user)
    auth = OAuthClientProvider(
        server_url=f"{base}/mcp",
        client_metadata=OAuthClientMetadata(
            client_name=f"{user}'s editor",
            redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=browser.open,
        callback_handler=browser.callback,
    )
    http = create_mcp_http_client(auth=auth)
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
    assert storage.tokens is not None
    return storage.tokens.access_token, tools


async def test_mcp_sdk_walks_the_authorization_flow_and_sessions_belong_to_the_person(
    tmp_path: Path,
) -> None:
    """Two people sign in through the MCP authorization flow (keys from an explicit jwks_url);
    each is the principal of their token (`sub`), and one cannot use the other's MCP session."""
    async with oidc_provider() as provider:
        async with (
            junction_with_oauth(
                tmp_path, provider, oauth={"jwks_url": f"{provider.issuer}/jwks"}
            ) as base,
            httpx.AsyncClient(timeout=20) as http,
        ):
            alice, _ = await sign_in(base, "alice")
            bob, _ = await sign_in(base, "bob")
            assert claims_of(alice)["sub"] == "alice" and claims_of(bob)["sub"] == "bob"
            assert claims_of(alice)["aud"] == f"{base}/mcp"  # the resource the SDK asked for

            opened = await http.post(
                f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **bearer(alice)}
            )
            assert opened.status_code == 200
            session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
            ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
            stolen = await http.post(
                f"{base}/mcp", json=ping, headers={**MCP_HEADERS, **session, **bearer(bob)}
            )
            assert stolen.status_code == 404
            own = await http.post(
                f"{base}/mcp",
                json=ping,
                headers={
                    **MCP_HEADERS,
                    **session,
                    **bearer(alice),
                    "Mcp-Protocol-Version": "2025-11-25",
                },
            )
            assert own.status_code == 200, own.text
    principals = {r["principal"] for r in audit_records(tmp_path) if r["decision"] == "allow"}
    assert {"alice", "bob"} <= principals


async def test_the_name_claim_is_the_principal_and_owns_a2a_tasks(tmp_path: Path) -> None:
    """With `claims.name` mapped, the principal is that claim (here the client id), and A2A
    tasks belong to it: another token's holder does not find them."""
    from tests.a2a.harness import sdk_agent, send_params

    with sdk_agent("alpha", "1.0", ("research:web",)) as agent:
        async with (
            oidc_provider() as provider,
            junction_with_oauth(
                tmp_path,
                provider,
                oauth={"claims": {"name": "client_id"}},
                a2a_agents={"alpha": {"url": agent}},
            ) as base,
            httpx.AsyncClient(timeout=20) as http,
        ):
            service = await provider.client_token("service", scope="a2a", resource=base)
            limited = await provider.client_token("limited", scope="a2a", resource=base)

            async def call(token: str, method: str, params: dict[str, Any]) -> Any:
                reply = await http.post(
                    f"{base}/a2a",
                    json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                    headers={**bearer(token), "A2A-Version": "1.0"},
                )
                return reply.json()

            made = await call(service, "SendMessage", send_params("ask", "alpha"))
            task_id = made["result"]["task"]["id"]
            assert (await call(service, "GetTask", {"id": task_id}))["result"]["id"] == task_id
            assert (await call(limited, "GetTask", {"id": task_id}))["error"]["code"] == -32001
            listed = await call(limited, "ListTasks", {})
            assert task_id not in {t["id"] for t in listed["result"]["tasks"]}


async def test_a_reload_of_identity_settings_is_audited(tmp_path: Path) -> None:
    async with oidc_provider() as provider:
        sock = loopback_socket()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        audit_file = tmp_path / "audit.jsonl"
        config: dict[str, Any] = {
            "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
            "server": {"api_keys": [{"key": "old-secret-key", "name": "old"}]},
            "logging": {"audit_file": str(audit_file)},
        }
        running = Junction.from_config(config)
        try:
            async with running, serve_app(running.asgi_app(), sock=sock):
                new = {
                    **config,
                    "server": {
                        "api_keys": [{"key": "new-secret-key", "name": "new"}],
                        "oauth": {"issuer": provider.issuer, "audience": base},
                    },
                }
                result = await running.replace_config(new)
                assert "server.oauth" in result.applied
                async with httpx.AsyncClient(timeout=20) as http:
                    token = await provider.client_token("service", scope="mcp", resource=base)
                    reply = await http.get(f"{base}/admin/mcp", headers=bearer(token))
                    assert reply.status_code == 403  # tokens accepted now, without a restart
        finally:
            await close_session()
    change = next(r for r in audit_records(tmp_path) if r["event"] == "config")
    assert change["keys_added"] == ["new"] and change["keys_removed"] == ["old"]
    assert change["oauth"]["issuer"] == provider.issuer
    assert "secret-key" not in audit_file.read_text()


@pytest.mark.parametrize(
    ("oauth", "problem"),
    [
        ({"issuer": "http://idp.example", "audience": "https://j.example"}, "must be https"),
        ({"issuer": "https://idp.example", "audience": "urn:junction"}, "not a valid URL"),
        ({"issuer": "https://idp.example"}, "audience"),
    ],
)
def test_oauth_settings_are_checked(oauth: dict[str, Any], problem: str) -> None:
    from junction.config import ConfigError, validate_config

    with pytest.raises(ConfigError, match=problem):
        validate_config({"server": {"oauth": oauth}}, "test")


def test_tokens_alone_may_guard_a_public_listener() -> None:
    from junction.config import validate_config

    oauth = {"issuer": "https://idp.example", "audience": "https://junction.example"}
    config = validate_config({"server": {"host": "0.0.0.0", "oauth": oauth}}, "test")
    assert config.server.oauth is not None and not config.server.api_keys


async def test_an_acp_connection_ends_when_its_token_does(tmp_path: Path) -> None:
    """A remote ACP connection outlives the request that opened it, so one opened with a token
    is closed when the token expires (a key's connection stays)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": 1},
    }
    async with oidc_provider() as provider, junction_with_oauth(tmp_path, provider) as base:
        url = base.replace("http://", "ws://") + "/acp"
        # 8 s (oidc-provider counts from the whole second: 7-8 s): the handshakes must fit
        short = await provider.client_token("brief", scope="acp", resource=base)
        async with (
            connect(url, additional_headers=bearer(short)) as by_token,
            connect(url, additional_headers=bearer("ops-key")) as by_key,
        ):
            for ws in (by_token, by_key):
                await ws.send(json.dumps(initialize))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["id"] == 1
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(20):
                    await by_token.recv()
            assert time.time() >= claims_of(short)["exp"] - 0.5
            await by_key.send(json.dumps({**initialize, "id": 2}))  # still open
            assert json.loads(await asyncio.wait_for(by_key.recv(), 10))["id"] == 2
