"""The one exception the gateway raises: an MCP error code plus a message naming the server."""

from __future__ import annotations

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
