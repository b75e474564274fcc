"""An MCP server that requires OAuth, written with the `mcp` SDK's server auth (`MCPServer`
with `AuthSettings` and a `TokenVerifier`), trusting the test's OpenID provider: bearer JWTs
checked against the provider's published keys (JWKS), for this server's own resource (`aud`),
with the `mcp` scope. Its protected resource metadata (RFC 9728) names the provider.

Tools: `whoami` (the token's subject and client), `token_id` (the `jti`, to see a refresh).

Run as `python protected_mcp.py ISSUER [sse]`; prints one JSON line {"url": ".../mcp"} (or
".../sse" for the legacy SSE transport) when it listens on 127.0.0.1, and serves until stdin
closes.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any

import httpx
import jwt
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer


class JwksVerifier:
    """Tokens signed by the issuer's published keys, for `resource`, not expired."""

    def __init__(self, issuer: str, resource: str) -> None:
        self.issuer = issuer
        self.resource = resource
        keys = httpx.get(f"{issuer}/jwks", timeout=20).json()
        self.keys = jwt.PyJWKSet.from_dict(keys)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = next(k for k in self.keys.keys if k.key_id == kid)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=self.resource,
                issuer=self.issuer,
                leeway=0,
            )
        except (jwt.PyJWTError, StopIteration):
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id", "")),
            scopes=str(claims.get("scope", "")).split(),
            expires_at=int(claims["exp"]),
            resource=self.resource,
            subject=claims.get("sub"),
            claims=claims,
        )


def main() -> None:
    issuer = sys.argv[1]
    sse = sys.argv[2:] == ["sse"]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    resource = f"{base}/sse" if sse else f"{base}/mcp"
    server: MCPServer[Any] = MCPServer(
        "protected",
        token_verifier=JwksVerifier(issuer, resource),
        auth=AuthSettings(
            issuer_url=issuer,  # type: ignore[arg-type]
            resource_server_url=resource,  # type: ignore[arg-type]
            required_scopes=["mcp"],
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def whoami() -> str:
        """Who the bearer token says the caller is."""
        token = get_access_token()
        assert token is not None
        return f"sub={token.subject} client={token.client_id}"

    @server.tool()
    def token_id() -> str:
        """The bearer token's id: a new one after a refresh."""
        token = get_access_token()
        assert token is not None and token.claims is not None
        return str(token.claims.get("jti"))

    app = server.sse_app() if sse else server.streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    running = uvicorn.Server(config)

    def announce() -> None:
        while not running.started:
            time.sleep(0.05)
        print(json.dumps({"url": resource}), flush=True)

    def stop_on_eof() -> None:
        sys.stdin.read()
        running.should_exit = True

    threading.Thread(target=announce, daemon=True).start()
    threading.Thread(target=stop_on_eof, daemon=True).start()
    running.run(sockets=[sock])


if __name__ == "__main__":
    main()
