"""The audit trail: one structured record per decision that matters, on the `junction.audit`
logger, so an operator can answer "who did what, where, allowed or refused, and why".

Records (see docs/identity.md): the access guard's refusals (no or a bad key or token, a
missing scope, a foreign origin or host), the first use of each OAuth token on each surface (its
subject, client and scopes), a reload that changes identity settings (which keys, never their
values), and the decisions made deeper: a model, MCP tool or A2A agent outside the caller's
globs, a rate limit, an ACP tool call allowed or denied. The record itself is written by
`router_core.audit` (the packages below `junction` write the same shape); each has `event`,
`decision` (`allow`, `deny` or `change`), `principal`, `surface`, `reason` and the request's W3C
`trace_id` when it came with one, as fields (JSON logs) and in the message (plain logs).

With `logging.audit_file` set the records go to that file alone, as JSON lines, whatever the log
level; otherwise wherever the other logs go. Secrets never reach it: records carry names, and
the handlers redact like every other log handler (`junction.logs.RedactingFilter`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from junction.logs import JsonFormatter, RedactingFilter
from router_core.audit import AUDIT, acting_as, audit, enabled

_lock = threading.Lock()
_sink: tuple[str, logging.Handler] | None = None


def configure_audit_file(path: str | None) -> None:
    """Send the audit records to `path` (JSON lines, appended) and nowhere else, or with None
    back to the ordinary logs. Calling it again with the same path changes nothing."""
    global _sink  # noqa: PLW0603 (one sink per process, like the root logger's handler)
    with _lock:
        if (_sink[0] if _sink else None) == path:
            return
        if _sink is not None:
            AUDIT.removeHandler(_sink[1])
            _sink[1].close()
            _sink = None
        if path is None:
            AUDIT.propagate = True
            AUDIT.setLevel(logging.NOTSET)
            return
        file = Path(path).expanduser()
        file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
        handler.addFilter(RedactingFilter())
        handler.setFormatter(JsonFormatter())
        AUDIT.addHandler(handler)
        AUDIT.propagate = False
        AUDIT.setLevel(logging.INFO)  # an audit file is written whatever logging.level says
        _sink = (path, handler)


__all__ = ["AUDIT", "acting_as", "audit", "configure_audit_file", "enabled"]
