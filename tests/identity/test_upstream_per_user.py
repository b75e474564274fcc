"""Per-person logins to an upstream MCP server (`auth: {type: oauth, per_user: true}`), against
the real OpenID provider (node-oidc-provider) and the OAuth-protected upstream written with the
`mcp` SDK's server auth (`protected_mcp.py`), over real HTTP: Junction lists tools with its own
login (`junction login`), Bob is signed in by an operator (`junction login --as bob`), Alice
(an API key) and Dave (an access token from the provider) sign themselves in over HTTP
(`GET /mcp/login/NAME`, the provider's pages, the callback's page and its code, confirmed with
their own credential: Alice by `POST .../confirm`, Dave by `junction login --confirm`); each
sees their own upstream identity through `/mcp`, Carol (no login) gets an error naming the
server and how to log in (never someone else's login), and a forged or replayed state is
refused with nothing stored. (The attack the confirmation stops: test_upstream_per_user_confirm.)"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import mcp_types as types
import pytest
from cryptography.fernet import Fernet
from mcp import Client
from mcp.shared.exceptions import MCPError

from junction.root import Junction
from router_core.http import close_session
from tests.identity.oidc import claims_of, oidc_provider
from tests.identity.test_oauth import sign_in
from tests.identity.test_upstream_oauth import JUNCTION, protected_upstream, walk_to_redirect
from tests.transports.servers import loopback_socket, serve_app

KEYS = {"alice": "alice-key-4c1d", "bob": "bob-key-90aa", "carol": "carol-key-77e3"}


def config_for(tmp_path: Path, url: str, base: str, issuer: str | None = None) -> dict[str, Any]:
    """Junction at `base` with the three keys (and tokens from `issuer`, when given)."""
    server: dict[str, Any] = {
        "port": int(base.rsplit(":", 1)[1]),
        "api_keys": [{"key": key, "name": name} for name, key in KEYS.items()],
    }
    if issuer is not None:
        server["oauth"] = {"issuer": issuer, "audience": base, "leeway_seconds": 0}
    return {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "server": server,
        "mcp_servers": {"guarded": {"url": url, "auth": {"type": "oauth", "per_user": True}}},
        "mcp": {"token_store": {"path": str(tmp_path / "tokens")}, "connect_timeout": 20},
    }


async def cli_login(config: Path, user: str, *extra: str) -> tuple[int, str, str]:
    """`junction login guarded [--as ...]`, its printed URL walked as `user` at the provider."""
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "login",
        "guarded",
        *extra,
        "--config",
        str(config),
        "--no-browser",
        "--timeout",
        "60",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    seen: list[str] = []
    async with asyncio.timeout(90):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, f"junction login ended before printing a URL: {''.join(seen)}"
            seen.append(line)
            if line.strip().startswith("http") and "/auth?" in line:
                assert "Signed in to guarded" in await walk_to_redirect(line.strip(), user)
                break
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), "".join(seen) + err.decode()


async def walk_to_junction(authorization_url: str, user: str, base: str) -> str:
    """A person at a browser: the provider's login and consent as `user`, up to the redirect
    back to Junction's callback; that URL (not opened)."""
    url = f"{authorization_url}&{urlencode({'login_hint': user})}"
    async with httpx.AsyncClient(timeout=20, follow_redirects=False) as http:
        for _ in range(20):
            reply = await http.get(url)
            assert reply.status_code in (302, 303), (reply.status_code, reply.text[:300])
            url = urljoin(url, reply.headers["location"])
            if url.startswith(f"{base}/mcp/login/callback?"):
                return url
    raise AssertionError("the authorization never redirected back to Junction")


async def whoami(base: str, key: str) -> str:
    """`guarded__whoami` through Junction's /mcp as the caller with `key` (an API key, or an
    access token: a JWT): the upstream's answer, or the error's message."""
    from mcp.client.streamable_http import streamable_http_client

    from mcp_gateway._sdk import create_mcp_http_client

    header = {"Authorization": f"Bearer {key}"} if key.count(".") == 2 else {"x-api-key": key}
    http = create_mcp_http_client(headers=header)
    async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
        for _ in range(120):
            if "guarded__whoami" in {t.name for t in (await client.list_tools()).tools}:
                break
            await asyncio.sleep(0.5)
        try:
            result = await client.call_tool("guarded__whoami", {})
        except MCPError as exc:
            return f"error: {exc}"
        text = "".join(c.text for c in result.content if isinstance(c, types.TextContent))
        return f"error: {text}" if result.is_error else text


