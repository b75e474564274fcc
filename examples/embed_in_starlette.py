"""Junction embedded in another Starlette (or FastAPI) application, under a URL prefix.

    python examples/embed_in_starlette.py --port 8000 [--config junction.yaml]

The host application owns the process and the event loop; Junction's surfaces answer under
`/junction/` (`/junction/health`, `/junction/v1/models`, `/junction/mcp`, ...), and the host's own
route reads Junction's live state. Starlette does not run a mounted app's lifespan, so the host's
lifespan starts and stops Junction.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from junction import Junction


def build(junction: Junction) -> Starlette:
    async def status(request: Request) -> JSONResponse:
        """The host's own page, built from Junction's live state."""
        health = junction.health()
        return JSONResponse({"junction": health["status"], "down": health["down"]})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with junction:
            yield

    return Starlette(
        routes=[Route("/status", status), Mount("/junction", app=junction.asgi_app())],
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
