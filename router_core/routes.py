"""The HTTP routes of the model surfaces, assembled for the serve-mode app: OpenAI's
`/v1/chat/completions` (`openai_api`), `/v1/models`, `/v1/embeddings`, Anthropic's
`/v1/messages` (`anthropic_api`), OpenAI-shaped answers for anything else under `/v1`, and
`/admin/backends` (state, runtime registration, heartbeat, deregistration)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from router_core.access import OUTSIDE_MODEL_GLOBS, allowed_models, model_allowed
from router_core.anthropic_api import messages_endpoint
from router_core.audit import audit
from router_core.bodies import read_limited
from router_core.openai_api import ChatCompletions, error_body, validation_message
from router_core.quota import QUOTA, LimitExceeded, admit
from router_core.registry import BackendEntry, RegistryError
from router_core.router import Router, RouterError
from router_core.settings import BackendSpec


class _BadRequest(Exception):
    """The request cannot be served as written (400)."""


class Registration(BackendSpec):
    """`POST /admin/backends`: a backend announcing itself (re-posting is a heartbeat too)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: float | None = Field(default=None, gt=0.0, le=86400.0)


def _json_error(status: int, message: str) -> JSONResponse:
    return JSONResponse(orjson.loads(error_body(status, message)), status_code=status)


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"request body is not valid JSON: {exc}") from None


class _TooLarge(Exception):
    """The request body is over the configured limit (413)."""


async def _json_body(request: Request, limit: int) -> Any:
    body = await read_limited(request, limit)
    if body is None:
        raise _TooLarge(f"request body is larger than the {limit}-byte limit")
    return _loads(body)


_EMBEDDING_OPTIONS = {"encoding_format": str, "dimensions": int, "user": str}


def _embedding_inputs(doc: Any) -> tuple[str, list[Any], dict[str, Any]]:
    """`model`, the inputs as a list and the other options of an embeddings request; raises
    _BadRequest naming the field when the shape is not OpenAI's."""
    if not isinstance(doc, dict):
        raise _BadRequest("request body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("'model' must be a non-empty string")
    raw = doc.get("input")
    inputs: list[Any] = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    tokens = all(isinstance(i, int) and not isinstance(i, bool) for i in inputs)
    if inputs and tokens and isinstance(raw, list):
        inputs = [raw]  # one array of tokens is one input
    ok = bool(inputs) and all(
        isinstance(item, str)
        or (
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        )
        for item in inputs
    )
    if not ok:
        raise _BadRequest(
            "'input' must be a string, an array of strings, an array of tokens or an array of "
            "token arrays, and not empty"
        )
    extra: dict[str, Any] = {}
    for name, kind in _EMBEDDING_OPTIONS.items():
        value = doc.get(name)
        if value is None:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _BadRequest(f"'{name}' must be of type {kind.__name__}")
        extra[name] = value
    return model, inputs, extra


def openai_routes(router: Router) -> list[BaseRoute]:
    """The routes to mount at the root of the serve-mode app (the caller runs the router's
    lifecycle: `await router.start()` at startup, `await router.aclose()` at shutdown)."""

    async def models(request: Request) -> Response:
        await router.registry.ensure_discovered()  # at once unless a backend never answered
        allowed = allowed_models(request.scope)
        available = {
            model: backends
            for model, backends in router.available_models().items()
            if model_allowed(allowed, model)
        }
        data = [
            {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": "junction",
                "backends": backends,
            }
            for model, backends in available.items()
        ]
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    async def list_backends(request: Request) -> Response:
        return Response(
            orjson.dumps({"backends": router.snapshot()}), media_type="application/json"
        )

    async def register(request: Request) -> Response:
        try:
            doc = await _json_body(request, router.settings.max_body_bytes)
            spec = Registration.model_validate(doc)
        except _TooLarge as exc:
            return _json_error(413, str(exc))
        except _BadRequest as exc:
            return _json_error(400, str(exc))
        except ValidationError as exc:
            return _json_error(400, validation_message(exc))
        existed = spec.name in router.registry
        try:
            entry = router.register(BackendSpec.model_validate(spec.model_dump()), spec.ttl)
        except RegistryError as exc:
            return _json_error(exc.status, str(exc))
        except ValueError as exc:
            return _json_error(400, f"invalid backend: {exc}")
        return JSONResponse(
            {
                "name": entry.name,
                "ttl": entry.ttl,
                "heartbeat": f"/admin/backends/{entry.name}/heartbeat",
            },
            status_code=200 if existed else 201,
        )

    async def heartbeat(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            entry = router.heartbeat(name)
        except KeyError:
            return _json_error(404, f"no registered backend named {name!r} (register again)")
        return JSONResponse({"name": entry.name, "ttl": entry.ttl})

    async def deregister(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            router.deregister(name)
        except KeyError:
            return _json_error(404, f"no backend named {name!r}")
        except RegistryError as exc:
            return _json_error(exc.status, str(exc))
        return Response(status_code=204)

    async def embeddings(request: Request) -> Response:
        """`POST /v1/embeddings`: routed like chat (the model's backends, the strategy, retries
        and failover); OpenAI-compatible backends get the request as is, Ollama's are
        translated, backends without embeddings are skipped."""
        body = await read_limited(request, router.settings.max_body_bytes)
        if body is None:
            limit = router.settings.max_body_bytes
            return _json_error(413, f"request body is larger than the {limit}-byte limit")
        try:
            model, inputs, extra = _embedding_inputs(_loads(body))
        except _BadRequest as exc:
            return _json_error(400, str(exc))
        if not model_allowed(allowed_models(request.scope), model):
            audit("model", "deny", model=model, reason=OUTSIDE_MODEL_GLOBS, status=404)
            return _json_error(404, f"no model {model!r} for this API key")
        try:
            await admit(QUOTA.get(), "models", model)
        except LimitExceeded as exc:
            refused = _json_error(429, str(exc))
            refused.headers["Retry-After"] = str(exc.retry_after)
            return refused

        async def attempt(entry: BackendEntry, name: str) -> Any:
            return await entry.backend.embed(name, inputs, extra)

        try:
            routed = await router.dispatch(model, attempt, operation="embeddings")
        except RouterError as exc:
            return _json_error(exc.status, str(exc))
        doc = routed.value
        if isinstance(doc, dict):
            doc["model"] = model
        return Response(
            orjson.dumps(doc),
            media_type="application/json",
            headers={"x-junction-backend": routed.backend or "none"},
        )

    allowed_methods = {
        "/v1/chat/completions": "POST",
        "/v1/embeddings": "POST",
        "/v1/messages": "POST",
        "/v1/models": "GET",
    }

    async def unknown(request: Request) -> Response:
        """Anything else under `/v1`: 404 (405 for a known path), in OpenAI's error shape."""
        where = f"{request.method} {request.url.path}"
        allowed = allowed_methods.get(request.url.path)
        if allowed is not None:
            response = _json_error(405, f"Method Not Allowed ({where})")
            response.headers["allow"] = allowed
            return response
        return _json_error(404, f"Invalid URL ({where})")

    return [
        Route("/v1/chat/completions", ChatCompletions(router), methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/messages", messages_endpoint(router), methods=["POST"]),
        Route("/v1/{path:path}", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/admin/backends", list_backends, methods=["GET"]),
        Route("/admin/backends", register, methods=["POST"]),
        Route("/admin/backends/{name}/heartbeat", heartbeat, methods=["POST"]),
        Route("/admin/backends/{name}", deregister, methods=["DELETE"]),
    ]


__all__ = ["Registration", "openai_routes"]
