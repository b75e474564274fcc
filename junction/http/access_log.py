"""Access logs: one record per HTTP request, response stream or WebSocket connection.

Records go to the `junction.access` logger at INFO, through the program's one logging setup
(`junction.logs`: stderr, plain or JSON, secrets redacted), written when the exchange ends (a
stream when its last byte is sent). Turn them off with `logging: {access_log: false}` (or any
level above INFO), or `logging.getLogger("junction.access").setLevel(...)` in an embedding
application.

A record names the caller by its API key's name, never the key, and logs the path without its
query string (where tokens sometimes travel).
"""

from __future__ import annotations

import logging

from starlette.types import Scope

from junction.logs import redact

ACCESS = logging.getLogger("junction.access")


def log_access(
    scope: Scope, *, surface: str, status: int, seconds: float, trace_id: str | None
) -> None:
    """Write the access record of the exchange in this ASGI `scope` (nothing, at almost no
    cost, when INFO is off for `junction.access`).

    `status` is the response status, 101 for an accepted WebSocket, 0 when the client went
    away before any response. The caller is the API key's name that `AccessGuard` put in
    `scope["state"]["principal"]`."""
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    state = scope.get("state")
    principal: str | None = state.get("principal") if state else None
    method: str = scope.get("method", "GET")
    path = redact(scope["path"])
    milliseconds = round(seconds * 1000, 3)
    message = f"{method} {path} {status} {milliseconds:.1f}ms"
    if principal:
        message += f" principal={principal}"
    if trace_id:
        message += f" trace={trace_id}"
    # makeRecord + handle: what `Logger.info` does, minus the caller lookup (a stack walk that
    # would only ever name this line).
    record = ACCESS.makeRecord(
        ACCESS.name,
        logging.INFO,
        __file__,
        0,
        message,
        (),
        None,
        extra={
            "method": method,
            "path": path,
            "surface": surface,
            "status": status,
            "duration_ms": milliseconds,
            "principal": principal,
            "trace_id": trace_id,
        },
    )
    # Redacted here, and only the path: the other fields are a bounded method and surface, a
    # key's configured name and a hex trace id, so the handler's filter (a regex pass over
    # every string field, most of this record's cost) is skipped.
    record._junction_redacted = True
    ACCESS.handle(record)


__all__ = ["ACCESS", "log_access"]
