"""A caller's own login to a `per_user` MCP server, made over HTTP in serve mode.

`GET /mcp/login/NAME`, behind the access guard (the `mcp` scope): Junction starts the
authorization code flow with PKCE toward the server's authorization server, as `junction
login` does (RFC 9728 discovery, dynamic registration unless a client is configured), and
answers 302 to the authorization URL (also in the JSON body, for a client that shows it to its
person). The authorization server sends the browser back to `GET /mcp/login/callback`, which
takes no credential (a browser following a redirect has none to send): the `state` names the
flow. Each state is minted by the flow for one caller and one server, lives `LOGIN_SECONDS`,
and is used once; an unknown, reused or expired state is refused and nothing is stored. The
code is exchanged with that flow's own PKCE verifier.

Nothing ties the browser that comes back to the caller who started: anyone can be sent the
authorization URL ("click to connect your GitHub") and sign in there with *their* account. So
the callback stores nothing yet: the tokens are held, bound to (caller, server), and the page
shows whose Junction caller and which upstream account this would link, with a one-time
confirmation code. Only the caller who started finishes it, with their own credential:
`POST /mcp/login/NAME/confirm {"code": ...}` (or `junction login NAME --confirm CODE`). A
wrong code costs one of `CONFIRM_TRIES`; the last one, expiry (`CONFIRM_SECONDS`) or a new
sign-in drops the held tokens; another caller has nothing to confirm.

The flow lives in this process: behind several workers or replicas the callback and the
confirmation have to reach the one that started it (sticky routing), or they are refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from junction.audit import audit
from junction.build import gateway_inputs
from junction.config import JunctionConfig

if TYPE_CHECKING:
    from mcp_gateway import HttpUpstream
    from mcp_gateway.oauth_client import TokenFile

__all__ = ["CALLBACK", "CONFIRM_SECONDS", "CONFIRM_TRIES", "LOGIN_SECONDS", "UpstreamLogins"]

log = logging.getLogger("junction.upstream_login")

CALLBACK = "/mcp/login/callback"
LOGIN_SECONDS = 600.0
"""How long a started sign-in waits for its callback."""
START_SECONDS = 30.0
"""How long discovery and registration may take before the authorization URL is known."""
CONFIRM_SECONDS = 600.0
"""How long held tokens wait for their caller's confirmation."""
CONFIRM_TRIES = 5
"""Wrong codes before the held tokens are dropped."""
_CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"  # base32: no 0/1/8/9 to misread
_CODE_LENGTH = 10
"""50 bits: `CONFIRM_TRIES` guesses in `CONFIRM_SECONDS` have no chance."""
_NO_STORE = {"Cache-Control": "no-store"}
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
"""The callback's page: no script, style, frame or form; not cached, not referred."""
_SAID = 300
"""What of the authorization server's `error` and `error_description` a page shows."""

Code = tuple[str, str | None, str | None]


@dataclass
class _Pending:
    """One started sign-in, by its state."""

    principal: str
    server: str
    expires: float
    code: asyncio.Future[Code]
    task: asyncio.Task[int]
    store: TokenFile
    """Where the flow puts its tokens: held in memory until confirmed."""


@dataclass
class _Held:
    """A finished sign-in waiting for its caller's confirmation, by (caller, server)."""

    digest: bytes
    store: TokenFile
    expires: float
    tries: int
    tools: int


