"""`junction migrate`: bring the configured store's schema to the newest version.

Serve and stdio modes do the same when they open the store; the command is for deployments
that migrate as a step of their own (before rolling replicas onto a new version)."""

from __future__ import annotations

import asyncio
import sys

from junction.config import JunctionConfig


def migrate_command(config: JunctionConfig) -> int:
    """0 when the schema is current (or was made so); 1 with one line when the store cannot
    be reached or a migration fails."""
    from junction.storage import migrate
    from stores.schema import HEAD

    try:
        where, applied = asyncio.run(migrate(config))
    except Exception as exc:
        print(f"junction: migrate failed: {exc}", file=sys.stderr)
        return 1
    if applied:
        print(f"{where}: migrated to schema {HEAD} (applied {', '.join(applied)})")
    else:
        print(f"{where}: schema {HEAD} is current; nothing to do")
    return 0
