"""The stores' schema version, and bringing a database up to it with alembic.

The migrations (`stores/migrations/versions/`, one alembic revision each) are the only place
the schema is defined, for both engines. Opening a store reads the version the database is at
(one query) and, only when it is behind `HEAD`, imports alembic (~0.7 s, so never on a warm
start, and never before an ACP agent has answered `initialize`), renders the missing steps as
SQL for the engine (alembic's offline mode: no SQLAlchemy driver needed) and runs them in one
transaction under a lock, so replicas or editor processes starting together migrate once.
`junction migrate` does the same on demand.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEAD = "0002"
"""The newest revision under migrations/versions (a test keeps the two in step)."""
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
PG_LOCK_KEY = 0x4A554E4354  # "JUNCT": the advisory lock held while migrating
VERSION_TABLE = "alembic_version"


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """What alembic sees as head (imports alembic: for tests and `junction migrate`)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return str(head)


@functools.lru_cache(maxsize=8)
def render(dialect: str, start: str | None) -> str:
    """The SQL that takes a `dialect` database from revision `start` (None: empty) to HEAD,
    including the version table's bookkeeping; no BEGIN/COMMIT (the caller holds one)."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    logging.getLogger("alembic").setLevel(logging.WARNING)  # its per-step chatter; ours is one line
    config = _config()
    script = ScriptDirectory.from_config(config)
    out = io.StringIO()

    def upgrade(rev: Any, context: Any) -> Any:
        return script._upgrade_revs(HEAD, rev)

    with EnvironmentContext(
        config,
        script,
        fn=upgrade,
        as_sql=True,
        starting_rev=start,
        destination_rev=HEAD,
    ) as env:
        env.configure(dialect_name=dialect, output_buffer=out, transactional_ddl=False)
        env.run_migrations()
    return out.getvalue()


# -- SQLite


def sqlite_revision(db: sqlite3.Connection) -> str | None:
    try:
        row = db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    except sqlite3.OperationalError:
        return None  # no version table: an empty database, or one from before migrations
    return None if row is None else str(row[0])


def _adopt_legacy_sqlite(db: sqlite3.Connection) -> None:
    """A database from before migrations whose session table predates owners: the baseline
    (all IF NOT EXISTS) keeps the table, so give it the column the baseline declares."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(acp_sessions)")}
    if columns and "owner" not in columns:
        db.execute("ALTER TABLE acp_sessions ADD COLUMN owner TEXT")


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """Other processes on this file (every editor's stdio agent) wait while one migrates."""
    if path == ":memory:":
        yield
        return
    lock = Path(path).expanduser()
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{lock}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate_sqlite(db: sqlite3.Connection, path: str) -> list[str]:
    """Bring the database on `db` (an autocommit connection to `path`) to HEAD; the
    revisions applied ([] when it was current: one query, no alembic)."""
    if sqlite_revision(db) == HEAD:
        return []
    with _file_lock(path):
        start = sqlite_revision(db)  # another process may have migrated while we waited
        if start == HEAD:
            return []
        if start is None:
            _adopt_legacy_sqlite(db)
        sql = render("sqlite", start)
        db.executescript(f"BEGIN IMMEDIATE;\n{sql}\nCOMMIT;")
    applied = _steps(start)
    log.info("store %s migrated to schema %s (%s)", path, HEAD, ", ".join(applied))
    return applied


# -- PostgreSQL


async def postgres_revision(conn: Any) -> str | None:
    """`conn` is an asyncpg connection."""
    exists = await conn.fetchval("SELECT to_regclass($1)", VERSION_TABLE)
    if exists is None:
        return None
    value = await conn.fetchval(f"SELECT version_num FROM {VERSION_TABLE}")
    return None if value is None else str(value)


async def migrate_postgres(conn: Any, where: str = "") -> list[str]:
    """Bring the database to HEAD under an advisory lock (replicas starting together migrate
    once; the others wait, then find it current)."""
    if await postgres_revision(conn) == HEAD:
        return []
    # A session-level lock, and the version read again in a transaction of its own once it
    # is held: a transaction already open while another process migrated would not see the
    # tables it made (the catalog cache is refreshed when a transaction starts).
    await conn.execute(f"SELECT pg_advisory_lock({PG_LOCK_KEY})")
    try:
        start = await postgres_revision(conn)
        if start == HEAD:
            return []
        async with conn.transaction():
            await conn.execute(render("postgresql", start))
    finally:
        await conn.execute(f"SELECT pg_advisory_unlock({PG_LOCK_KEY})")
    applied = _steps(start)
    log.info("store %s migrated to schema %s (%s)", where, HEAD, ", ".join(applied))
    return applied


def _steps(start: str | None) -> list[str]:
    """The revisions after `start` up to HEAD, oldest first (names are zero-padded numbers)."""
    first = 0 if start is None else int(start)
    return [f"{n:04d}" for n in range(first + 1, int(HEAD) + 1)]