class UpstreamLogins:
    """The three routes, the sign-ins under way (state -> whose, for which server) and those
    waiting for confirmation ((caller, server) -> held tokens)."""

    def __init__(self, config: Callable[[], JunctionConfig]) -> None:
        self._config = config
        self._pending: dict[str, _Pending] = {}
        self._held: dict[tuple[str, str], _Held] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route(CALLBACK, self.callback, methods=["GET"]),
            Route("/mcp/login/{server}", self.start, methods=["GET"]),
            Route("/mcp/login/{server}/confirm", self.confirm, methods=["POST"]),
        ]

    def _spec(self, server: str) -> HttpUpstream | None:
        from mcp_gateway import HttpUpstream
        from mcp_gateway.upstream_auth import LoginAuth

        for spec in gateway_inputs(self._config())[0]:
            if spec.name == server and isinstance(spec, HttpUpstream):
                auth = spec.auth
                return spec if isinstance(auth, LoginAuth) and auth.per_user else None
        return None

    @staticmethod
    def _caller(request: Request) -> str | None:
        state = request.scope.get("state")
        principal = state.get("principal") if isinstance(state, dict) else None
        return str(principal) if principal else None

    def _refusal(self, request: Request, server: str) -> tuple[HttpUpstream, str] | Response:
        """The server's spec and the caller, or the error to answer."""
        spec = self._spec(server)
        if spec is None:
            message = (
                f"no MCP server {server!r} with per-user logins "
                "(auth: {type: oauth, per_user: true})"
            )
            return JSONResponse({"error": message}, status_code=404, headers=_NO_STORE)
        principal = self._caller(request)
        if principal is None:
            message = (
                "a per-user login belongs to a caller: this Junction has no caller identity "
                "(set server.api_keys or server.oauth)"
            )
            return JSONResponse({"error": message}, status_code=403, headers=_NO_STORE)
        return spec, principal

    async def start(self, request: Request) -> Response:
        from mcp_gateway.oauth_client import login_auth, token_file

        server = request.path_params["server"]
        found = self._refusal(request, server)
        if isinstance(found, Response):
            return found
        spec, principal = found
        self._expire()
        store = token_file(spec, principal, held=True)
        loop = asyncio.get_running_loop()
        shown: asyncio.Future[str] = loop.create_future()
        code: asyncio.Future[Code] = loop.create_future()
        task: asyncio.Task[int] | None = None

        async def show(url: str) -> None:
            minted = parse_qs(urlsplit(url).query).get("state", [""])[0]
            if not minted or task is None:
                raise RuntimeError("the authorization URL carries no state")
            expires = time.monotonic() + LOGIN_SECONDS
            self._pending[minted] = _Pending(principal, server, expires, code, task, store)
            shown.set_result(url)

        async def wait() -> Code:
            return await code

        redirect_uri = str(request.base_url).rstrip("/") + CALLBACK
        auth = login_auth(spec, redirect_uri, show, wait, principal, store=store)
        task = asyncio.create_task(self._walk(spec, auth))
        task.add_done_callback(self._finished)
        either: set[asyncio.Future[Any]] = {shown, task}
        await asyncio.wait(either, timeout=START_SECONDS, return_when="FIRST_COMPLETED")
        if not shown.done():
            task.cancel()
            reason = _reason(task) if task.done() else f"no answer within {START_SECONDS:g}s"
            message = f"could not start the sign-in to MCP server {server!r}: {reason}"
            return JSONResponse({"error": message}, status_code=502, headers=_NO_STORE)
        url = shown.result()
        audit("upstream_login", "allow", step="start", principal=principal, server=server)
        body = {
            "authorization_url": url,
            "server": server,
            "expires_in": int(LOGIN_SECONDS),
            "confirm": f"/mcp/login/{quote(server, safe='')}/confirm",
        }
        return JSONResponse(body, status_code=302, headers={"Location": url, **_NO_STORE})

    async def callback(self, request: Request) -> Response:
        query = request.query_params
        state = query.get("state", "")
        pending = self._pending.pop(state, None) if state else None
        if pending is None or pending.expires < time.monotonic():
            audit(
                "upstream_login", "deny", step="callback", reason="unknown, used or expired state"
            )
            return _page(
                "Sign-in not found",
                [
                    "This sign-in is unknown, was used already, or has expired; nothing was "
                    "stored. Start again with GET /mcp/login/NAME."
                ],
                400,
            )
        server, principal = pending.server, pending.principal
        fields = {"step": "callback", "principal": principal, "server": server}
        if "code" not in query:
            error = query.get("error", "no code in the redirect")[:_SAID]
            detail = query.get("error_description", "")[:_SAID]
            pending.code.set_exception(_Refused(f"{error}: {detail}" if detail else error))
            await asyncio.gather(pending.task, return_exceptions=True)
            audit("upstream_login", "deny", **fields, reason="the authorization server refused")
            said = [f"It said: {error}"] + ([f"({detail})"] if detail else [])
            lines = [f"The sign-in to MCP server {server!r} was refused.", " ".join(said)]
            return _page("Sign-in refused", [*lines, "Nothing was stored."], 400)
        pending.code.set_result((query["code"], state, query.get("iss")))
        try:
            tools = await asyncio.wait_for(asyncio.shield(pending.task), START_SECONDS)
        except Exception as exc:
            reason = _unwrapped(exc)
            log.warning("upstream login to %r as %r failed: %s", server, principal, reason)
            audit("upstream_login", "deny", **fields, reason="the code exchange failed")
            lines = [
                f"The sign-in to MCP server {server!r} failed: {reason}",
                "Nothing was stored.",
            ]
            return _page("Sign-in failed", lines, 502)
        code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
        expires = time.monotonic() + CONFIRM_SECONDS
        held = _Held(_digest(code), pending.store, expires, CONFIRM_TRIES, tools)
        self._held[(principal, server)] = held  # a newer sign-in replaces an unconfirmed one
        audit("upstream_login", "allow", **fields, reason="held for confirmation")
        return _confirm_page(server, principal, pending.store.identity, _shown(code))

    async def confirm(self, request: Request) -> Response:
        """The caller who started a sign-in finishes it: the held tokens become their login."""
        server = request.path_params["server"]
        found = self._refusal(request, server)
        if isinstance(found, Response):
            return found
        _, principal = found
        fields = {"step": "confirm", "principal": principal, "server": server}
        try:
            body = await request.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        if not isinstance(code, str) or not code.strip():
            message = 'the body must be JSON with the code the sign-in page showed: {"code": "..."}'
            return JSONResponse({"error": message}, status_code=400, headers=_NO_STORE)
        self._expire()
        held = self._held.get((principal, server))
        if held is None:
            audit("upstream_login", "deny", **fields, reason="nothing held for this caller")
            message = (
                f"no sign-in to MCP server {server!r} started by {principal!r} waits for "
                "confirmation; nothing was stored. A code confirms only the sign-in its own "
                f"caller started (GET /mcp/login/{server}), within {CONFIRM_SECONDS / 60:g} "
                "minutes of the browser coming back, once."
            )
            return JSONResponse({"error": message}, status_code=404, headers=_NO_STORE)
        if not hmac.compare_digest(_digest(code), held.digest):
            held.tries -= 1
            if held.tries <= 0:
                del self._held[(principal, server)]
                audit("upstream_login", "deny", **fields, reason="wrong code, sign-in dropped")
                message = (
                    f"wrong code, {CONFIRM_TRIES} times: the sign-in to MCP server {server!r} "
                    f"is dropped and nothing was stored; start again with GET /mcp/login/{server}"
                )
                return JSONResponse({"error": message}, status_code=400, headers=_NO_STORE)
            audit("upstream_login", "deny", **fields, reason="wrong code")
            message = f"wrong code ({held.tries} more tries before this sign-in is dropped)"
            return JSONResponse({"error": message}, status_code=400, headers=_NO_STORE)
        del self._held[(principal, server)]
        try:
            held.store.commit()
        except (OSError, ValueError) as exc:
            log.warning("storing the login to %r as %r failed: %s", server, principal, exc)
            audit("upstream_login", "deny", **fields, reason="the login could not be stored")
            message = f"the login to MCP server {server!r} could not be stored: {exc}"
            return JSONResponse({"error": message}, status_code=500, headers=_NO_STORE)
        audit("upstream_login", "allow", **fields, reason="confirmed and stored")
        reply = {
            "server": server,
            "principal": principal,
            "upstream_account": held.store.identity,
            "tools": held.tools,
        }
        return JSONResponse(reply, headers=_NO_STORE)

    @staticmethod
    async def _walk(spec: HttpUpstream, auth: Any) -> int:
        from mcp_gateway.oauth_client import walk_login

        async with asyncio.timeout(LOGIN_SECONDS):
            return await walk_login(spec, auth)

    def _finished(self, task: asyncio.Task[int]) -> None:
        """A flow that ended (done, failed, timed out) leaves no state behind to be used."""
        for state in [s for s, p in self._pending.items() if p.task is task]:
            del self._pending[state]
        if not task.cancelled():
            task.exception()  # retrieved: a failure was answered, or nobody came back

    def _expire(self) -> None:
        now = time.monotonic()
        for state in [s for s, p in self._pending.items() if p.expires < now]:
            self._pending.pop(state).task.cancel()
        for key in [k for k, held in self._held.items() if held.expires < now]:
            del self._held[key]


