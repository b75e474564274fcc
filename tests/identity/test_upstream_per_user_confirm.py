"""Login CSRF / account-linking confusion on per-person upstream logins, against the real OpenID
provider and the OAuth-protected upstream over real HTTP: Mallory starts a sign-in as herself
and gets Alice to finish it in her browser with Alice's account. The callback stores nothing;
its page tells Alice which Junction caller it would link and shows a one-time code. Mallory
cannot confirm without that code (a few wrong guesses drop the sign-in), Alice cannot confirm
what she did not start, and nothing is stored for either. Alice's own sign-in works end to end;
a wrong code, a reused one and one tried too often are refused; the page escapes a hostile
server name and the authorization server's error parameters; the audit trail records each step
and never a code or a token."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest

from junction.http.upstream_login import CONFIRM_TRIES
from junction.root import Junction
from router_core.http import close_session
from tests.identity.oidc import oidc_provider
from tests.identity.test_upstream_oauth import protected_upstream
from tests.identity.test_upstream_per_user import (
    KEYS,
    cli_login,
    config_for,
    confirm,
    confirmation_code,
    person_files,
    walk_to_junction,
    whoami,
)
from tests.transports.servers import loopback_socket, serve_app

HOSTILE = "<img src=x onerror=alert(1)>"
"""A configured server name a page must not render as markup."""
MALLORY = "mallory-key-5e0f"


def linked(tmp_path: Path) -> set[str]:
    """The callers with a stored login (none before the store's first file)."""
    if not (tmp_path / "tokens" / "key").exists():
        return set()
    return {who for who, record in person_files(tmp_path).items() if record.get("tokens")}


def page_is_locked_down(reply: httpx.Response) -> None:
    """The callback's page: HTML with no script allowed, not cached, framed or referred."""
    assert reply.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in reply.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["x-frame-options"] == "DENY"
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in reply.text.lower()


async def started(http: httpx.AsyncClient, base: str, key: str, server: str = "guarded") -> str:
    """`GET /mcp/login/SERVER` as the caller with `key`: the authorization URL."""
    reply = await http.get(f"{base}/mcp/login/{quote(server, safe='')}", headers={"x-api-key": key})
    assert reply.status_code == 302, reply.text
    return reply.headers["location"]


class Everything(logging.Handler):
    """Every log record's text, from every logger, while the test runs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.getMessage()} {record.__dict__}")


@pytest.mark.asyncio
async def test_a_sign_in_is_finished_only_by_the_caller_who_started_it(tmp_path: Path) -> None:
    logs = Everything()
    logging.getLogger().addHandler(logs)
    async with oidc_provider() as provider, protected_upstream(provider) as url:
        sock = loopback_socket()
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = config_for(tmp_path, url, base)
        config["server"]["api_keys"].append({"key": MALLORY, "name": "mallory"})
        config["mcp_servers"][HOSTILE] = config["mcp_servers"]["guarded"]
        config["logging"] = {"audit_file": str(tmp_path / "audit.jsonl")}
        path = tmp_path / "junction.yaml"
        path.write_text(json.dumps(config))
        code, _, err = await cli_login(path, "ops")  # Junction's own: it lists with it
        assert code == 0, err
        alice = {"x-api-key": KEYS["alice"]}
        mallory = {"x-api-key": MALLORY}
        running = Junction.from_config(config)
        codes: list[str] = []
        try:
            async with running, serve_app(running.asgi_app(), sock=sock):
                async with httpx.AsyncClient(timeout=30, follow_redirects=False) as http:
                    # Mallory starts as herself; Alice's browser signs in with Alice's account
                    lure = await started(http, base, MALLORY)
                    landed = await http.get(await walk_to_junction(lure, "alice", base))
                    assert landed.status_code == 200, landed.text
                    page_is_locked_down(landed)
                    text = landed.text
                    assert "the Junction caller &#x27;mallory&#x27;" in text
                    assert "the account sub alice" in text  # whose account Alice would give
                    assert "If you are not &#x27;mallory&#x27;" in text
                    assert not linked(tmp_path)
                    shown = confirmation_code(text)
                    codes.append(shown)
                    # Alice, with her own credential, has nothing to confirm: she did not start it
                    refused = await confirm(http, base, alice, shown)
                    assert refused.status_code == 404, refused.text
                    assert "started by 'alice'" in refused.json()["error"]
                    # Mallory without the code Alice's browser saw: guesses, then it is dropped
                    for left in range(CONFIRM_TRIES - 1, 0, -1):
                        guess = await confirm(http, base, mallory, "AAAAA-AAAAA")
                        assert guess.status_code == 400, guess.text
                        assert f"wrong code ({left} more tries" in guess.json()["error"]
                    last = await confirm(http, base, mallory, "AAAAA-AAAAB")
                    assert last.status_code == 400 and "is dropped" in last.json()["error"]
                    # even the right code is too late now
                    late = await confirm(http, base, mallory, shown)
                    assert late.status_code == 404, late.text
                    assert not linked(tmp_path)  # nothing for Mallory, nor for Alice
                    assert (await whoami(base, MALLORY)).startswith("error: ")
                    assert (await whoami(base, KEYS["alice"])).startswith("error: ")

                    # Alice's own sign-in, end to end: a wrong code costs one try, the right
                    # one (as typed: lower case, no dash) links her account, once
                    landed = await http.get(
                        await walk_to_junction(
                            await started(http, base, KEYS["alice"]), "alice", base
                        )
                    )
                    page_is_locked_down(landed)
                    assert "the Junction caller &#x27;alice&#x27;" in landed.text
                    shown = confirmation_code(landed.text)
                    codes.append(shown)
                    wrong = await confirm(http, base, alice, "BBBBB-BBBBB")
                    assert wrong.status_code == 400, wrong.text
                    assert f"({CONFIRM_TRIES - 1} more tries" in wrong.json()["error"]
                    assert not linked(tmp_path)
                    typed = shown.replace("-", "").lower()
                    done = await confirm(http, base, alice, typed)
                    assert done.status_code == 200, done.text
                    assert done.json()["upstream_account"]["sub"] == "alice"
                    again = await confirm(http, base, alice, shown)
                    assert again.status_code == 404, again.text
                    assert linked(tmp_path) == {"alice"}
                    assert (await whoami(base, KEYS["alice"])).startswith("sub=alice ")
                    assert (await whoami(base, MALLORY)).startswith("error: ")

                    # the authorization server's error parameters, escaped on the page
                    state = parse_qs(urlsplit(await started(http, base, KEYS["bob"])).query)
                    hostile: dict[str, Any] = {
                        "state": state["state"][0],
                        "error": "<script>alert(1)</script>",
                        "error_description": '"><svg onload=alert(2)>',
                    }
                    refused = await http.get(f"{base}/mcp/login/callback?{urlencode(hostile)}")
                    assert refused.status_code == 400
                    page_is_locked_down(refused)
                    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in refused.text
                    assert "<svg" not in refused.text and "&lt;svg onload" in refused.text
                    # a hostile server name, escaped on the page that names it
                    lure = await started(http, base, KEYS["bob"], HOSTILE)
                    landed = await http.get(await walk_to_junction(lure, "bob", base))
                    assert landed.status_code == 200, landed.text
                    page_is_locked_down(landed)
                    assert "<img" not in landed.text
                    assert "&lt;img src=x onerror=alert(1)&gt;" in landed.text
                    assert linked(tmp_path) == {"alice"}  # held: Bob has not confirmed
        finally:
            logging.getLogger().removeHandler(logs)
            await close_session()
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    steps = {
        (r.get("principal"), r["step"], r["decision"], r.get("reason"))
        for r in records
        if r["event"] == "upstream_login"
    }
    assert ("mallory", "start", "allow", None) in steps
    assert ("mallory", "callback", "allow", "held for confirmation") in steps
    assert ("alice", "confirm", "deny", "nothing held for this caller") in steps
    assert ("mallory", "confirm", "deny", "wrong code, sign-in dropped") in steps
    assert ("alice", "confirm", "allow", "confirmed and stored") in steps
    assert ("bob", "callback", "deny", "the authorization server refused") in steps
    stored = person_files(tmp_path)["alice"]["tokens"]
    secrets = [*codes, *(c.replace("-", "") for c in codes), stored["access_token"]]
    written = (tmp_path / "audit.jsonl").read_text() + "\n".join(logs.lines)
    for secret in secrets:
        assert secret not in written


def test_the_page_names_the_id_tokens_account_first() -> None:
    """An OpenID token response names its person in the ID token (shown before a JWT access
    token's subject); only short string claims are shown; anything else names no one."""
    from mcp_gateway.oauth_client import _named_identity

    def jwt(claims: dict[str, Any]) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        return f"eyJhbGciOiJSUzI1NiJ9.{payload}.c2lnbmF0dXJl"

    both = {
        "access_token": jwt({"sub": "client-app", "scope": "mcp"}),
        "id_token": jwt({"sub": "u-42", "email": "alice@example.com", "name": ["x"], "aud": "j"}),
    }
    assert _named_identity(json.dumps(both).encode()) == {
        "sub": "u-42",
        "email": "alice@example.com",
    }
    access_only = {"access_token": jwt({"sub": "alice", "email": "x" * 300})}
    assert _named_identity(json.dumps(access_only).encode()) == {"sub": "alice"}
    for body in (b"not json", b"[]", b'{"access_token": "opaque"}', b'{"id_token": "a.!!.c"}'):
        assert _named_identity(body) == {}
