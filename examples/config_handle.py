"""Junction's configuration as a handle: read it, replace it and follow it while Junction serves.

    python examples/config_handle.py --port 8000 [--config junction.yaml]

A host application embeds Junction under `/junction/` and offers its own small admin API over
Junction's configuration:

- `GET /config`: the running configuration, secrets redacted (`Junction.config`);
- `PUT /backends/{name}` with a backend (`{"type": "openai", "url": ..., "models": [...]}`):
  adds or replaces it with `Junction.replace_config`, without a restart and without dropping
  requests in flight; answers what changed (`ReloadResult`), or 400 with the reasons;
- `DELETE /backends/{name}`: removes it the same way.

Every applied change, whoever made it (this API, or `Junction.reload()`), reaches the listener
given to `Junction.subscribe`, which here keeps a log the host shows at `GET /changes`. These
routes are the host's: guard them as it guards its own admin pages.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from junction import ConfigError, Junction, JunctionConfig
from junction.reload import ReloadResult, changed_keys


def build(junction: Junction) -> Starlette:
    changes: list[list[str]] = []

    def follow(old: JunctionConfig, new: JunctionConfig) -> None:
        """Called after each applied change; key paths only, never values (secrets)."""
        changes.append(changed_keys(old, new))

    junction.subscribe(follow)

    async def replace_backends(backends: dict[str, Any]) -> JSONResponse:
        data = junction.config.model_dump()
        try:
            result: ReloadResult = await junction.replace_config({**data, "backends": backends})
        except ConfigError as exc:  # invalid: nothing was applied
            return JSONResponse({"errors": exc.lines}, status_code=400)
        return JSONResponse({"applied": result.applied, "needs_restart": result.needs_restart})

    async def put_backend(request: Request) -> JSONResponse:
        backends = junction.config.model_dump()["backends"]
        return await replace_backends(
            {**backends, request.path_params["name"]: await request.json()}
        )

    async def delete_backend(request: Request) -> JSONResponse:
        backends = junction.config.model_dump()["backends"]
        if backends.pop(request.path_params["name"], None) is None:
            return JSONResponse({"errors": ["no such backend"]}, status_code=404)
        return await replace_backends(backends)

    async def config(request: Request) -> JSONResponse:
        return JSONResponse(junction.config.redacted())

    async def changelog(request: Request) -> JSONResponse:
        return JSONResponse({"changes": changes})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with junction:
            yield

    return Starlette(
        routes=[
            Route("/config", config),
            Route("/changes", changelog),
            Route("/backends/{name}", put_backend, methods=["PUT"]),
            Route("/backends/{name}", delete_backend, methods=["DELETE"]),
            Mount("/junction", app=junction.asgi_app()),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", help="a junction.yaml; embedded defaults without one")
    args = parser.parse_args()
    junction = Junction.from_config_file(args.config) if args.config else Junction.from_config({})
    uvicorn.run(build(junction), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
