"""The one exception the gateway raises: an MCP error code plus a message naming the server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

RESOURCE_NOT_FOUND = -32002
"""The spec's code for a resource URI nobody serves."""


class GatewayError(Exception):
    """A failure to report to the MCP client as a JSON-RPC error (code, message, data)."""

    def __init__(
        self, code: int, message: str, *, data: Any = None, server: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.server = server


ClientRequestFn = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers an upstream's server-to-client request for one call: (method, params) -> result.

Methods: `elicitation/create` (form or URL mode), `sampling/createMessage`, `roots/list`.
Raise `GatewayError(code, message)` to send that JSON-RPC error back to the upstream. Kept
here, not in `relay`, so that importing the package stays free of the SDK.
"""
