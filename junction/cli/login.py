"""`junction login NAME` and `junction logout NAME`: a person's login to an MCP server that
requires OAuth (`auth: {type: oauth}`), for the gateway to use later.

Login walks the authorization code flow with PKCE through the `mcp` SDK's OAuth client: the
server's 401 leads to its protected resource metadata (RFC 9728), the authorization server's
metadata, dynamic client registration when no `client_id` is configured, then the
authorization page: its URL is printed on stderr (and opened in a browser when one is
available) while a loopback listener waits for the redirect. The tokens are stored encrypted
(`mcp.token_store`) and the server's tools are listed once, to show that the login works.

`--as CALLER` (a `per_user` server): the login is stored as that caller's (an API key's name
or a token's subject), for an operator signing someone in; without it, the server's own.

`--confirm CODE`: a person finishes the sign-in they started over HTTP (`GET /mcp/login/NAME`
on a running Junction), with the code its callback page showed and their own Junction
credential (`--token` or `$JUNCTION_TOKEN`; the server at `--connect`, else this config's
`server.host:port`): `POST /mcp/login/NAME/confirm`.
"""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
import webbrowser
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import anyio
import orjson

from junction.build import gateway_inputs
from junction.config import JunctionConfig

if TYPE_CHECKING:
    from aiohttp import web

    from mcp_gateway import HttpUpstream

__all__ = ["confirm_command", "login_command", "logout_command"]

_DONE_PAGE = (
    "<!doctype html><title>Junction</title><p>Signed in to {server}. You can close this page."
)


def _login_spec(
    config: JunctionConfig, server: str | None, command: str, principal: str | None = None
) -> HttpUpstream | str:
    """The server's spec, or the error line to print."""
    from mcp_gateway import HttpUpstream
    from mcp_gateway.upstream_auth import LoginAuth

    if not server:
        return f"junction {command}: name the MCP server (`junction {command} NAME`)"
    specs = {spec.name: spec for spec in gateway_inputs(config)[0]}
    spec = specs.get(server)
    if spec is None:
        known = ", ".join(sorted(specs)) or "none configured"
        return f"junction {command}: no MCP server named {server!r} (servers: {known})"
    if not isinstance(spec, HttpUpstream) or not isinstance(spec.auth, LoginAuth):
        return f"junction {command}: MCP server {server!r} has no `auth: {{type: oauth}}` login"
    if principal is not None and not spec.auth.per_user:
        return (
            f"junction {command}: MCP server {server!r} has one shared login; --as needs "
            "`auth: {type: oauth, per_user: true}`"
        )
    return spec


class _Redirect:
    """The loopback listener the authorization server redirects the browser to."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.uri = ""
        self._got = anyio.Event()
        self._result: tuple[str, str | None, str | None] | None = None
        self._error: str | None = None

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        from aiohttp import web

        query = request.query
        if "code" in query:
            self._result = (query["code"], query.get("state"), query.get("iss"))
            page = _DONE_PAGE.format(server=self.server)
        else:
            error = query.get("error", "no code in the redirect")
            detail = query.get("error_description")
            self._error = f"{error}: {detail}" if detail else error
            page = f"<!doctype html><title>Junction</title><p>Sign-in failed: {self._error}"
        self._got.set()
        return web.Response(text=page, content_type="text/html")

    @asynccontextmanager
    async def listening(self, port: int) -> AsyncIterator[_Redirect]:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/callback", self._callback)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
            await web.SockSite(runner, sock).start()
            self.uri = f"http://127.0.0.1:{sock.getsockname()[1]}/callback"
            yield self
        finally:
            await runner.cleanup()
            sock.close()

    async def wait(self) -> tuple[str, str | None, str | None]:
        await self._got.wait()
        if self._result is None:
            raise _LoginFailed(f"the authorization server refused: {self._error}")
        return self._result


class _LoginFailed(Exception):
    pass


async def _login(
    spec: HttpUpstream, open_browser: bool, timeout: float, principal: str | None
) -> int:
    from mcp_gateway.oauth_client import login_auth, token_file, walk_login
    from mcp_gateway.upstream_auth import LoginAuth

    assert isinstance(spec.auth, LoginAuth)
    who = "" if principal is None else f" as {principal!r}"

    async def show(url: str) -> None:
        print(
            f"Sign in to MCP server {spec.name!r}{who} at:\n\n  {url}\n",
            file=sys.stderr,
            flush=True,
        )
        if open_browser:
            opened = await anyio.to_thread.run_sync(webbrowser.open, url)
            if opened:
                print("(opened in your browser)", file=sys.stderr, flush=True)
        print("waiting for the sign-in to finish...", file=sys.stderr, flush=True)

    async with _Redirect(spec.name).listening(spec.auth.redirect_port) as redirect:
        auth = login_auth(spec, redirect.uri, show, redirect.wait, principal)
        with anyio.fail_after(timeout):
            tools = await walk_login(spec, auth)
    store = token_file(spec, principal)
    if not store.has_login():
        print(f"junction login: {spec.name!r} gave no tokens to store", file=sys.stderr)
        return 1
    print(
        f"logged in to {spec.name!r}{who} ({tools} tools); tokens stored encrypted in {store.path}"
    )
    return 0


def login_command(
    config: JunctionConfig,
    server: str | None,
    *,
    open_browser: bool = True,
    timeout: float = 300,
    principal: str | None = None,
) -> int:
    """0 when logged in; 1 when the flow failed or timed out; 2 for a server with no login.
    `principal` (`--as`): the login is that caller's, for a `per_user` server."""
    spec = _login_spec(config, server, "login", principal)
    if isinstance(spec, str):
        print(spec, file=sys.stderr)
        return 2
    try:
        return anyio.run(_login, spec, open_browser, timeout, principal)
    except TimeoutError:
        print(f"junction login: no sign-in finished within {timeout:g}s", file=sys.stderr)
    except Exception as exc:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]  # type: ignore[assignment]
        print(f"junction login: {spec.name!r}: {exc}", file=sys.stderr)
    return 1


