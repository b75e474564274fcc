"""The real OpenID provider of the identity tests (npm oidc-provider, installed by
`.ci/peers.d/oidc-provider.sh` under `$JUNCTION_CI_CACHE/oidc`), run by `provider.mjs`, and the
client side the tests need: service tokens by client_credentials, and a person's sign-in (the
authorization redirect walked over HTTP, the provider's login and consent completing by
themselves) for the `mcp` SDK's OAuth client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

PROVIDER_SCRIPT = Path(__file__).with_name("provider.mjs")
REDIRECT_URI = "http://127.0.0.1:1/callback"
"""Never contacted: the walk stops at the redirect to it and reads the code off its URL."""


def oidc_install() -> Path:
    """Where the CI script installed oidc-provider; a clear failure (never a skip) without it."""
    cache = os.environ.get("JUNCTION_CI_CACHE")
    if not cache:
        raise RuntimeError("JUNCTION_CI_CACHE is not set: run `bash .ci/run` once, or export it")
    install = Path(cache) / "oidc"
    if not (install / "node_modules" / "oidc-provider" / "package.json").exists():
        raise FileNotFoundError(
            f"oidc-provider is not installed at {install}: run "
            "`cache=$JUNCTION_CI_CACHE bash -c 'source .ci/peers.d/oidc-provider.sh'`"
        )
    return install


@dataclass(frozen=True)
class Provider:
    issuer: str
    rogue_url: str
    """Same issuer, keys of its own: its tokens are signed by a key the issuer never published."""

    async def client_token(
        self, client: str, *, scope: str, resource: str, base: str | None = None
    ) -> str:
        """A client_credentials access token (a JWT for `resource`)."""
        async with httpx.AsyncClient(timeout=20) as http:
            reply = await http.post(
                f"{base or self.issuer}/token",
                data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
                auth=(client, f"{client}-secret"),
            )
        assert reply.status_code == 200, reply.text
        token: str = reply.json()["access_token"]
        return token


async def stop_by_stdin(process: asyncio.subprocess.Process) -> None:
    """Close a peer's stdin (the peers here exit when it ends); killed if still up in 10 s."""
    assert process.stdin is not None
    process.stdin.close()
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


async def _start_provider(
    node: str, errors: Any
) -> tuple[asyncio.subprocess.Process, bytes | None]:
    """One try at starting provider.mjs: the process and its ready line (empty: it exited;
    None: it printed nothing within 30 s, and was stopped)."""
    process = await asyncio.create_subprocess_exec(
        node,
        str(PROVIDER_SCRIPT),
        str(oidc_install()),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            return process, await process.stdout.readline()
    except TimeoutError:
        process.kill()
        await process.wait()
        return process, None


@asynccontextmanager
async def oidc_provider() -> AsyncIterator[Provider]:
    """The provider, started afresh. A start that prints nothing in 30 s is tried once more
    (a whole CI run once saw node stay silent that long, where it listens in half a second);
    what node wrote to stderr is in the failure."""
    node = shutil.which("node")
    assert node is not None, "node is not on PATH"
    with tempfile.TemporaryFile() as errors:
        process, line = await _start_provider(node, errors)
        if line is None:
            process, line = await _start_provider(node, errors)
        assert process.stdin is not None
        try:
            if not line:
                errors.seek(0)
                said = errors.read().decode(errors="replace")[-4000:]
                raise AssertionError(f"the OpenID provider did not start; its stderr:\n{said}")
            ready = json.loads(line)
            yield Provider(ready["issuer"], ready["rogue_url"])
        finally:
            if process.returncode is None:
                await stop_by_stdin(process)


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified (to read `exp` in a test)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


class Browser:
    """A person at a browser: follows the authorization redirect through the provider's login
    and consent (as `login_hint`) and hands the code back to the OAuth client."""

    def __init__(self, user: str) -> None:
        self.user = user
        self._result: asyncio.Future[dict[str, str]] | None = None

    async def open(self, authorization_url: str) -> None:
        """The `redirect_handler`: walk the redirects until the one to `REDIRECT_URI`."""
        url = f"{authorization_url}&{urlencode({'login_hint': self.user})}"
        async with httpx.AsyncClient(timeout=20, follow_redirects=False) as http:
            for _ in range(20):
                reply = await http.get(url)
                assert reply.status_code in (302, 303), (reply.status_code, reply.text[:500])
                url = urljoin(url, reply.headers["location"])
                if url.startswith(REDIRECT_URI):
                    query = parse_qs(urlsplit(url).query)
                    assert "code" in query, query
                    self._result = asyncio.get_running_loop().create_future()
                    self._result.set_result({key: values[0] for key, values in query.items()})
                    return
        raise AssertionError("the authorization never redirected back")

    async def callback(self) -> Any:
        """The `callback_handler`: the code, state and RFC 9207 `iss` of the redirect."""
        from mcp.client.auth import AuthorizationCodeResult

        assert self._result is not None, "the authorization was not walked"
        query = await self._result
        return AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )
