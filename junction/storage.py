"""The stores for the configured `store.url`: SQLite (the embedded default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from junction.config import JunctionConfig

if TYPE_CHECKING:
    from a2a import TaskStore
    from acp.store import SessionStore


def task_store(config: JunctionConfig) -> TaskStore:
    """The hub's task store (opened by `Hub.start`)."""
    store = config.store
    if store.engine == "postgresql":
        from a2a.pgstore import PgTaskStore

        return PgTaskStore(
            store.url.replace("postgres://", "postgresql://", 1),
            encryption_key=store.encryption_key,
            pool_size=store.pool_size,
            connect_timeout=store.connect_timeout,
        )
    from a2a import SqliteTaskStore

    return SqliteTaskStore(store.sqlite_path, encryption_key=store.encryption_key)


def session_store(config: JunctionConfig, realm: str = "") -> SessionStore:
    """ACP sessions; `realm` keeps another kind of session apart (SQLite: a file beside the
    main one, named after it; PostgreSQL: a column)."""
    store = config.store
    if store.engine == "postgresql":
        from acp.pgstore import PgSessionStore

        return PgSessionStore(
            store.url.replace("postgres://", "postgresql://", 1),
            realm=realm,
            pool_size=store.pool_size,
            connect_timeout=store.connect_timeout,
        )
    from acp.store import SqliteSessionStore

    path = store.sqlite_path
    if realm and path != ":memory:":
        base = Path(path)
        path = str(base.with_name(f"{base.stem}-{realm}{base.suffix or '.db'}"))
    return SqliteSessionStore(path)


async def migrate(config: JunctionConfig) -> tuple[str, list[str]]:
    """Bring the configured store's schema to the newest version (what `junction migrate`
    runs; serve and stdio do the same when they open it). Returns where, and the revisions
    applied."""
    from stores.urls import parse_store_url

    url = parse_store_url(config.store.url)
    if url.engine == "postgresql":
        from stores.postgres import PgDatabase

        db = PgDatabase(url.dsn, pool_size=1, connect_timeout=config.store.connect_timeout)
        await db.open_pool()
        try:
            return url.redacted, await db.ensure_schema()
        finally:
            await db.close()
    import asyncio
    import sqlite3

    from stores.schema import migrate_sqlite

    def run() -> list[str]:
        Path(url.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(Path(url.path).expanduser()), isolation_level=None)
        try:
            return migrate_sqlite(db, url.path)
        finally:
            db.close()

    return url.redacted, await asyncio.to_thread(run)
