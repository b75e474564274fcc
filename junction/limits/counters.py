"""Fixed-window counters, in memory (one process) or in Redis (every replica counts together).

A window is the clock's minute or the UTC day: its counter's key ends with the window's number
(`floor(now / seconds)`), so a new window starts at zero and the old key expires. Fixed windows
let a caller spend up to twice a limit across a boundary; they cost one Redis round trip per
call, where a sliding log would cost a sorted-set entry per call.

`hit` is atomic: one Lua script (one round trip, run whole by Redis) refuses when any token
counter has reached its limit or any request counter would pass its own, and only then counts
the call on every request counter. Tokens arrive later and are added in batches, off the
request's path (`add_tokens`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from junction.cluster import RedisDown, RedisLink

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("junction.limits")

_HIT = """
local n = tonumber(ARGV[1])
local total = #KEYS
for i = n + 1, total do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[1 + i]) then return i end
end
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[i]) or '0') + 1 > tonumber(ARGV[1 + i]) then return i end
end
for i = 1, n do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1 + total + i]) end
end
return 0
"""
"""KEYS: the request counters, then the token counters; ARGV: how many request counters, each
key's limit, each request counter's expiry. Returns 0 (counted) or the 1-based index of the
counter that refuses."""


@dataclass(frozen=True, slots=True)
class Window:
    """One counter in its current window: `key` already names the window."""

    key: str
    limit: int
    seconds: int
    ends_at: float
    """When the window ends (epoch seconds): when a refused caller may call again."""


class StoreDown(Exception):
    """The counters' store (Redis) cannot be reached now."""


class Counters(Protocol):
    async def hit(self, requests: Sequence[Window], tokens: Sequence[Window]) -> int | None:
        """Count a call on `requests`, or return the index (in requests + tokens) of the window
        that refuses it, counting none."""
        ...

    def add_tokens(self, windows: Sequence[Window], count: int) -> None:
        """Add tokens to these windows (now or soon; never waits)."""
        ...

    async def read(self, keys: Sequence[str]) -> list[int]: ...

    async def aclose(self) -> None: ...


class MemoryCounters:
    """One process's counters: a dict, swept of expired windows as it grows."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._sweep_at = 4096

    def _get(self, key: str, now: float) -> int:
        found = self._counts.get(key)
        return found[0] if found is not None and found[1] > now else 0

    async def hit(self, requests: Sequence[Window], tokens: Sequence[Window]) -> int | None:
        now = time.time()
        for index, window in enumerate(tokens, start=len(requests)):
            if self._get(window.key, now) >= window.limit:
                return index
        for index, window in enumerate(requests):
            if self._get(window.key, now) + 1 > window.limit:
                return index
        for window in requests:
            self._add(window, 1, now)
        return None

    def add_tokens(self, windows: Sequence[Window], count: int) -> None:
        now = time.time()
        for window in windows:
            self._add(window, count, now)

    def _add(self, window: Window, count: int, now: float) -> None:
        self._counts[window.key] = (self._get(window.key, now) + count, window.ends_at)
        if len(self._counts) > self._sweep_at:
            self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            self._sweep_at = max(4096, 2 * len(self._counts))

    async def read(self, keys: Sequence[str]) -> list[int]:
        now = time.time()
        return [self._get(key, now) for key in keys]

    async def aclose(self) -> None:
        self._counts.clear()


class RedisCounters:
    """Counters in Redis, shared by every replica that names the same `cluster.redis_url`.

    Through a `RedisLink` (the client made on first use, in the serving event loop): short
    timeouts and no retries, so a dead Redis costs a call at most one connect timeout, once a
    second; going down and coming back are logged once each."""

    def __init__(self, url: str, *, timeout: float = 0.5) -> None:
        self.url = url
        self.timeout = timeout
        self._link = RedisLink(url, what="rate-limit counters", timeout=timeout)
        self._script: Any = None
        self._pending: dict[str, tuple[int, int]] = {}
        self._flushing: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self._link.up

    async def _call(self, run: Callable[[Redis], Awaitable[Any]]) -> Any:
        if self._script is None:
            self._script = self._link.client.register_script(_HIT)
        try:
            return await self._link.call(run)
        except RedisDown as exc:
            raise StoreDown(str(exc)) from None

    async def hit(self, requests: Sequence[Window], tokens: Sequence[Window]) -> int | None:
        windows = [*requests, *tokens]
        args: list[Any] = [len(requests), *(w.limit for w in windows)]
        args.extend(w.seconds + 60 for w in requests)

        async def run(client: Redis) -> Any:
            return await self._script(keys=[w.key for w in windows], args=args, client=client)

        refused = int(await self._call(run))
        return refused - 1 if refused else None

    def add_tokens(self, windows: Sequence[Window], count: int) -> None:
        for window in windows:
            added, _ = self._pending.get(window.key, (0, 0))
            self._pending[window.key] = (added + count, window.seconds + 60)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        """Send every pending token count in one pipeline; counts that arrive meanwhile go in
        the next one. Lost (logged) when Redis is down: the limits are what it is for."""
        while self._pending:
            batch, self._pending = self._pending, {}

            async def run(client: Redis, batch: dict[str, tuple[int, int]] = batch) -> Any:
                pipe = client.pipeline(transaction=False)
                for key, (count, expiry) in batch.items():
                    pipe.incrby(key, count)
                    pipe.expire(key, expiry)
                return await pipe.execute()

            with contextlib.suppress(StoreDown):
                await self._call(run)

    async def read(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []

        async def run(client: Redis) -> Any:
            return await client.mget(list(keys))

        return [int(value or 0) for value in await self._call(run)]

    async def aclose(self) -> None:
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flushing, self.timeout * 2)
        await self._link.aclose()


__all__ = ["Counters", "MemoryCounters", "RedisCounters", "StoreDown", "Window"]
