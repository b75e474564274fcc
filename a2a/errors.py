"""A2A error codes and their wire shapes, which differ by protocol version and binding.

JSON-RPC: 1.0 puts an array of ProtoJSON `Any` details in `error.data` (a
`google.rpc.ErrorInfo` first); 0.3 carries free-form data. HTTP+JSON: a `google.rpc.Status` body
(spec 11.6), plus `type`/`message` for 0.3 clients. `A2aError` is the one exception root: handlers
raise it and each binding shapes it for the caller; answers from agents are read back into it.
"""

from __future__ import annotations

from typing import Any

from router_core.quota import QUOTA, RATE_LIMITED, LimitExceeded, admit
from transports import RpcError

Json = dict[str, Any]

TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005
INVALID_AGENT_RESPONSE = -32006
EXTENDED_CARD_NOT_CONFIGURED = -32007
EXTENSION_SUPPORT_REQUIRED = -32008
VERSION_NOT_SUPPORTED = -32009
# RATE_LIMITED (-32029, from router_core.quota): a caller over a rate limit or quota (not an
# A2A code; HTTP+JSON answers it with 429 and Retry-After).

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

REASONS: dict[int, str] = {
    TASK_NOT_FOUND: "TASK_NOT_FOUND",
    TASK_NOT_CANCELABLE: "TASK_NOT_CANCELABLE",
    PUSH_NOT_SUPPORTED: "PUSH_NOTIFICATION_NOT_SUPPORTED",
    UNSUPPORTED_OPERATION: "UNSUPPORTED_OPERATION",
    CONTENT_TYPE_NOT_SUPPORTED: "CONTENT_TYPE_NOT_SUPPORTED",
    INVALID_AGENT_RESPONSE: "INVALID_AGENT_RESPONSE",
    EXTENDED_CARD_NOT_CONFIGURED: "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
    EXTENSION_SUPPORT_REQUIRED: "EXTENSION_SUPPORT_REQUIRED",
    VERSION_NOT_SUPPORTED: "VERSION_NOT_SUPPORTED",
    RATE_LIMITED: "RATE_LIMIT_EXCEEDED",
    PARSE_ERROR: "PARSE_ERROR",
    INVALID_REQUEST: "INVALID_REQUEST",
    METHOD_NOT_FOUND: "METHOD_NOT_FOUND",
    INVALID_PARAMS: "INVALID_PARAMS",
    INTERNAL_ERROR: "INTERNAL_ERROR",
}

HTTP_STATUS: dict[int, int] = {
    TASK_NOT_FOUND: 404,
    METHOD_NOT_FOUND: 404,
    CONTENT_TYPE_NOT_SUPPORTED: 415,
    INVALID_AGENT_RESPONSE: 500,
    INTERNAL_ERROR: 500,
    RATE_LIMITED: 429,
}
"""HTTP status for the HTTP+JSON binding; everything else is 400."""

V03_CODES = frozenset(
    {
        TASK_NOT_FOUND,
        TASK_NOT_CANCELABLE,
        PUSH_NOT_SUPPORTED,
        UNSUPPORTED_OPERATION,
        CONTENT_TYPE_NOT_SUPPORTED,
        INVALID_AGENT_RESPONSE,
        EXTENDED_CARD_NOT_CONFIGURED,
        PARSE_ERROR,
        INVALID_REQUEST,
        METHOD_NOT_FOUND,
        INVALID_PARAMS,
        INTERNAL_ERROR,
    }
)
"""Codes a 0.3 client knows; others are reported to it as -32603 (as the official SDK does)."""

ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
DOMAIN = "a2a-protocol.org"


