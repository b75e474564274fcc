"""An official a2a-sdk agent that requires credentials, declared on its card, run as a separate
process by the A2A security tests (the executor is sdk_agent.py's).

    python sdk_secure_agent.py --port P --name NAME --scheme bearer|apikey|oidc|oauth2
        [--secret S] [--header H] [--issuer URL --audience AUD] [--token-url URL]

- `bearer`: card scheme HTTP Bearer; requests need `Authorization: Bearer S`.
- `apikey`: card scheme API key in header H (default X-API-Key); requests need `H: S`.
- `oidc`: card scheme OpenID Connect (the issuer's discovery URL); requests need a JWT from the
  issuer (checked with its published keys) whose `aud` names AUD (`self`: its own URL).
- `oauth2`: the same check, the card scheme OAuth 2 with a client credentials flow whose
  `tokenUrl` is --token-url.

The card itself is public. Every request refused gets 401 with `WWW-Authenticate`; `GET /seen`
lists what each accepted request presented (the token's `sub`/`aud`/`jti`, or `static`).
Prints "READY" on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import httpx
import jwt
import uvicorn
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from sdk_agent import Executor  # the plain agent's behaviour, beside this script
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def scheme_of(args: argparse.Namespace) -> SecurityScheme:
    if args.scheme == "bearer":
        return SecurityScheme(http_auth_security_scheme={"scheme": "Bearer"})
    if args.scheme == "apikey":
        return SecurityScheme(api_key_security_scheme={"location": "header", "name": args.header})
    if args.scheme == "oidc":
        url = f"{args.issuer}/.well-known/openid-configuration"
        return SecurityScheme(open_id_connect_security_scheme={"open_id_connect_url": url})
    flows = {"client_credentials": {"token_url": args.token_url, "scopes": {"a2a": "use it"}}}
    return SecurityScheme(oauth2_security_scheme={"flows": flows})


class Checker:
    """What a request must present; `seen` records what accepted ones did."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.seen: list[dict[str, Any]] = []
        self.jwks: jwt.PyJWKClient | None = None

    def check(self, headers: dict[str, str]) -> str | None:
        """None when the request may pass, else why not."""
        args = self.args
        if args.scheme == "apikey":
            if headers.get(args.header.lower()) != args.secret:
                return "missing or wrong API key"
            self.seen.append({"static": True})
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "missing bearer token"
        if args.scheme == "bearer":
            if token != args.secret:
                return "wrong bearer token"
            self.seen.append({"static": True})
            return None
        if self.jwks is None:
            discovery = httpx.get(f"{args.issuer}/.well-known/openid-configuration").json()
            self.jwks = jwt.PyJWKClient(discovery["jwks_uri"])
        try:
            key = self.jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token, key.key, algorithms=["RS256"], audience=args.audience, issuer=args.issuer
            )
        except jwt.PyJWTError as exc:
            return f"token refused: {exc}"
        self.seen.append({k: claims.get(k) for k in ("sub", "aud", "jti", "client_id")})
        return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="secure")
    parser.add_argument("--scheme", choices=["bearer", "apikey", "oidc", "oauth2"], required=True)
    parser.add_argument("--secret", default="")
    parser.add_argument("--header", default="X-API-Key")
    parser.add_argument("--issuer")
    parser.add_argument("--audience")
    parser.add_argument("--token-url")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    if args.audience == "self":
        args.audience = base
    card = AgentCard(
        name=args.name,
        description=f"test agent {args.name}, protected by {args.scheme}",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"{base}/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="guarded", name="guarded", description="guarded skill", tags=[])],
        security_schemes={args.scheme: scheme_of(args)},
        security_requirements=[
            SecurityRequirement(
                schemes={args.scheme: StringList(list=["a2a"] if args.issuer else [])}
            )
        ],
    )
    handler = DefaultRequestHandler(
        agent_executor=Executor(args.name), task_store=InMemoryTaskStore(), agent_card=card
    )
    checker = Checker(args)

    async def seen(request: Request) -> Response:
        return JSONResponse(checker.seen)

    routes = [
        *create_agent_card_routes(card),
        *create_jsonrpc_routes(handler, "/"),
        Route("/seen", seen, methods=["GET"]),
    ]
    app = Starlette(routes=routes)

    async def guard(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            problem = await asyncio.to_thread(checker.check, headers)
            if problem is not None:
                challenge = f'Bearer error="invalid_token", error_description="{problem}"'
                response = Response(
                    json.dumps({"error": problem}),
                    status_code=401,
                    media_type="application/json",
                    headers={"WWW-Authenticate": challenge[:200]},
                )
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    config = uvicorn.Config(
        guard, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
            await asyncio.sleep(0.01)
        print("READY", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
