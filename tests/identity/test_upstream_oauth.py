"""Junction as an OAuth client of upstream MCP servers that require OAuth, against the real
OpenID provider (node-oidc-provider) and an upstream written with the `mcp` SDK's server auth
(`protected_mcp.py`, a separate process verifying the provider's JWTs), everything over real
HTTP and real pipes: a service account (client credentials), a person's `junction login`
(authorization code + PKCE with dynamic registration, the real CLI, its loopback redirect),
tokens stored encrypted and refreshed after they expire, and an upstream not logged in yet
reported as needing a login."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import mcp_types as types
import pytest
from cryptography.fernet import Fernet
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.identity.oidc import Provider, claims_of, oidc_provider, stop_by_stdin

PROTECTED = Path(__file__).with_name("protected_mcp.py")
JUNCTION = str(Path(sys.executable).with_name("junction"))


@asynccontextmanager
async def protected_upstream(provider: Provider, *transport: str) -> AsyncIterator[str]:
    """The OAuth-protected MCP server (its /mcp URL, or /sse with "sse"), in its own process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROTECTED),
        provider.issuer,
        *transport,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdin is not None
    try:
        async with asyncio.timeout(60):
            line = await process.stdout.readline()
        assert line, "the protected MCP server exited before listening"
        yield str(json.loads(line)["url"])
    finally:
        await stop_by_stdin(process)


def write_config(tmp_path: Path, auth: dict[str, Any], url: str) -> Path:
    path = tmp_path / "junction.yaml"
    server: dict[str, Any] = {"url": url, "auth": auth}
    if url.endswith("/sse"):
        server["transport"] = "sse"
    config = {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "mcp_servers": {"guarded": server},
        "mcp": {"token_store": {"path": str(tmp_path / "tokens")}, "connect_timeout": 20},
    }
    path.write_text(json.dumps(config))
    return path


async def junction(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@asynccontextmanager
async def through_junction(config: Path, errlog: Path) -> AsyncIterator[Client]:
    """The `mcp` SDK client on `junction --mode mcp` over stdio; Junction's stderr to errlog."""
    params = StdioServerParameters(
        command=JUNCTION, args=["--mode", "mcp", "--config", str(config)], env=dict(os.environ)
    )
    with errlog.open("w") as log:
        async with Client(stdio_client(params, errlog=log), mode="legacy") as client:
            yield client


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def call_when_listed(client: Client, tool: str) -> str:
    """Call `tool` once the gateway lists it (the upstream connects in the background)."""
    for _ in range(120):
        names = {t.name for t in (await client.list_tools()).tools}
        if tool in names:
            result = await client.call_tool(tool, {})
            assert not result.is_error, text(result)
            return text(result)
        await asyncio.sleep(0.5)
    raise AssertionError(f"{tool} was never listed")


@pytest.mark.parametrize(
    ("endpoint", "transport"),
    [("issuer", "streamable_http"), ("token_url", "streamable_http"), ("issuer", "sse")],
)
async def test_a_service_account_gets_its_token_by_client_credentials(
    tmp_path: Path, endpoint: str, transport: str
) -> None:
    """From the issuer's discovered metadata, or from an explicit token endpoint; over
    Streamable HTTP and the legacy SSE transport."""
    sse = ("sse",) if transport == "sse" else ()
    async with oidc_provider() as provider, protected_upstream(provider, *sse) as url:
        async with httpx.AsyncClient(timeout=20) as http:
            bare = await http.get(url) if sse else await http.post(url, json={})
            assert bare.status_code == 401  # the upstream really requires a token
        where = (
            {"issuer": provider.issuer}
            if endpoint == "issuer"
            else {"token_url": f"{provider.issuer}/token", "auth_method": "client_secret_post"}
        )
        config = write_config(
            tmp_path,
            {
                "type": "client_credentials",
                "client_id": "service",
                "client_secret": "service-secret",
                "scopes": ["mcp"],
                **where,
            },
            url,
        )
        errlog = tmp_path / "stderr.log"
        async with through_junction(config, errlog) as client:
            who = await call_when_listed(client, "guarded__whoami")
            assert who == "sub=service client=service", who
            tools = {t.name for t in (await client.list_tools()).tools}
            assert tools == {"guarded__whoami", "guarded__token_id"}
    assert "service-secret" not in errlog.read_text()


async def walk_to_redirect(authorization_url: str, user: str) -> str:
    """A person at a browser: the provider's login and consent (as `user`), up to the redirect
    back to Junction's loopback listener, which this then opens (the real GET)."""
    url = f"{authorization_url}&{urlencode({'login_hint': user})}"
    async with httpx.AsyncClient(timeout=20, follow_redirects=False) as http:
        for _ in range(20):
            reply = await http.get(url)
            assert reply.status_code in (302, 303), (reply.status_code, reply.text[:300])
            url = urljoin(url, reply.headers["location"])
            if url.startswith("http://127.0.0.1:") and "/callback?" in url:
                landed = await http.get(url)
                assert landed.status_code == 200, landed.text
                return landed.text
    raise AssertionError("the authorization never redirected back")


async def login(config: Path, user: str) -> tuple[int, str, str]:
    """`junction login guarded` (no TTY, no browser), its printed URL walked as `user`."""
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "login",
        "guarded",
        "--config",
        str(config),
        "--no-browser",
        "--timeout",
        "60",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None and process.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(90):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, f"junction login ended before printing a URL: {''.join(seen)}"
            seen.append(line)
            if line.strip().startswith("http") and "/auth?" in line:
                page = await walk_to_redirect(line.strip(), user)
                assert "Signed in to guarded" in page
                break
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), "".join(seen) + err.decode()


