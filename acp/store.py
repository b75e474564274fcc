"""Where sessions persist: a small store interface, an SQLite implementation and an in-memory one.

A session is a record (cwd, roots, title, mode, config values, remembered permission answers,
timestamps) plus an append-only list of history entries (JSON objects, see `acp.history`).
SQLite work runs on one dedicated thread: calls are serialised in submission order, so a turn
can queue writes without waiting for them (the first token is not held up by a commit) and
still be sure they land in order. The database is opened, and its schema created, on the first
call, never before the agent has answered `initialize`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from stores.schema import migrate_sqlite
from stores.sqlite import connect as sqlite_connect

Entry = dict[str, Any]
T = TypeVar("T")

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another process's lock on the file before SQLITE_BUSY."""


def now_iso() -> str:
    """An ISO 8601 UTC timestamp with milliseconds (what `updatedAt` carries)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """Everything about a session except its history."""

    session_id: str
    cwd: str
    additional_directories: tuple[str, ...] = ()
    title: str | None = None
    mode: str = "ask"
    config: dict[str, str] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)
    """Remembered answers: tool name -> "allow" | "reject"."""
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)
    owner: str | None = None
    """Who may list, load and resume it (the API key name of a remote connection; None for
    the local user of `--mode stdio` and of a server without keys)."""

    def touched(self, **changes: Any) -> SessionRecord:
        return replace(self, updated_at=now_iso(), **changes)


class InvalidCursorError(ValueError):
    """A `session/list` cursor that this store did not hand out."""


class SessionStore(Protocol):
    """Persistence for ACP sessions."""

    async def save(self, record: SessionRecord) -> None:
        """Create or replace the record."""
        ...

    async def get(self, session_id: str) -> SessionRecord | None: ...

    async def append(self, session_id: str, entries: Sequence[Entry]) -> None:
        """Add history entries after the existing ones."""
        ...

    async def history(self, session_id: str) -> list[Entry]: ...

    async def save_with_entries(self, record: SessionRecord, entries: Sequence[Entry]) -> None:
        """`append` then `save` for the record's session, as one write where the engine can
        (what the end of a turn stores: its answer and the touched record)."""
        ...

    async def delete(self, session_id: str) -> None:
        """Remove the record and its history (nothing happens for an unknown id)."""
        ...

    async def list(
        self, *, cwd: str | None, cursor: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        """`owner`'s sessions, most recently updated first; returns a page and the next cursor
        (None at the end)."""
        ...

    async def aclose(self) -> None: ...


def encode_cursor(record: SessionRecord) -> str:
    raw = json.dumps([record.updated_at, record.session_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}") from None
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}")
    return value[0], value[1]


def _page(
    records: list[SessionRecord], cwd: str | None, cursor: str | None, limit: int
) -> tuple[list[SessionRecord], str | None]:
    ordered = sorted(records, key=lambda r: (r.updated_at, r.session_id), reverse=True)
    if cwd is not None:
        ordered = [r for r in ordered if r.cwd == cwd]
    if cursor is not None:
        after = decode_cursor(cursor)
        ordered = [r for r in ordered if (r.updated_at, r.session_id) < after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, encode_cursor(page[-1]) if more and page else None


class MemorySessionStore:
    """Sessions in a dict: for tests and for `store: memory` setups; gone at exit."""

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}
        self._history: dict[str, list[Entry]] = {}

    async def save(self, record: SessionRecord) -> None:
        self._records[record.session_id] = record

    async def get(self, session_id: str) -> SessionRecord | None:
        return self._records.get(session_id)

    async def append(self, session_id: str, entries: Sequence[Entry]) -> None:
        # A JSON round trip, so what is read back is what SQLite would give.
        self._history.setdefault(session_id, []).extend(json.loads(json.dumps(list(entries))))

    async def history(self, session_id: str) -> list[Entry]:
        return list(self._history.get(session_id, []))

    async def save_with_entries(self, record: SessionRecord, entries: Sequence[Entry]) -> None:
        await self.append(record.session_id, entries)
        await self.save(record)

    async def delete(self, session_id: str) -> None:
        self._records.pop(session_id, None)
        self._history.pop(session_id, None)

    async def list(
        self, *, cwd: str | None, cursor: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        mine = [r for r in self._records.values() if r.owner == owner]
        return _page(mine, cwd, cursor, limit)

    async def aclose(self) -> None:
        return None


class SqliteSessionStore:
    """Sessions in an SQLite file (WAL), surviving restarts; one worker thread owns the connection."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="acp-store")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # Runs on the worker thread.
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite_connect(
                str(Path(self.path).expanduser()) if self.path != ":memory:" else self.path,
                busy_timeout_ms=BUSY_TIMEOUT_MS,
            )
            migrate_sqlite(conn, self.path)
            self._conn = conn
        return self._conn

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue `work` on the store thread now (order preserved) and return its future."""
        if self._closed:
            raise RuntimeError("the session store is closed")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, lambda: work(self._db()))

    async def save(self, record: SessionRecord) -> None:
        row = session_row(record)

        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO acp_sessions (session_id, cwd, additional_directories,"
                " title, mode, config, permissions, created_at, updated_at, owner)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await self._run(work)

    async def get(self, session_id: str) -> SessionRecord | None:
        def work(db: sqlite3.Connection) -> SessionRecord | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM acp_sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            return None if row is None else record_of(row)

        return await self._run(work)

    async def append(self, session_id: str, entries: Sequence[Entry]) -> None:
        encoded = [json.dumps(entry, ensure_ascii=False) for entry in entries]

        def work(db: sqlite3.Connection) -> None:
            # Other processes append to this file too (every stdio agent of a user shares it):
            # the next seq is read under the write lock, so two appends never claim the same one.
            def insert() -> None:
                (start,) = db.execute(
                    "SELECT COALESCE(MAX(seq), -1) + 1 FROM acp_history WHERE session_id = ?",
                    (session_id,),
                ).fetchone()
                db.executemany(
                    "INSERT INTO acp_history VALUES (?, ?, ?)",
                    [(session_id, start + i, text) for i, text in enumerate(encoded)],
                )

            _write_transaction(db, insert)

        await self._run(work)

    async def save_with_entries(self, record: SessionRecord, entries: Sequence[Entry]) -> None:
        # Both queued on the store thread at once (in this order): no hop back in between.
        await asyncio.gather(self.append(record.session_id, entries), self.save(record))

    async def history(self, session_id: str) -> list[Entry]:
        def work(db: sqlite3.Connection) -> list[Entry]:
            rows = db.execute(
                "SELECT entry FROM acp_history WHERE session_id = ? ORDER BY seq", (session_id,)
            ).fetchall()
            return [json.loads(text) for (text,) in rows]

        return await self._run(work)

    async def delete(self, session_id: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            def remove() -> None:
                db.execute("DELETE FROM acp_history WHERE session_id = ?", (session_id,))
                db.execute("DELETE FROM acp_sessions WHERE session_id = ?", (session_id,))

            _write_transaction(db, remove)

        await self._run(work)

    async def list(
        self, *, cwd: str | None, cursor: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        after = decode_cursor(cursor) if cursor is not None else None

        def work(db: sqlite3.Connection) -> list[SessionRecord]:
            sql = f"SELECT {_COLUMNS} FROM acp_sessions WHERE owner IS ?"
            args: list[Any] = [owner]
            if cwd is not None:
                sql += " AND cwd = ?"
                args.append(cwd)
            if after is not None:
                sql += " AND (updated_at < ? OR (updated_at = ? AND session_id < ?))"
                args += [after[0], after[0], after[1]]
            sql += " ORDER BY updated_at DESC, session_id DESC LIMIT ?"
            args.append(limit + 1)
            return [record_of(row) for row in db.execute(sql, args).fetchall()]

        rows = await self._run(work)
        page = rows[:limit]
        return page, encode_cursor(page[-1]) if len(rows) > limit and page else None

    async def aclose(self) -> None:
        if self._closed:
            return

        def work(db: sqlite3.Connection) -> None:
            db.close()

        if self._conn is not None:
            await self._run(work)
        self._closed = True
        self._executor.shutdown(wait=False)


BUSY_ATTEMPTS = 3
"""Tries of a write transaction that finds the file locked (each waits out `busy_timeout`)."""


def _write_transaction(db: sqlite3.Connection, work: Callable[[], None]) -> None:
    """Run `work` in a transaction that holds the write lock from its first statement; a
    file still locked by another process after `busy_timeout` is tried again, a few times."""
    for attempt in range(1, BUSY_ATTEMPTS + 1):
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                work()
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            if attempt == BUSY_ATTEMPTS:
                raise
            log.warning("the session store is busy (try %d of %d): %s", attempt, BUSY_ATTEMPTS, exc)


def record_of(row: Any) -> SessionRecord:
    """A record from a row in `session_row`'s order (SQLite tuple or PostgreSQL record)."""
    return SessionRecord(
        session_id=row[0],
        cwd=row[1],
        additional_directories=tuple(json.loads(row[2])),
        title=row[3],
        mode=row[4],
        config=json.loads(row[5]),
        permissions=json.loads(row[6]),
        created_at=row[7],
        updated_at=row[8],
        owner=row[9],
    )


def session_row(record: SessionRecord) -> tuple[Any, ...]:
    """The acp_sessions columns both stores write, in their order."""
    return (
        record.session_id,
        record.cwd,
        json.dumps(list(record.additional_directories)),
        record.title,
        record.mode,
        json.dumps(record.config),
        json.dumps(record.permissions),
        record.created_at,
        record.updated_at,
        record.owner,
    )


_COLUMNS = (
    "session_id, cwd, additional_directories, title, mode, config, permissions, created_at,"
    " updated_at, owner"
)


__all__ = [
    "Entry",
    "InvalidCursorError",
    "MemorySessionStore",
    "SessionRecord",
    "SessionStore",
    "SqliteSessionStore",
    "now_iso",
]
