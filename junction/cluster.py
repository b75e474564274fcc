"""Who this process is among the replicas (and workers) of one Junction."""

from __future__ import annotations

import os
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


__all__ = ["REPLICA_HEADER", "WORKER_ENV", "replica_id"]