async def expired(token: str) -> None:
    """Wait out a token's lifetime (its `exp`, to the second)."""
    await asyncio.sleep(max(0.0, claims_of(token)["exp"] + 1 - time.time()))


def stored_record(tmp_path: Path) -> tuple[bytes, dict[str, Any]]:
    """The token file as stored, and as decrypted with the local key file."""
    store = tmp_path / "tokens"
    (token_path,) = store.glob("*.token")
    key = store / "key"
    assert token_path.stat().st_mode & 0o777 == 0o600
    assert key.stat().st_mode & 0o777 == 0o600
    assert store.stat().st_mode & 0o777 == 0o700
    blob = token_path.read_bytes()
    record: dict[str, Any] = json.loads(Fernet(key.read_bytes()).decrypt(blob))
    return blob, record


async def test_a_person_logs_in_and_the_gateway_refreshes_the_stored_tokens(
    tmp_path: Path,
) -> None:
    async with oidc_provider() as provider, protected_upstream(provider) as url:
        config = write_config(tmp_path, {"type": "oauth"}, url)

        # Not logged in yet: reported as needing a login, not a crash.
        code, out, err = await junction("tools", "--config", str(config), "--json")
        assert code == 1, err
        (status,) = json.loads(out)["servers"]
        assert status["state"] == "failed"
        assert status["reason"] == "needs a login: run `junction login guarded`"
        assert "Traceback" not in err

        code, out, err = await login(config, "brief")
        assert code == 0, err
        assert "logged in to 'guarded' (2 tools)" in out
        blob, record = stored_record(tmp_path)
        first = record["tokens"]["access_token"]
        refresh = record["tokens"]["refresh_token"]
        assert claims_of(first)["sub"] == "brief" and claims_of(first)["aud"] == url
        for stored in (first, refresh, record["client"]["client_id"]):
            assert stored.encode() not in blob  # encrypted at rest
        for secret in (first, refresh):
            assert secret not in out + err
        assert record["metadata"]["token_endpoint"].startswith(provider.issuer)

        errlog = tmp_path / "stderr.log"
        async with through_junction(config, errlog) as client:
            assert (
                await call_when_listed(client, "guarded__whoami")
                == "sub=brief client=" + (record["client"]["client_id"])
            )
            first_id = await call_when_listed(client, "guarded__token_id")
            # The provider gives `brief` six-second tokens: once the one in use has expired,
            # the next call goes out with a refreshed token, and the new one is stored.
            in_use = stored_record(tmp_path)[1]["tokens"]["access_token"]
            assert claims_of(in_use)["jti"] == first_id
            await expired(in_use)
            second_id = await call_when_listed(client, "guarded__token_id")
            assert second_id != first_id
        _, refreshed = stored_record(tmp_path)
        assert refreshed["tokens"]["access_token"] not in (first, in_use)
        assert claims_of(refreshed["tokens"]["access_token"])["jti"] == second_id
        assert claims_of(refreshed["tokens"]["access_token"])["sub"] == "brief"
        logged = errlog.read_text()
        for secret in (first, refresh, refreshed["tokens"]["access_token"]):
            assert secret not in logged

        # A restarted gateway reads the stored login; an expired token is refreshed at the
        # authorization server it recorded (not at the MCP server's own origin).
        await expired(refreshed["tokens"]["access_token"])
        code, out, err = await junction("tools", "--config", str(config), "--json")
        assert code == 0, err
        assert {t["name"] for t in json.loads(out)["tools"]} == {
            "guarded__whoami",
            "guarded__token_id",
        }

        # A login the authorization server no longer honours (the refresh token refused, once
        # the access token has expired): reported as such, and forgotten.
        _, record = stored_record(tmp_path)
        await expired(record["tokens"]["access_token"])
        record["tokens"]["refresh_token"] = "revoked"
        key = (tmp_path / "tokens" / "key").read_bytes()
        (token_path,) = (tmp_path / "tokens").glob("*.token")
        token_path.write_bytes(Fernet(key).encrypt(json.dumps(record).encode()))
        code, out, err = await junction("tools", "--config", str(config), "--json")
        assert code == 1
        reason = json.loads(out)["servers"][0]["reason"]
        assert reason == "the stored login expired or was revoked: run `junction login guarded`"
        assert not token_path.exists()
        assert "Traceback" not in err, err

        code, out, _ = await login(config, "brief")
        assert code == 0
        code, out, _ = await junction("logout", "guarded", "--config", str(config))
        assert code == 0 and "logged out of 'guarded'" in out
        assert not list((tmp_path / "tokens").glob("*.token"))
        code, out, _ = await junction("tools", "--config", str(config), "--json")
        assert json.loads(out)["servers"][0]["reason"].startswith("needs a login")


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["login"], "name the MCP server"),
        (["login", "nope"], "no MCP server named 'nope' (servers: guarded)"),
        (["logout", "guarded"], "has no `auth: {type: oauth}` login"),
    ],
)
async def test_login_names_what_is_wrong(tmp_path: Path, args: list[str], problem: str) -> None:
    config = write_config(
        tmp_path,
        {"type": "client_credentials", "client_id": "a", "client_secret": "b"},
        "http://127.0.0.1:9/mcp",
    )
    code, _, err = await junction(*args, "--config", str(config))
    assert code == 2 and problem in err, err


