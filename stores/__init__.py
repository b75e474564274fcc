"""Engine-neutral store plumbing shared by the A2A task store and the ACP session store.

Which engine a `store.url` names (`urls`), the versioned schema and how it is brought up to
date (`schema`, with alembic migrations under `migrations/`), encryption of secrets at rest
(`sealing`) and the PostgreSQL connection pool with group commit (`postgres`). Imports nothing
of ours, so `a2a` and `acp` can both use it; heavy modules (asyncpg, alembic, cryptography)
load only when the engine or feature that needs them is used.
"""

from __future__ import annotations

from stores.urls import StoreUrl, parse_store_url

__all__ = ["StoreUrl", "parse_store_url"]