def confirmation_code(page: str) -> str:
    """The one-time code the callback's page shows."""
    found = re.search(r"<code>([A-Z2-7]{5}-[A-Z2-7]{5})</code>", page)
    assert found, page
    return found.group(1)


async def confirm(
    http: httpx.AsyncClient, base: str, credential: dict[str, str], code: str
) -> httpx.Response:
    """`POST /mcp/login/guarded/confirm` with `code`, as the caller with `credential`."""
    url = f"{base}/mcp/login/guarded/confirm"
    return await http.post(url, json={"code": code}, headers=credential)


def person_files(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Each stored per-person login, decrypted with the local key, by its principal."""
    store = tmp_path / "tokens"
    key = Fernet((store / "key").read_bytes())
    records = [json.loads(key.decrypt(path.read_bytes())) for path in store.glob("*@*.token")]
    return {record["principal"]: record for record in records}


@pytest.mark.asyncio
async def test_each_caller_uses_their_own_upstream_login(tmp_path: Path) -> None:
    async with oidc_provider() as provider, protected_upstream(provider) as url:
        sock = loopback_socket()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = config_for(tmp_path, url, base, provider.issuer)
        path = tmp_path / "junction.yaml"
        path.write_text(json.dumps(config))
        # Junction's own login (what it lists tools with), and Bob's by an operator
        code, out, err = await cli_login(path, "ops")
        assert code == 0 and "logged in to 'guarded' (2 tools)" in out, err
        code, out, err = await cli_login(path, "bob", "--as", "bob")
        assert code == 0 and "logged in to 'guarded' as 'bob' (2 tools)" in out, err
        running = Junction.from_config(config)
        try:
            async with running, serve_app(running.asgi_app(), sock=sock):
                async with httpx.AsyncClient(timeout=30, follow_redirects=False) as http:
                    start = f"{base}/mcp/login/guarded"
                    assert (await http.get(start)).status_code == 401  # a caller's, or nobody's
                    unknown = await http.get(
                        f"{base}/mcp/login/time", headers={"x-api-key": KEYS["alice"]}
                    )
                    assert unknown.status_code == 404 and "per-user" in unknown.json()["error"]
                    # Alice signs herself in: 302 to the provider, its pages, back to Junction
                    started = await http.get(start, headers={"x-api-key": KEYS["alice"]})
                    assert started.status_code == 302, started.text
                    location = started.headers["location"]
                    assert started.json()["authorization_url"] == location
                    assert "code_challenge=" in location and "state=" in location
                    callback = await walk_to_junction(location, "alice", base)
                    # a forged state stores nothing, whatever the code
                    code_only = callback.split("?", 1)[1]
                    forged = await http.get(
                        f"{base}/mcp/login/callback?{code_only.replace('state=', 'state=x')}"
                    )
                    assert forged.status_code == 400 and "unknown" in forged.text
                    assert "tokens" not in person_files(tmp_path).get("alice", {})
                    landed = await http.get(callback)  # the browser lands (no credential)
                    assert landed.status_code == 200, landed.text
                    assert (
                        "MCP server &#x27;guarded&#x27; to the Junction caller &#x27;alice&#x27;"
                        in landed.text
                    )
                    assert "the account sub alice" in landed.text
                    replayed = await http.get(callback)
                    assert replayed.status_code == 400 and "used already" in replayed.text
                    assert "tokens" not in person_files(tmp_path).get("alice", {})  # held
                    code = confirmation_code(landed.text)
                    done = await confirm(http, base, {"x-api-key": KEYS["alice"]}, code)
                    assert done.status_code == 200, done.text
                    assert done.json()["principal"] == "alice"
                    assert done.json()["upstream_account"]["sub"] == "alice"
                # Dave signed in to Junction with the provider (the MCP authorization flow):
                # his login is his token's subject's
                dave, _ = await sign_in(base, "dave")
                async with httpx.AsyncClient(timeout=30, follow_redirects=False) as http:
                    started = await http.get(
                        f"{base}/mcp/login/guarded", headers={"Authorization": f"Bearer {dave}"}
                    )
                    assert started.status_code == 302, started.text
                    callback = await walk_to_junction(started.headers["location"], "dave", base)
                    landed = await http.get(callback)
                    assert "Junction caller &#x27;dave&#x27;" in landed.text, landed.text
                # Dave finishes with the CLI and his own token (in the environment)
                process = await asyncio.create_subprocess_exec(
                    *(JUNCTION, "login", "guarded", "--config", str(path)),
                    *("--confirm", confirmation_code(landed.text).lower(), "--connect", base),
                    env={**os.environ, "JUNCTION_TOKEN": dave},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
                out_bytes, err_bytes = await process.communicate()
                assert process.returncode == 0, err_bytes
                said = out_bytes.decode()
                assert "logged in to 'guarded' as 'dave' with the upstream account sub dave" in said
                assert (await whoami(base, dave)).startswith("sub=dave ")
                seen = {name: await whoami(base, key) for name, key in KEYS.items()}
                files = person_files(tmp_path)
                assert seen["alice"].startswith("sub=alice "), seen
                assert seen["bob"].startswith("sub=bob "), seen
                assert seen["carol"].startswith("error: "), seen
                assert "sub=" not in seen["carol"]
                for needed in ("'guarded'", "GET /mcp/login/guarded", "--as carol"):
                    assert needed in seen["carol"], seen["carol"]
                assert set(files) == {"alice", "bob", "dave"}
                assert files["alice"]["client"]["redirect_uris"] == [f"{base}/mcp/login/callback"]
                assert claims_of(files["alice"]["tokens"]["access_token"])["sub"] == "alice"
                blobs = b"".join(p.read_bytes() for p in (tmp_path / "tokens").glob("*.token"))
                for record in files.values():
                    assert record["tokens"]["access_token"].encode() not in blobs
                # logged out, Alice is back to the error, not to anyone's login
                process = await asyncio.create_subprocess_exec(
                    JUNCTION,
                    "logout",
                    "guarded",
                    "--as",
                    "alice",
                    "--config",
                    str(path),
                    stdout=subprocess.PIPE,
                )
                out_bytes, _ = await process.communicate()
                assert b"logged out of 'guarded' as 'alice'" in out_bytes
                assert (await whoami(base, KEYS["alice"])).startswith("error: ")
                assert (await whoami(base, KEYS["bob"])).startswith("sub=bob ")
        finally:
            await close_session()


@pytest.mark.asyncio
async def test_login_as_needs_a_per_user_server(tmp_path: Path) -> None:
    config = config_for(tmp_path, "http://127.0.0.1:9/mcp", "http://127.0.0.1:1")
    config["mcp_servers"]["guarded"]["auth"] = {"type": "oauth"}
    path = tmp_path / "junction.yaml"
    path.write_text(json.dumps(config))
    process = await asyncio.create_subprocess_exec(
        JUNCTION,
        "login",
        "guarded",
        "--as",
        "alice",
        "--config",
        str(path),
        stderr=subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 2
    assert b"has one shared login; --as needs" in err


@pytest.mark.asyncio
async def test_login_confirm_needs_the_callers_own_credential(tmp_path: Path) -> None:
    """`--confirm` is the caller's, with their credential, at a running Junction: no
    credential, `--as` beside it, or a Junction that does not answer is each one clear line."""
    sock = loopback_socket()  # bound, never listening: nobody answers there
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    path = tmp_path / "junction.yaml"
    path.write_text(json.dumps(config_for(tmp_path, "http://127.0.0.1:9/mcp", base)))
    runs = {
        "no credential": ((), {}),
        "with --as": (("--as", "alice"), {"JUNCTION_TOKEN": KEYS["alice"]}),
        "nobody there": (("--connect", base), {"JUNCTION_TOKEN": KEYS["alice"]}),
        "not http": (("--connect", "ws://127.0.0.1:1/acp"), {"JUNCTION_TOKEN": KEYS["alice"]}),
    }
    said: dict[str, tuple[int | None, str]] = {}
    environment = {k: v for k, v in os.environ.items() if k != "JUNCTION_TOKEN"}
    for name, (extra, env) in runs.items():
        process = await asyncio.create_subprocess_exec(
            *(JUNCTION, "login", "guarded", "--config", str(path), "--confirm", "ABCDE-FGHJK"),
            *extra,
            env={**environment, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert not out, out
        said[name] = (process.returncode, err.decode())
    sock.close()
    assert (
        said["no credential"][0] == 2
        and "--token KEY, or $JUNCTION_TOKEN" in said["no credential"][1]
    )
    assert said["with --as"][0] == 2 and "(not both)" in said["with --as"][1]
    assert said["nobody there"][0] == 1
    assert f"cannot reach Junction at {base}" in said["nobody there"][1]
    assert said["not http"][0] == 2 and "http(s)://HOST" in said["not http"][1]
    for code, text in said.values():
        assert "Traceback" not in text and KEYS["alice"] not in text, (code, text)
