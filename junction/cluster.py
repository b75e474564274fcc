"""Who this process is among the replicas (and workers) of one Junction."""

from __future__ import annotations

import os
import socket

REPLICA_HEADER = "x-junction-replica"
"""The response header naming the replica that answered (set when `cluster.redis_url` is)."""


def replica_id() -> str:
    """`JUNCTION_REPLICA_ID`, else host and process id: unique among live replicas, and a new
    one after a restart (a restarted replica must not renew the leases of its past life)."""
    return os.environ.get("JUNCTION_REPLICA_ID") or f"{socket.gethostname()}:{os.getpid()}"


__all__ = ["REPLICA_HEADER", "replica_id"]
