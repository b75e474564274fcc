"""The audit trail's one record shape, for every package: router_core, mcp_gateway, a2a and
acp may not import `junction`, so the record is written here and `junction.audit` re-exports it
(and sends the `junction.audit` logger to `logging.audit_file` when set).

Each record has `event`, `decision` (`allow`, `deny` or `change`), `principal`, `surface`,
`reason` and `trace_id` (the W3C trace of the request, when it came with one), then what the
decision was about: `model`, `tool`, `agent`, `session`, `limit`... Fields are plain values
(names, globs' outcomes, reasons), never a key or a token. The caller and its surface come
from `acting_as`, which the server's access guard sets for each request it lets in, unless the
call names them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from router_core import tracing

AUDIT = logging.getLogger("junction.audit")

_WHO: ContextVar[tuple[str | None, str | None]] = ContextVar(
    "junction_audit_who", default=(None, None)
)
"""The principal and surface of the request being served (set by the access guard)."""


def enabled() -> bool:
    """Whether records are written at all: check it before building an allowed call's record."""
    return AUDIT.isEnabledFor(logging.INFO)


@contextmanager
def acting_as(principal: str | None, surface: str | None) -> Iterator[None]:
    """Records written inside name `principal` on `surface` unless they say otherwise."""
    token = _WHO.set((principal, surface))
    try:
        yield
    finally:
        _WHO.reset(token)


def audit(event: str, decision: str, **fields: Any) -> None:
    """Write one audit record (nothing, at almost no cost, when the logger is off).

    `fields` are plain values: names, surfaces, reasons; never a key or a token."""
    if not AUDIT.isEnabledFor(logging.INFO):
        return
    principal, surface = _WHO.get()
    if fields.get("principal") is None and principal is not None:
        fields["principal"] = principal
    if fields.get("surface") is None and surface is not None:
        fields["surface"] = surface
    if "trace_id" not in fields:
        context = tracing.current()
        fields["trace_id"] = context.trace_id if context is not None else None
    shown = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
    AUDIT.info(
        "%s %s %s", event, decision, shown, extra={"event": event, "decision": decision, **fields}
    )


__all__ = ["AUDIT", "acting_as", "audit", "enabled"]
