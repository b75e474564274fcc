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
import os
import threading
import time

from starlette.types import Scope

from junction.logs import direct_handler, redact_repeated

ACCESS = logging.getLogger("junction.access")

_PROCESS = {"process": os.getpid(), "processName": "MainProcess"}


def _record(message: str) -> logging.LogRecord:
    """The INFO record `ACCESS.info(message)` would make, at a fifth of the cost.

    `LogRecord.__init__` looks up the caller's file name, the thread, the process and the
    asyncio task for every record (~10 µs of a request's budget); an access record always
    comes from here, on the event loop's thread, so those are filled in once per process and
    only the times are taken per record. Handlers, filters and formatters see an ordinary
    record (`logging.setLogRecordFactory` is bypassed: no record factory here relies on it).
    """
    record = logging.LogRecord.__new__(logging.LogRecord)
    fields = record.__dict__
    fields.update(_BLANK.__dict__)
    created = time.time()
    fields["created"] = created
    fields["msecs"] = int((created - int(created)) * 1000) + 0.0
    fields["relativeCreated"] = (created - _STARTED) * 1000
    fields["msg"] = message
    if _PROCESS["process"] != os.getpid():  # forked (a worker): name the right process
        _PROCESS["process"] = os.getpid()
    fields["process"] = _PROCESS["process"]
    thread = threading.current_thread()
    fields["thread"], fields["threadName"] = thread.ident, thread.name
    return record


_BLANK = ACCESS.makeRecord(ACCESS.name, logging.INFO, __file__, 0, "", (), None)
"""The fields every access record shares (logger, level, source, process name)."""
_STARTED = _BLANK.created - _BLANK.relativeCreated / 1000
"""When `logging` was imported, as `relativeCreated` counts from it."""


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
    path = redact_repeated(scope["path"])
    milliseconds = round(seconds * 1000, 3)
    message = f"{method} {path} {status} {milliseconds:.1f}ms"
    if principal:
        message += f" principal={principal}"
    if trace_id:
        message += f" trace={trace_id}"
    fields = {
        "method": method,
        "path": path,
        "surface": surface,
        "status": status,
        "duration_ms": milliseconds,
        "principal": principal,
        "trace_id": trace_id,
    }
    # Redacted here, and only the path: the other fields are a bounded method and surface, a
    # key's configured name and a hex trace id, so the handler's filter (a regex pass over
    # every string field) is skipped.
    handler = direct_handler(ACCESS)
    if handler is not None:  # only Junction's own stderr handler would see the record
        handler.write_direct(ACCESS.name, message, fields)
        return
    record = _record(message)
    record.__dict__.update(fields, _junction_redacted=True)
    ACCESS.handle(record)


__all__ = ["ACCESS", "log_access"]
