"""ACP sessions on PostgreSQL (`store.url: postgresql://...`): what a client started through
one replica loads through another.

Same behaviour as `SqliteSessionStore` (the tests run on both): writes land in the order they
were issued and are group-committed (an append is one statement, whatever its length), reads
wait for the writes issued before them. `realm` keeps sessions of different kinds (an IDE's,
the self-agent's) apart in one database, as separate files do on SQLite. An unreachable server
fails the operation with `StoreUnavailableError` (the turn answers -32603 with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from acp.store import (
    Entry,
    InvalidCursorError,
    SessionRecord,
    decode_cursor,
    encode_cursor,
    record_of,
    session_row,
)
from stores.postgres import PgDatabase

_COLUMNS = (
    "session_id, cwd, additional_directories, title, mode, config, permissions, created_at,"
    " updated_at, owner"
)
_UPSERT = (
    f"INSERT INTO acp_sessions ({_COLUMNS}, realm) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"
    " ON CONFLICT (session_id) DO UPDATE SET cwd=excluded.cwd,"
    " additional_directories=excluded.additional_directories, title=excluded.title,"
    " mode=excluded.mode, config=excluded.config, permissions=excluded.permissions,"
    " created_at=excluded.created_at, updated_at=excluded.updated_at, owner=excluded.owner,"
    " realm=excluded.realm"
)
_APPEND = (
    "INSERT INTO acp_history (session_id, seq, entry)"
    " SELECT $1, COALESCE((SELECT MAX(seq) FROM acp_history WHERE session_id = $1), -1) + u.i,"
    " u.e FROM unnest($2::text[]) WITH ORDINALITY AS u(e, i)"
)

_APPEND_AND_UPSERT = (
    "WITH h AS (" + _APPEND.replace("$1", "$12").replace("$2", "$13") + f") {_UPSERT}"
)
"""History entries and the session record in one statement: the end of a turn in one round trip
(a transaction of two would take four: BEGIN, each statement, COMMIT)."""

APPEND_ATTEMPTS = 20
"""Tries of an append that races another process's append to the same session."""


class PgSessionStore:
    """`SessionStore` on PostgreSQL."""

    def __init__(self, db: PgDatabase | str, *, realm: str = "", **options: Any) -> None:
        self.db = db if isinstance(db, PgDatabase) else PgDatabase(db, **options)
        self.realm = realm
        self._opening: asyncio.Future[None] | None = None

    async def _open(self) -> PgDatabase:
        """Open the pool on first use (after `initialize`, as the SQLite store does); calls
        that arrive together wait for the one opening."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self.db.open())
        await asyncio.shield(self._opening)
        return self.db

    def _row(self, record: SessionRecord) -> tuple[Any, ...]:
        return (*session_row(record), self.realm)

    async def save(self, record: SessionRecord) -> None:
        db = await self._open()
        await db.write((_UPSERT, self._row(record)))

    async def get(self, session_id: str) -> SessionRecord | None:
        db = await self._open()
        row = await db.read(
            lambda c: c.fetchrow(
                f"SELECT {_COLUMNS} FROM acp_sessions WHERE session_id = $1 AND realm = $2",
                session_id,
                self.realm,
            )
        )
        return None if row is None else record_of(row)

    async def append(self, session_id: str, entries: Sequence[Entry]) -> None:
        if entries:
            encoded = [json.dumps(entry, ensure_ascii=False) for entry in entries]
            await self._append((_APPEND, (session_id, encoded)))

    async def save_with_entries(self, record: SessionRecord, entries: Sequence[Entry]) -> None:
        if not entries:
            await self.save(record)
            return
        encoded = [json.dumps(entry, ensure_ascii=False) for entry in entries]
        await self._append((_APPEND_AND_UPSERT, (*self._row(record), record.session_id, encoded)))

    async def _append(self, statement: tuple[str, tuple[Any, ...]]) -> None:
        db = await self._open()
        import asyncpg

        for attempt in range(1, APPEND_ATTEMPTS + 1):
            try:
                await db.write(statement, idempotent=False)
                return
            except asyncpg.UniqueViolationError:
                # Another process appended to this session at the same moment and took the
                # same positions; nothing of this append was stored, so it goes after theirs.
                if attempt == APPEND_ATTEMPTS:
                    raise

    async def history(self, session_id: str) -> list[Entry]:
        db = await self._open()
        rows = await db.read(
            lambda c: c.fetch(
                "SELECT entry FROM acp_history WHERE session_id = $1 ORDER BY seq", session_id
            )
        )
        return [json.loads(row[0]) for row in rows]

    async def delete(self, session_id: str) -> None:
        db = await self._open()
        await db.write(
            ("DELETE FROM acp_history WHERE session_id = $1", (session_id,)),
            ("DELETE FROM acp_sessions WHERE session_id = $1", (session_id,)),
        )

    async def list(
        self, *, cwd: str | None, cursor: str | None, limit: int, owner: str | None = None
    ) -> tuple[list[SessionRecord], str | None]:
        after = decode_cursor(cursor) if cursor is not None else None
        sql = f"SELECT {_COLUMNS} FROM acp_sessions WHERE owner IS NOT DISTINCT FROM $1 AND realm = $2"
        args: list[Any] = [owner, self.realm]
        if cwd is not None:
            args.append(cwd)
            sql += f" AND cwd = ${len(args)}"
        if after is not None:
            args += [after[0], after[1]]
            n = len(args)
            sql += f" AND (updated_at < ${n - 1} OR (updated_at = ${n - 1} AND session_id < ${n}))"
        args.append(limit + 1)
        sql += f" ORDER BY updated_at DESC, session_id DESC LIMIT ${len(args)}"
        db = await self._open()
        rows = [record_of(row) for row in await db.read(lambda c: c.fetch(sql, *args))]
        page = rows[:limit]
        return page, encode_cursor(page[-1]) if len(rows) > limit and page else None

    async def aclose(self) -> None:
        if self._opening is not None:
            with contextlib.suppress(Exception):
                await self._opening
            await self.db.close()


__all__ = ["InvalidCursorError", "PgSessionStore"]
