"""The hub's admin binding: list, register and remove agents over HTTP (`/admin/a2a/agents`)."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from a2a.registry import CardError, Registry
from a2a.settings import AgentSpec
from router_core.redaction import redact_urls


class AdminBinding:
    """Changes the registry on behalf of an operator; agents built into the process are left
    alone (409)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def list(self, request: Request) -> Response:
        return JSONResponse({"agents": [a.summary() for a in self.registry.all()]})

    async def register(self, request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
            name = body.pop("name")
            if not isinstance(name, str) or not name or "/" in name:
                raise ValueError("name must be a non-empty string without '/'")
            spec = AgentSpec.model_validate(body)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            return JSONResponse({"error": f"bad registration: {exc}"}, status_code=400)
        if (problem := self._builtin(name)) is not None:
            return problem
        try:
            agent = await self.registry.add(name, spec, source="admin", strict=True)
        except CardError as exc:
            error = redact_urls(str(exc), spec.headers.values())
            return JSONResponse({"error": error}, status_code=422)
        return JSONResponse(agent.summary(), status_code=201)

    async def remove(self, request: Request) -> Response:
        name = request.path_params["name"]
        if (problem := self._builtin(name)) is not None:
            return problem
        if await self.registry.remove(name):
            return Response(status_code=204)
        return JSONResponse({"error": "no such agent"}, status_code=404)

    def _builtin(self, name: str) -> Response | None:
        """409 for a local (in-process) agent: it belongs to the program, not to the admin API."""
        agent = self.registry.get(name)
        if agent is None or agent.source != "local":
            return None
        return JSONResponse(
            {
                "error": f"agent {name!r} is built into this process; it cannot be replaced or removed"
            },
            status_code=409,
        )