async def test_serve_mode_shows_the_upstream_waiting_for_a_login(tmp_path: Path) -> None:
    """Over HTTP in serve mode: /admin/mcp and /health name the missing login; Junction is up."""
    from junction.root import Junction
    from router_core.http import close_session
    from tests.transports.servers import serve_app

    async with oidc_provider() as provider, protected_upstream(provider) as url:
        config = json.loads(write_config(tmp_path, {"type": "oauth"}, url).read_text())
        config["server"] = {"api_keys": [{"key": "ops-key", "name": "ops"}]}
        running = Junction.from_config(config)
        try:
            async with (
                running,
                serve_app(running.asgi_app()) as base,
                httpx.AsyncClient(timeout=20, headers={"x-api-key": "ops-key"}) as http,
            ):
                for _ in range(100):
                    (server,) = (await http.get(f"{base}/admin/mcp")).json()["servers"]
                    if server["state"] == "failed":
                        break
                    await asyncio.sleep(0.2)
                assert server["reason"] == "needs a login: run `junction login guarded`"
                health = (await http.get(f"{base}/health")).json()
                assert "needs a login" in json.dumps(health)
        finally:
            await close_session()


async def call_through(base: str, headers: dict[str, str], tool: str) -> str:
    """`tool` called through Junction's /mcp by the `mcp` SDK client, with these credentials."""
    from mcp.client.streamable_http import streamable_http_client

    from mcp_gateway._sdk import create_mcp_http_client

    http = create_mcp_http_client(headers=headers)
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
        return await call_when_listed(client, tool)


