"""Who this process is among the replicas (and workers) of one Junction, and its link to the
Redis they share."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("junction.cluster")

REPLICA_HEADER = "x-junction-replica"
"""The response header naming the replica that answered (set when `cluster.redis_url` is)."""


def replica_id() -> str:
    """`JUNCTION_REPLICA_ID` (with `/wN` for worker N of `server.workers`), else host and
    process id: unique among live replicas and workers, since leases are held by name."""
    named = os.environ.get("JUNCTION_REPLICA_ID")
    if not named:
        return f"{socket.gethostname()}:{os.getpid()}"
    worker = os.environ.get(WORKER_ENV)
    return f"{named}/w{worker}" if worker else named


WORKER_ENV = "JUNCTION_WORKER"
"""Set in each worker process of `server.workers` to its number (1..N)."""


_OWNER_URL = re.compile(
    r"(https?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})):(\d{1,5})/?"
)
_EVERY_ADDRESS = ("", "0.0.0.0", "::", "[::]")


def owner_url(url: str) -> str | None:
    """`url` as `scheme://host:port` when it has exactly that form (http or https, a host name
    or an IP literal, a port, nothing else: no credentials, path or query), else None. The only
    form a replica records and the only one another replica forwards to."""
    found = _OWNER_URL.fullmatch(url)
    if found is None or not 0 < int(found.group(3)) < 65536:
        return None
    host = found.group(2)
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    return f"{found.group(1)}://{host.lower()}:{int(found.group(3))}"


def advertise_url(configured: str | None, host: str, port: int) -> str:
    """Where the other replicas reach this one: `cluster.advertise_url`, else `server.host`
    and the `port` served on. Raises ValueError (one line saying what to set) when neither
    names a reachable address."""
    if configured:
        return configured
    if host in _EVERY_ADDRESS:
        raise ValueError(
            f"server.host {host or '(every address)'} is not an address other replicas can "
            "reach: set cluster.advertise_url (http://this-replica:port)"
        )
    if port == 0:
        raise ValueError("the port is chosen at start: set cluster.advertise_url")
    literal = f"[{host}]" if ":" in host else host
    url = owner_url(f"http://{literal}:{port}")
    if url is None:
        raise ValueError(f"server.host {host!r} cannot be advertised: set cluster.advertise_url")
    return url


def with_port(url: str, port: int) -> str:
    """An owner URL (`owner_url`'s form) with another port: a worker's own."""
    return f"{url.rpartition(':')[0]}:{port}"


class RedisDown(ConnectionError):
    """Redis did not answer (or is resting after it did not)."""


class RedisLink:
    """One Redis client that fails fast, for work that must not wait on a dead Redis (rate
    limits, session owners): a short timeout, no retries, and after a failure no call for
    `rest` seconds (each raises `RedisDown` at once); going and coming back are logged once
    each, naming `what` uses it, and `on_back` runs when it answers again."""

    def __init__(
        self,
        url: str,
        *,
        what: str,
        timeout: float = 0.5,
        rest: float = 1.0,
        on_back: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.what = what
        self.timeout = timeout
        self.rest = rest
        self.on_back = on_back
        self._client: Redis | None = None
        self._down_since: float | None = None
        self._retry_at = 0.0

    @property
    def up(self) -> bool:
        return self._down_since is None

    @property
    def client(self) -> Redis:
        if self._client is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
            )
        return self._client

    async def call(self, run: Callable[[Redis], Awaitable[Any]]) -> Any:
        """`run(client)`, or `RedisDown`."""
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        now = time.monotonic()
        if self._down_since is not None and now < self._retry_at:
            raise RedisDown(f"Redis is down ({self.what})")
        try:
            result = await run(self.client)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            self._retry_at = time.monotonic() + self.rest
            if self._down_since is None:
                self._down_since = now
                log.warning("%s: Redis is unreachable (%s)", self.what, exc)
            raise RedisDown(str(exc)) from None
        if self._down_since is not None:
            log.warning("%s: Redis is back after %.1f s", self.what, now - self._down_since)
            self._down_since = None
            if self.on_back is not None:
                self.on_back()
        return result

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


__all__ = [
    "REPLICA_HEADER",
    "WORKER_ENV",
    "RedisDown",
    "RedisLink",
    "advertise_url",
    "owner_url",
    "replica_id",
    "with_port",
]
