"""Where the hub keeps tasks, contexts and push configs: an interface and its SQLite default.

Every row is scoped to the caller that created it, so lookups take the caller and a task id of
another caller is simply not found. SQLite runs on one dedicated thread (one connection, WAL):
the event loop never blocks on disk, and writes are serialized without locks.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

T = TypeVar("T")


@dataclass(slots=True)
class TaskRecord:
    """One task as the hub knows it; `task` is 1.0 Task JSON carrying the hub's ids."""

    id: str
    caller: str
    agent: str
    remote_id: str
    context_id: str
    remote_context_id: str
    task: dict[str, Any]
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def state(self) -> str:
        status = self.task.get("status")
        return str(status.get("state", "")) if isinstance(status, dict) else ""


@dataclass(slots=True)
class TaskPage:
    records: list[TaskRecord]
    next_cursor: str
    total: int


class TaskStore(Protocol):
    """What the hub needs from persistence; a distributed backend implements the same."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def save_task(self, record: TaskRecord, *, with_context: bool = False) -> None: ...
    async def get_task(self, task_id: str, caller: str) -> TaskRecord | None: ...
    async def get_task_any_caller(self, task_id: str) -> TaskRecord | None: ...
    async def list_tasks(
        self,
        caller: str,
        *,
        context_id: str | None = None,
        state: str | None = None,
        updated_after: float | None = None,
        page_size: int = 50,
        cursor: str | None = None,
    ) -> TaskPage: ...
    async def save_context(
        self, caller: str, context_id: str, agent: str, remote_context_id: str
    ) -> None: ...
    async def get_context(self, caller: str, context_id: str) -> tuple[str, str] | None: ...
    async def find_context(self, caller: str, agent: str, remote_context_id: str) -> str | None: ...
    async def save_push(self, caller: str, task_id: str, config: dict[str, Any]) -> None: ...
    async def get_push(
        self, caller: str, task_id: str, config_id: str
    ) -> dict[str, Any] | None: ...
    async def list_push(self, task_id: str, caller: str | None = None) -> list[dict[str, Any]]: ...
    async def delete_push(self, caller: str, task_id: str, config_id: str) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS a2a_tasks (
    id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    agent TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    context_id TEXT NOT NULL,
    remote_context_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    task BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS a2a_tasks_caller_updated ON a2a_tasks (caller, updated DESC, id DESC);
CREATE TABLE IF NOT EXISTS a2a_contexts (
    caller TEXT NOT NULL,
    context_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    remote_context_id TEXT NOT NULL,
    PRIMARY KEY (caller, context_id)
);
CREATE INDEX IF NOT EXISTS a2a_contexts_remote ON a2a_contexts (caller, agent, remote_context_id);
CREATE TABLE IF NOT EXISTS a2a_push_configs (
    caller TEXT NOT NULL,
    task_id TEXT NOT NULL,
    id TEXT NOT NULL,
    config BLOB NOT NULL,
    PRIMARY KEY (task_id, id)
);
"""

_COLUMNS = "id, caller, agent, remote_id, context_id, remote_context_id, created, updated, task"


def _record(row: tuple[Any, ...]) -> TaskRecord:
    return TaskRecord(
        id=row[0],
        caller=row[1],
        agent=row[2],
        remote_id=row[3],
        context_id=row[4],
        remote_context_id=row[5],
        created=row[6],
        updated=row[7],
        task=orjson.loads(row[8]),
    )


