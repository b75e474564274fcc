"""Who this process is among the replicas (and workers) of one Junction."""

from __future__ import annotations

import ipaddress
import os
import re
import socket

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


__all__ = [
    "REPLICA_HEADER",
    "WORKER_ENV",
    "advertise_url",
    "owner_url",
    "replica_id",
    "with_port",
]