class A2aError(RpcError):
    """An A2A error; `metadata` becomes ErrorInfo metadata (1.0) or `data` (0.3)."""

    def __init__(
        self,
        code: int,
        message: str,
        metadata: dict[str, Any] | None = None,
        violations: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(code, message, metadata)
        self.metadata = metadata or {}
        self.violations = violations or []


async def admit_agent(name: str) -> None:
    """Count a message to agent `name` against the caller's rate limits (its quota is in
    `router_core.quota.QUOTA` while its request is served); over one, `RATE_LIMITED` with
    `limit`, `retryAfter` and `resetAt` in the error's metadata."""
    try:
        await admit(QUOTA.get(), "a2a_agents", name)
    except LimitExceeded as exc:
        raise A2aError(RATE_LIMITED, str(exc), exc.data()) from None


def error_object(
    code: int,
    message: str,
    version: str,
    metadata: dict[str, Any] | None = None,
    *,
    violations: list[dict[str, str]] | None = None,
    raw_data: Any = None,
) -> dict[str, Any]:
    """The JSON-RPC `error` member for a caller speaking `version` ("1.0" or "0.3")."""
    if version == "0.3":
        if code not in V03_CODES and code != VERSION_NOT_SUPPORTED:
            code = INTERNAL_ERROR  # -32009 stays: it is how a 0.3 caller learns to upgrade
        error: dict[str, Any] = {"code": code, "message": message}
        data: Any = metadata or None
        if violations:
            data = {**(metadata or {}), "errors": violations}
        if data is None and raw_data is not None:
            data = raw_data
        if data is not None:
            error["data"] = data
        return error
    details: list[dict[str, Any]] = [
        {
            "@type": ERROR_INFO_TYPE,
            "reason": REASONS.get(code, "UNKNOWN_ERROR"),
            "domain": DOMAIN,
            "metadata": {k: str(v) for k, v in (metadata or {}).items()},
        }
    ]
    if violations:
        details.append({"@type": BAD_REQUEST_TYPE, "fieldViolations": violations})
    return {"code": code, "message": message, "data": details}


def violations_from_pydantic(errors: list[Any]) -> list[dict[str, str]]:
    """pydantic's error list as `google.rpc.BadRequest` field violations (never echoing input)."""
    result = []
    for item in errors:
        if not isinstance(item, dict):
            continue
        field = ".".join(str(part) for part in item.get("loc", ()))
        result.append({"field": field, "description": str(item.get("msg", "invalid"))})
    return result


def from_error_member(error: Any) -> A2aError:
    """An error reply from a remote agent (either version) as an `A2aError`."""
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return A2aError(INVALID_AGENT_RESPONSE, "the agent answered with a malformed error")
    metadata: dict[str, Any] = {}
    data = error.get("data")
    if isinstance(data, list):
        for detail in data:
            if isinstance(detail, dict) and detail.get("@type") == ERROR_INFO_TYPE:
                meta = detail.get("metadata")
                if isinstance(meta, dict):
                    metadata.update(meta)
    elif isinstance(data, dict):
        metadata.update(data)
    return A2aError(error["code"], str(error.get("message") or "error"), metadata)


# --------------------------------------------------------------------------- HTTP+JSON bodies

GRPC_STATUS: dict[int, str] = {
    TASK_NOT_FOUND: "NOT_FOUND",
    METHOD_NOT_FOUND: "NOT_FOUND",
    TASK_NOT_CANCELABLE: "FAILED_PRECONDITION",
    PUSH_NOT_SUPPORTED: "FAILED_PRECONDITION",
    UNSUPPORTED_OPERATION: "FAILED_PRECONDITION",
    EXTENDED_CARD_NOT_CONFIGURED: "FAILED_PRECONDITION",
    EXTENSION_SUPPORT_REQUIRED: "FAILED_PRECONDITION",
    VERSION_NOT_SUPPORTED: "FAILED_PRECONDITION",
    CONTENT_TYPE_NOT_SUPPORTED: "INVALID_ARGUMENT",
    INVALID_PARAMS: "INVALID_ARGUMENT",
    INVALID_REQUEST: "INVALID_ARGUMENT",
    PARSE_ERROR: "INVALID_ARGUMENT",
    INVALID_AGENT_RESPONSE: "INTERNAL",
    INTERNAL_ERROR: "INTERNAL",
}
"""The `status` of a `google.rpc.Status` error body (spec section 5.4)."""

ERROR_TYPES: dict[int, str] = {
    TASK_NOT_FOUND: "TaskNotFoundError",
    TASK_NOT_CANCELABLE: "TaskNotCancelableError",
    PUSH_NOT_SUPPORTED: "PushNotificationNotSupportedError",
    UNSUPPORTED_OPERATION: "UnsupportedOperationError",
    CONTENT_TYPE_NOT_SUPPORTED: "ContentTypeNotSupportedError",
    INVALID_AGENT_RESPONSE: "InvalidAgentResponseError",
    EXTENDED_CARD_NOT_CONFIGURED: "ExtendedAgentCardNotConfiguredError",
    EXTENSION_SUPPORT_REQUIRED: "ExtensionSupportRequiredError",
    VERSION_NOT_SUPPORTED: "VersionNotSupportedError",
    INVALID_PARAMS: "InvalidParamsError",
    INVALID_REQUEST: "InvalidRequestError",
    METHOD_NOT_FOUND: "MethodNotFoundError",
    PARSE_ERROR: "JSONParseError",
    INTERNAL_ERROR: "InternalError",
}
"""The error class name a 0.3 REST error body carries in `type`."""


def error_body(exc: A2aError, legacy: bool = False) -> Json:
    """A `google.rpc.Status` error body (spec 11.6); 0.3 also gets `type` and `message`."""
    status = HTTP_STATUS.get(exc.code, 400)
    details = error_object(exc.code, exc.message, "1.0", exc.metadata, violations=exc.violations)[
        "data"
    ]
    body: Json = {
        "error": {
            "code": status,
            "status": GRPC_STATUS.get(exc.code, "UNKNOWN"),
            "message": exc.message,
            "details": details,
        }
    }
    if legacy:
        body["type"] = ERROR_TYPES.get(exc.code, "InternalError")
        body["message"] = exc.message
    return body


_REASON_CODES = {reason: code for code, reason in REASONS.items()}
_TYPE_CODES = {name: code for code, name in ERROR_TYPES.items()}
_GRPC_CODES = {
    "NOT_FOUND": TASK_NOT_FOUND,
    "FAILED_PRECONDITION": UNSUPPORTED_OPERATION,
    "INVALID_ARGUMENT": INVALID_PARAMS,
    "UNIMPLEMENTED": UNSUPPORTED_OPERATION,
}


def error_from_body(body: Any) -> A2aError | None:
    """An agent's REST error answer as an `A2aError`: a `google.rpc.Status` (the code from its
    ErrorInfo reason, else its status) or a 0.3 `{type, message}`; None if it is neither."""
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        code: int | None = None
        metadata: Json = {}
        details = error.get("details")
        for detail in details if isinstance(details, list) else []:
            if isinstance(detail, dict) and detail.get("@type") == ERROR_INFO_TYPE:
                code = _REASON_CODES.get(str(detail.get("reason")))
                if isinstance(detail.get("metadata"), dict):
                    metadata = dict(detail["metadata"])
                break
        if code is None:
            code = _GRPC_CODES.get(str(error.get("status")), INTERNAL_ERROR)
        return A2aError(code, error["message"], metadata)
    kind = body.get("type")
    if isinstance(kind, str) and kind in _TYPE_CODES:
        return A2aError(_TYPE_CODES[kind], str(body.get("message") or kind))
    return None