def _encode_cursor(updated: float, task_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([updated, task_id])).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError for a token this store did not make."""
    try:
        updated, task_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(updated), str(task_id)
    except Exception as exc:
        raise ValueError("invalid page token") from exc


class SqliteTaskStore:
    """The embedded default (`store.url: sqlite:///PATH`); `:memory:` for tests."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="a2a-store")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()

        def call() -> T:
            assert self._db is not None, "store is not open"
            return fn(self._db)

        return await loop.run_in_executor(self._executor, call)

    async def open(self) -> None:
        def connect() -> None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._executor, connect)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=False)

    async def save_task(self, record: TaskRecord, *, with_context: bool = False) -> None:
        """Insert or update; `with_context` also records the task's context mapping (one trip)."""
        blob = orjson.dumps(record.task)
        row = (
            record.id,
            record.caller,
            record.agent,
            record.remote_id,
            record.context_id,
            record.remote_context_id,
            record.state,
            record.created,
            record.updated,
            blob,
        )

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO a2a_tasks (id, caller, agent, remote_id, context_id, remote_context_id,"
                " state, created, updated, task) VALUES (?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET state=excluded.state, updated=excluded.updated,"
                " task=excluded.task, remote_id=excluded.remote_id,"
                " remote_context_id=excluded.remote_context_id, context_id=excluded.context_id",
                row,
            )
            if with_context:
                db.execute(
                    "INSERT OR REPLACE INTO a2a_contexts VALUES (?,?,?,?)",
                    (record.caller, record.context_id, record.agent, record.remote_context_id),
                )

        await self._run(write)

    async def get_task(self, task_id: str, caller: str) -> TaskRecord | None:
        def read(db: sqlite3.Connection) -> TaskRecord | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM a2a_tasks WHERE id = ? AND caller = ?", (task_id, caller)
            ).fetchone()
            return None if row is None else _record(row)

        return await self._run(read)

    async def get_task_any_caller(self, task_id: str) -> TaskRecord | None:
        def read(db: sqlite3.Connection) -> TaskRecord | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM a2a_tasks WHERE id = ?", (task_id,)
            ).fetchone()
            return None if row is None else _record(row)

        return await self._run(read)

    async def list_tasks(
        self,
        caller: str,
        *,
        context_id: str | None = None,
        state: str | None = None,
        updated_after: float | None = None,
        page_size: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        where = ["caller = ?"]
        args: list[Any] = [caller]
        if context_id:
            where.append("context_id = ?")
            args.append(context_id)
        if state:
            where.append("state = ?")
            args.append(state)
        if updated_after is not None:
            where.append("updated > ?")
            args.append(updated_after)
        filters = " AND ".join(where)
        page_where, page_args = filters, list(args)
        if cursor:
            updated, last_id = decode_cursor(cursor)
            page_where += " AND (updated < ? OR (updated = ? AND id < ?))"
            page_args += [updated, updated, last_id]

        def read(db: sqlite3.Connection) -> TaskPage:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM a2a_tasks WHERE {page_where}"
                " ORDER BY updated DESC, id DESC LIMIT ?",
                (*page_args, page_size + 1),
            ).fetchall()
            total = db.execute(f"SELECT COUNT(*) FROM a2a_tasks WHERE {filters}", args).fetchone()[
                0
            ]
            records = [_record(row) for row in rows[:page_size]]
            next_cursor = ""
            if len(rows) > page_size:
                last = records[-1]
                next_cursor = _encode_cursor(last.updated, last.id)
            return TaskPage(records, next_cursor, int(total))

        return await self._run(read)

    async def save_context(
        self, caller: str, context_id: str, agent: str, remote_context_id: str
    ) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO a2a_contexts VALUES (?,?,?,?)",
                (caller, context_id, agent, remote_context_id),
            )
        )

    async def get_context(self, caller: str, context_id: str) -> tuple[str, str] | None:
        def read(db: sqlite3.Connection) -> tuple[str, str] | None:
            row = db.execute(
                "SELECT agent, remote_context_id FROM a2a_contexts WHERE caller = ? AND context_id = ?",
                (caller, context_id),
            ).fetchone()
            return None if row is None else (row[0], row[1])

        return await self._run(read)

    async def find_context(self, caller: str, agent: str, remote_context_id: str) -> str | None:
        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT context_id FROM a2a_contexts WHERE caller = ? AND agent = ?"
                " AND remote_context_id = ?",
                (caller, agent, remote_context_id),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run(read)

    async def save_push(self, caller: str, task_id: str, config: dict[str, Any]) -> None:
        blob = orjson.dumps(config)
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO a2a_push_configs VALUES (?,?,?,?)",
                (caller, task_id, config["id"], blob),
            )
        )

    async def get_push(self, caller: str, task_id: str, config_id: str) -> dict[str, Any] | None:
        def read(db: sqlite3.Connection) -> dict[str, Any] | None:
            row = db.execute(
                "SELECT config FROM a2a_push_configs WHERE caller = ? AND task_id = ? AND id = ?",
                (caller, task_id, config_id),
            ).fetchone()
            return None if row is None else dict(orjson.loads(row[0]))

        return await self._run(read)

    async def list_push(self, task_id: str, caller: str | None = None) -> list[dict[str, Any]]:
        def read(db: sqlite3.Connection) -> list[dict[str, Any]]:
            if caller is None:
                rows = db.execute(
                    "SELECT config FROM a2a_push_configs WHERE task_id = ? ORDER BY id", (task_id,)
                ).fetchall()
            else:
                rows = db.execute(
                    "SELECT config FROM a2a_push_configs WHERE task_id = ? AND caller = ? ORDER BY id",
                    (task_id, caller),
                ).fetchall()
            return [dict(orjson.loads(row[0])) for row in rows]

        return await self._run(read)

    async def delete_push(self, caller: str, task_id: str, config_id: str) -> None:
        await self._run(
            lambda db: db.execute(
                "DELETE FROM a2a_push_configs WHERE caller = ? AND task_id = ? AND id = ?",
                (caller, task_id, config_id),
            )
        )
