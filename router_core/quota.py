"""Rate limits and quotas as the surfaces see them: a caller's `Quota` (put in the ASGI
`scope["state"]["quota"]` by the server's access guard, and in `QUOTA` for the request's
duration), asked before each billable call, and `LimitExceeded`, which each surface answers in
its own words (429 with `Retry-After` on HTTP, a JSON-RPC error with `RATE_LIMITED` elsewhere).

Decisions: the packages below `junction` may not import it, so the limiter reaches them as
plain data through these two seams; counting and policy live in `junction.limits`. A call is
admitted or refused before it starts; its tokens are charged when the upstream reports them
(`charge_usage`, which the backends' usage counting calls), so a token limit refuses the calls
after the one that went over it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

QuotaKind = Literal["models", "mcp_tools", "a2a_agents"]

RATE_LIMITED = -32029
"""The JSON-RPC error code of a refused call on `/mcp`, the A2A JSON-RPC binding and ACP (no
spec defines one; -32029 is free in MCP, A2A and ACP and reads as HTTP's 429)."""


class LimitExceeded(Exception):
    """A call over one of its caller's limits: which one, and when its window resets."""

    def __init__(self, limit: str, *, reset_at: float, principal: str | None = None) -> None:
        self.limit = limit
        self.reset_at = reset_at
        self.principal = principal
        super().__init__(f"rate limit exceeded: {limit}; retry after {self.retry_after} s")

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window resets (at least 1): the `Retry-After` value."""
        return max(1, math.ceil(self.reset_at - time.time()))

    def data(self) -> dict[str, Any]:
        """The error's `data` on JSON-RPC surfaces."""
        return {
            "limit": self.limit,
            "retryAfter": self.retry_after,
            "resetAt": datetime.fromtimestamp(self.reset_at, UTC).isoformat(timespec="seconds"),
        }


class Charge(Protocol):
    """Where an admitted call's tokens go once the upstream reports them."""

    reported: bool
    """Whether any tokens were charged (so an estimate is not added on top)."""

    def tokens(self, count: int) -> None: ...


class Quota(Protocol):
    """One caller's limits."""

    async def admit(self, kind: QuotaKind, name: str) -> Charge | None:
        """Count one call to `name` (a model, tool or agent) or raise `LimitExceeded`; the
        charge to report its tokens to (None: nothing to count them for)."""
        ...


QUOTA: ContextVar[Quota | None] = ContextVar("junction_quota", default=None)
"""The caller's quota while its request is served (None: not limited)."""

CHARGE: ContextVar[Charge | None] = ContextVar("junction_charge", default=None)
"""Where the tokens of the model call being served now go (set by `admit`)."""


def quota_of(state: Mapping[str, Any] | None) -> Quota | None:
    """The quota the access guard put in an ASGI `scope["state"]`, if any."""
    quota = state.get("quota") if isinstance(state, dict) else None
    return quota if quota is not None and hasattr(quota, "admit") else None


async def admit(quota: Quota | None, kind: QuotaKind, name: str) -> None:
    """Ask `quota` (if any) for one call; its charge becomes `CHARGE` for the rest of the
    task, so the backend that reports the call's usage charges the caller."""
    if quota is None:
        return
    charge = await quota.admit(kind, name)
    if charge is not None:
        CHARGE.set(charge)


def charge_usage(total_tokens: int) -> None:
    """Charge the tokens an upstream reported to the call being served (if it is limited)."""
    charge = CHARGE.get()
    if charge is not None and total_tokens > 0:
        charge.tokens(total_tokens)


def charge_estimate(tokens: int) -> None:
    """Charge an estimate when the upstream reported no usage for the call being served (a
    relayed stream whose client did not ask for usage): otherwise such streams would spend
    tokens no limit sees."""
    charge = CHARGE.get()
    if charge is not None and not charge.reported and tokens > 0:
        charge.tokens(tokens)


__all__ = [
    "CHARGE",
    "QUOTA",
    "RATE_LIMITED",
    "Charge",
    "LimitExceeded",
    "Quota",
    "QuotaKind",
    "admit",
    "charge_estimate",
    "charge_usage",
    "quota_of",
]
