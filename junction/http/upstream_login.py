"""A caller's own login to a `per_user` MCP server, made over HTTP in serve mode.

`GET /mcp/login/NAME`, behind the access guard (the `mcp` scope): Junction starts the
authorization code flow with PKCE toward the server's authorization server, as `junction
login` does (RFC 9728 discovery, dynamic registration unless a client is configured), and
answers 302 to the authorization URL (also in the JSON body, for a client that shows it to its
person). The authorization server sends the browser back to `GET /mcp/login/callback`, which
takes no credential (a browser following a redirect has none to send): the `state` decides.
Each state is minted by the flow for one caller and one server, lives `LOGIN_SECONDS`, and is
used once; an unknown, reused or expired state is refused and nothing is stored. The code is
exchanged with that flow's own PKCE verifier, and the tokens are stored encrypted under
(server, the caller who started it), never anyone else.

The flow lives in this process: behind several workers or replicas the callback has to reach
the one that started it (sticky routing), or it is refused as unknown.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from junction.audit import audit
from junction.build import gateway_inputs
from junction.config import JunctionConfig

if TYPE_CHECKING:
    from mcp_gateway import HttpUpstream

__all__ = ["CALLBACK", "LOGIN_SECONDS", "UpstreamLogins"]

log = logging.getLogger("junction.upstream_login")

CALLBACK = "/mcp/login/callback"
LOGIN_SECONDS = 600.0
"""How long a started sign-in waits for its callback."""
START_SECONDS = 30.0
"""How long discovery and registration may take before the authorization URL is known."""
_NO_STORE = {"Cache-Control": "no-store"}

Code = tuple[str, str | None, str | None]


@dataclass
class _Pending:
    """One started sign-in, by its state."""

    principal: str
    server: str
    expires: float
    code: asyncio.Future[Code]
    task: asyncio.Task[int]


class UpstreamLogins:
    """The two routes and the sign-ins under way (state -> whose, for which server)."""

    def __init__(self, config: Callable[[], JunctionConfig]) -> None:
        self._config = config
        self._pending: dict[str, _Pending] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route(CALLBACK, self.callback, methods=["GET"]),
            Route("/mcp/login/{server}", self.start, methods=["GET"]),
        ]

    def _spec(self, server: str) -> HttpUpstream | None:
        from mcp_gateway import HttpUpstream
        from mcp_gateway.upstream_auth import LoginAuth

        for spec in gateway_inputs(self._config())[0]:
            if spec.name == server and isinstance(spec, HttpUpstream):
                auth = spec.auth
                return spec if isinstance(auth, LoginAuth) and auth.per_user else None
        return None

    async def start(self, request: Request) -> Response:
        from mcp_gateway.oauth_client import login_auth

        server = request.path_params["server"]
        spec = self._spec(server)
        if spec is None:
            message = (
                f"no MCP server {server!r} with per-user logins "
                "(auth: {type: oauth, per_user: true})"
            )
            return JSONResponse({"error": message}, status_code=404, headers=_NO_STORE)
        state = request.scope.get("state")
        principal = state.get("principal") if isinstance(state, dict) else None
        if not principal:
            message = (
                "a per-user login belongs to a caller: this Junction has no caller identity "
                "(set server.api_keys or server.oauth)"
            )
            return JSONResponse({"error": message}, status_code=403, headers=_NO_STORE)
        principal = str(principal)
        self._expire()
        loop = asyncio.get_running_loop()
        shown: asyncio.Future[str] = loop.create_future()
        code: asyncio.Future[Code] = loop.create_future()
        task: asyncio.Task[int] | None = None

        async def show(url: str) -> None:
            minted = parse_qs(urlsplit(url).query).get("state", [""])[0]
            if not minted or task is None:
                raise RuntimeError("the authorization URL carries no state")
            expires = time.monotonic() + LOGIN_SECONDS
            self._pending[minted] = _Pending(principal, server, expires, code, task)
            shown.set_result(url)

        async def wait() -> Code:
            return await code

        redirect_uri = str(request.base_url).rstrip("/") + CALLBACK
        auth = login_auth(spec, redirect_uri, show, wait, principal)
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
        audit("upstream_login", "start", principal=principal, server=server)
        body = {"authorization_url": url, "server": server, "expires_in": int(LOGIN_SECONDS)}
        return JSONResponse(body, status_code=302, headers={"Location": url, **_NO_STORE})

    async def callback(self, request: Request) -> Response:
        query = request.query_params
        state = query.get("state", "")
        pending = self._pending.pop(state, None) if state else None
        if pending is None or pending.expires < time.monotonic():
            audit("upstream_login", "deny", reason="unknown, used or expired state")
            return _page(
                "This sign-in is unknown, was used already, or has expired; nothing was stored. "
                "Start again with GET /mcp/login/NAME.",
                400,
            )
        who = f"{pending.server!r} as {pending.principal!r}"
        if "code" not in query:
            error = query.get("error", "no code in the redirect")
            detail = query.get("error_description")
            pending.code.set_exception(_Refused(f"{error}: {detail}" if detail else error))
            await asyncio.gather(pending.task, return_exceptions=True)
            audit("upstream_login", "deny", principal=pending.principal, server=pending.server)
            return _page(f"The sign-in to {who} was refused: {error}.", 400)
        pending.code.set_result((query["code"], state, query.get("iss")))
        try:
            tools = await asyncio.wait_for(asyncio.shield(pending.task), START_SECONDS)
        except Exception as exc:
            reason = _unwrapped(exc)
            log.warning("upstream login to %s failed: %s", who, reason)
            audit("upstream_login", "deny", principal=pending.principal, server=pending.server)
            return _page(f"The sign-in to {who} failed: {reason}", 502)
        audit("upstream_login", "allow", principal=pending.principal, server=pending.server)
        return _page(f"Signed in to {who} ({tools} tools). You can close this page.", 200)

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


def _page(text: str, status: int) -> HTMLResponse:
    body = f"<!doctype html><title>Junction</title><p>{html.escape(text)}"
    return HTMLResponse(body, status_code=status, headers=_NO_STORE)