class _Refused(Exception):
    """The authorization server sent the browser back with an error."""


def _unwrapped(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__


def _reason(task: asyncio.Task[int]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return "it ended before asking anyone" if exc is None else _unwrapped(exc)


def _digest(code: str) -> bytes:
    """A code as typed (any case, with or without its dash and spaces), hashed to compare."""
    plain = "".join(code.split()).replace("-", "").upper()
    return hashlib.sha256(plain.encode()).digest()


def _shown(code: str) -> str:
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def _confirm_page(server: str, principal: str, identity: dict[str, str], code: str) -> Response:
    account = ", ".join(f"{name} {value}" for name, value in identity.items())
    whose = (
        f"the account {account}"
        if account
        else "the account you signed in with (the authorization server did not name it)"
    )
    return _page(
        "Confirm this sign-in",
        [
            f"This links {whose} at MCP server {server!r} to the Junction caller {principal!r}: "
            f"{principal!r} would then act with this account through Junction.",
            f"If you are not {principal!r}, or did not start this sign-in, close this page and "
            "give this code to no one: nothing is linked without it.",
            f"Otherwise finish it within {CONFIRM_SECONDS / 60:g} minutes, as {principal!r} "
            "(with your own Junction credential), with the code:",
        ],
        200,
        code=code,
        commands=[
            f"junction login {shlex.quote(server)} --confirm {code}",
            f'POST /mcp/login/{quote(server, safe="")}/confirm  {{"code": "{code}"}}',
        ],
    )


def _page(
    title: str,
    lines: list[str],
    status: int,
    *,
    code: str | None = None,
    commands: list[str] | None = None,
) -> HTMLResponse:
    """A plain page: every piece escaped, no script, served with `_PAGE_HEADERS`."""
    parts = [f"<!doctype html><meta charset=utf-8><title>Junction: {html.escape(title)}</title>"]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts.extend(f"<p>{html.escape(line)}</p>" for line in lines)
    if code is not None:
        parts.append(f"<p><strong><code>{html.escape(code)}</code></strong></p>")
    parts.extend(f"<pre>{html.escape(command)}</pre>" for command in commands or ())
    return HTMLResponse("".join(parts), status_code=status, headers=_PAGE_HEADERS)
