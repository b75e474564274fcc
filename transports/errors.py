"""JSON-RPC 2.0 error codes and the exception handlers raise to answer with one."""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_CANCELLED = -32800
"""LSP/ACP convention for a request that was cancelled with `$/cancel_request`."""


class RpcError(Exception):
    """A JSON-RPC error: raised by a handler to answer with it, raised by `request()` on an error reply."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


class PeerClosedError(ConnectionError):
    """The connection ended before the awaited response arrived."""