def logout_command(config: JunctionConfig, server: str | None, principal: str | None = None) -> int:
    """Forget the stored login (0 whether or not there was one; 2 for a server with no login)."""
    from mcp_gateway.oauth_client import token_file

    spec = _login_spec(config, server, "logout", principal)
    if isinstance(spec, str):
        print(spec, file=sys.stderr)
        return 2
    who = "" if principal is None else f" as {principal!r}"
    if token_file(spec, principal).forget():
        print(f"logged out of {spec.name!r}{who}: its stored tokens are deleted")
    else:
        print(f"no stored login for {spec.name!r}{who}")
    return 0


def _junction_url(config: JunctionConfig, connect: str | None) -> str | None:
    """The running Junction to confirm with: `--connect`, else this config's own address."""
    if connect is None:
        host = config.server.host
        host = "127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{config.server.port}"
    parts = urlsplit(connect)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def confirm_command(
    config: JunctionConfig,
    server: str | None,
    code: str,
    connect: str | None,
    token: str | None,
    *,
    as_: str | None = None,
) -> int:
    """0 when the held sign-in is now the caller's login; 1 when refused or unreachable; 2 for
    a usage error. The running Junction decides everything (the caller is the credential's)."""
    if as_ is not None:
        print(
            "junction login: --confirm finishes your own sign-in with your own credential; "
            "--as is an operator's local login (not both)",
            file=sys.stderr,
        )
        return 2
    if not server:
        print(
            "junction login: name the MCP server (`junction login NAME --confirm CODE`)",
            file=sys.stderr,
        )
        return 2
    if not token:
        print(
            "junction login: --confirm needs your Junction credential (the one that started the "
            "sign-in): --token KEY, or $JUNCTION_TOKEN",
            file=sys.stderr,
        )
        return 2
    base = _junction_url(config, connect)
    if base is None:
        print(
            f"junction login: --connect needs http(s)://HOST[:PORT], not {connect!r}",
            file=sys.stderr,
        )
        return 2
    url = f"{base}/mcp/login/{quote(server, safe='')}/confirm"
    request = urllib.request.Request(
        url,
        data=orjson.dumps({"code": code}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as reply:
            answer = _json(reply.read())
    except urllib.error.HTTPError as exc:
        error = _json(exc.read()).get("error") or f"HTTP {exc.code}"
        print(f"junction login: {server!r}: {error}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"junction login: cannot reach Junction at {base}: {reason}", file=sys.stderr)
        return 1
    account = answer.get("upstream_account") or {}
    named = ", ".join(f"{k} {v}" for k, v in account.items()) if isinstance(account, dict) else ""
    print(
        f"logged in to {server!r} as {answer.get('principal')!r}"
        + (f" with the upstream account {named}" if named else "")
        + f" ({answer.get('tools')} tools)"
    )
    return 0


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
