"""Exponential backoff between attempts: the one delay schedule every reconnect and retry loop in
Junction uses (SSE resumption, MCP upstream reconnects, webhook retries, the bridge).

A schedule, not a retry decorator: each loop decides itself what counts as a failure, what ends
it and what it waits on (a sleep, or an event that may cut the wait short), and only asks how
long to wait next. Retry libraries (tenacity, stamina) wrap a call; these loops are long-lived
supervisors with their own state, which fit a schedule better.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays `initial`, `2 * initial`, `4 * initial`, ... up to `cap`; after `attempts` delays
    (None: never) the schedule is spent and `next_delay()` answers None."""

    initial: float
    cap: float
    attempts: int | None = None
    used: int = field(default=0, init=False)
    """How many delays have been handed out since the last `reset()`."""

    def next_delay(self) -> float | None:
        """The next delay, or None when the attempts are spent."""
        if self.attempts is not None and self.used >= self.attempts:
            return None
        delay = min(self.initial * 2.0**self.used, self.cap)
        self.used += 1
        return delay

    def reset(self) -> None:
        """Start again from `initial` (after a success)."""
        self.used = 0

    async def sleep(self) -> bool:
        """Sleep the next delay; False (at once) when the attempts are spent."""
        delay = self.next_delay()
        if delay is None:
            return False
        await asyncio.sleep(delay)
        return True


__all__ = ["Backoff"]