async def test_each_signed_in_caller_is_themselves_upstream_by_token_exchange(
    tmp_path: Path,
) -> None:
    """Alice and Bob sign in to Junction (the MCP authorization flow); through one shared
    upstream session, the upstream sees each of them (RFC 8693 exchange at the provider), and
    an API-key caller as Junction's own client."""
    from tests.identity.test_oauth import junction_with_oauth, sign_in

    async with oidc_provider() as provider, protected_upstream(provider) as url:
        auth = {
            "type": "token_exchange",
            "client_id": "exchanger",
            "client_secret": "exchanger-secret",
            "issuer": provider.issuer,
        }
        servers = {"guarded": {"url": url, "auth": auth}}
        async with junction_with_oauth(tmp_path, provider, mcp_servers=servers) as base:
            alice, _ = await sign_in(base, "alice")
            bob, _ = await sign_in(base, "bob")
            seen = {
                who: await call_through(
                    base, {"Authorization": f"Bearer {token}"}, "guarded__whoami"
                )
                for who, token in (("alice", alice), ("bob", bob))
            }
            assert seen == {
                "alice": "sub=alice client=exchanger",
                "bob": "sub=bob client=exchanger",
            }
            as_key = await call_through(base, {"x-api-key": "ops-key"}, "guarded__whoami")
            assert as_key == "sub=exchanger client=exchanger"


async def test_a_running_gateway_takes_tokens_another_process_stored(tmp_path: Path) -> None:
    """Another process refreshes the stored login (as a second Junction on the same store
    would, rotating the refresh token): the running gateway's next request goes out with the
    newly stored token, not with the one it held (nor a refresh with a spent refresh token)."""
    async with oidc_provider() as provider, protected_upstream(provider) as url:
        config = write_config(tmp_path, {"type": "oauth"}, url)
        code, _, err = await login(config, "alice")  # ten-minute tokens: none expires here
        assert code == 0, err
        _, record = stored_record(tmp_path)
        async with through_junction(config, tmp_path / "stderr.log") as client:
            held = await call_when_listed(client, "guarded__token_id")
            assert held == claims_of(record["tokens"]["access_token"])["jti"]

            async with httpx.AsyncClient(timeout=20) as http:
                reply = await http.post(
                    record["metadata"]["token_endpoint"],
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": record["tokens"]["refresh_token"],
                        "client_id": record["client"]["client_id"],
                        "resource": url,
                    },
                )
            assert reply.status_code == 200, reply.text
            record["tokens"] = reply.json()
            record["expires_at"] = time.time() + record["tokens"]["expires_in"]
            key = (tmp_path / "tokens" / "key").read_bytes()
            (token_path,) = (tmp_path / "tokens").glob("*.token")
            token_path.write_bytes(Fernet(key).encrypt(json.dumps(record).encode()))

            now = await call_when_listed(client, "guarded__token_id")
            assert now == claims_of(record["tokens"]["access_token"])["jti"] != held
