"""Serving JSON-RPC methods: registration, envelope checks and dispatch through jsonrpcserver.

Shared by the long-lived peer (stdio, WebSocket, SSE) and by one-shot HTTP endpoints (A2A's
JSON-RPC binding), so both answer bad input with the same errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard, cast

import orjson
from jsonrpcserver import JsonRpcError, Success
from jsonrpcserver.async_dispatcher import call as call_method
from jsonrpcserver.dispatcher import create_request, to_response
from jsonrpcserver.response import to_serializable_one
from jsonrpcserver.result import MethodNotFoundResult
from jsonrpcserver.sentinels import NOCONTEXT, NOID
from oslash.either import Left
from pydantic import BaseModel, ValidationError

from transports.errors import INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, RpcError

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[Any]]
RequestId = int | str


def to_jsonable(value: Any) -> Any:
    """Turn a handler's result (a pydantic model, or plain JSON data) into JSON data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def valid_id(value: Any) -> TypeGuard[RequestId]:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def error_response(
    request_id: RequestId | None, code: int, message: str, data: Any = None
) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": RpcError(code, message, data).to_json(), "id": request_id}


def envelope_problem(message: dict[str, Any]) -> str | None:
    """Why a request object is not valid JSON-RPC 2.0, or None when it is."""
    if message.get("jsonrpc") != "2.0":
        return 'the "jsonrpc" member must be exactly "2.0"'
    if not isinstance(message.get("method"), str):
        return 'the "method" member must be a string'
    if "id" in message and not valid_id(message["id"]):
        return 'the "id" member must be a string or an integer'
    if message.get("params") is not None and not isinstance(message["params"], dict | list):
        return 'the "params" member must be an object or an array'
    return None


def check_request(message: Any) -> dict[str, Any] | None:
    """The -32600 reply a single request deserves, or None when it is a valid request."""
    if not isinstance(message, dict):
        return error_response(None, INVALID_REQUEST, "a JSON-RPC message must be an object")
    if "method" not in message:
        return error_response(None, INVALID_REQUEST, 'a request needs a "method" member')
    problem = envelope_problem(message)
    if problem is None:
        return None
    request_id = message.get("id")
    return error_response(request_id if valid_id(request_id) else None, INVALID_REQUEST, problem)


class Methods:
    """The methods one endpoint serves, dispatched through jsonrpcserver."""

    def __init__(self) -> None:
        self._table: dict[str, Callable[..., Awaitable[Any]]] = {}

    def __contains__(self, method: str) -> bool:
        return method in self._table

    def on(self, method: str, handler: Handler, params: type[BaseModel] | None = None) -> None:
        """Serve `method` (as a request or a notification) with `handler`.

        With a pydantic `params` model the handler receives the validated model and bad params are
        answered with -32602 and pydantic's error detail; without one it receives the raw params.
        A handler raises `RpcError` to answer with that error; any other exception is logged with
        its traceback and answered -32603 with no detail.
        """

        async def call(*args: Any, **kwargs: Any) -> Any:
            # jsonrpcserver passes array params positionally, object params as keywords.
            raw: Any = kwargs if kwargs or not args else list(args)
            if params is not None:
                try:
                    raw = params.model_validate(raw)
                except ValidationError as exc:
                    # No "input" in the detail: it would echo a multi-MiB argument back.
                    detail = exc.errors(
                        include_url=False, include_context=False, include_input=False
                    )
                    raise JsonRpcError(INVALID_PARAMS, "Invalid params", detail) from None
            try:
                result = await handler(raw)
            except RpcError as exc:
                raise JsonRpcError(exc.code, exc.message, exc.to_json().get("data")) from None
            except Exception:
                log.exception("handler for %s failed", method)
                raise JsonRpcError(INTERNAL_ERROR, "Internal error") from None
            return Success(to_jsonable(result))

        self._table[method] = call

    async def dispatch(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """Run one checked request or notification; its reply, or None for a notification.

        The envelope is already parsed and checked, so this enters jsonrpcserver after its own
        parse and schema steps. It also skips jsonrpcserver's `validate_args`, which binds the
        params to the method's signature on every call (~40% of dispatch): every method here takes
        any params and validates them with pydantic, so that binding could never fail.
        """
        request = create_request(message)
        method = self._table.get(request.method)
        if method is None:
            result = Left(MethodNotFoundResult(request.method))
        else:
            result = await call_method(request, NOCONTEXT, method)
        if request.id is NOID:
            return None
        return cast(dict[str, Any], to_serializable_one(to_response(request, result)))

    async def handle(self, body: bytes) -> bytes | None:
        """Answer one HTTP-style JSON-RPC body (a request or a batch); None when nothing is owed."""
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return orjson.dumps(error_response(None, PARSE_ERROR, "Parse error", str(exc)))
        if not isinstance(message, list):
            reply = await self._one(message)
            return None if reply is None else orjson.dumps(reply)
        if not message:
            return orjson.dumps(error_response(None, INVALID_REQUEST, "empty batch"))
        replies = await asyncio.gather(*(self._one(item) for item in message))
        batch = [reply for reply in replies if reply is not None]
        return orjson.dumps(batch) if batch else None

    async def _one(self, message: Any) -> dict[str, Any] | None:
        problem = check_request(message)
        return problem if problem is not None else await self.dispatch(message)
