"""Where the hub keeps tasks, contexts and push configs: an interface and its SQLite default.

Every row is scoped to the caller that created it, so lookups take the caller and a task id of
another caller is simply not found. SQLite runs on one dedicated thread (one connection, WAL):
the event loop never blocks on disk, and writes are serialized without locks.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from stores.schema import migrate_sqlite
from stores.sealing import Sealer
from stores.sqlite import connect as sqlite_connect

T = TypeVar("T")

log = logging.getLogger(__name__)


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
    stored_state: str | None = None
    """The state this record last had in the store (None: not stored yet); keeps the store's
    per-state counts exact without a query."""

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
    def state_counts(self) -> dict[str, int]:
        """Stored tasks by current state; cheap (a metrics scrape calls it)."""
        ...

    # The push outbox: deliveries not yet done, so they survive a restart (`a2a.push`).
    def enqueue_push(self, rows: list[OutboxRow]) -> Awaitable[None]:
        """Record deliveries leased to `row.lease_owner` (batched with this turn's writes)."""
        ...

    def touch_push(self, row: OutboxRow) -> Awaitable[None]:
        """Record an attempt and extend the lease (`row.attempts`, `row.lease_until`)."""
        ...

    def ack_push(self, row: OutboxRow) -> Awaitable[None]:
        """The delivery is done (or given up): forget it."""
        ...

    async def claim_push(self, owner: str, lease_until: float, limit: int) -> list[OutboxRow]:
        """Take over deliveries whose lease has run out (their process died or stopped),
        oldest first; with several replicas, each row goes to one of them."""
        ...


@dataclass(slots=True)
class OutboxRow:
    """One pending webhook delivery: the notification `body` for one push config of a task,
    numbered `seq` (increasing per task; what a receiver dedupes on)."""

    task_id: str
    config_id: str
    seq: int
    body: bytes
    attempts: int = 0
    lease_owner: str = ""
    lease_until: float = 0.0


_UPSERT_TASK = (
    "INSERT INTO a2a_tasks (id, caller, agent, remote_id, context_id, remote_context_id,"
    " state, created, updated, task) VALUES (?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(id) DO UPDATE SET state=excluded.state, updated=excluded.updated,"
    " task=excluded.task, remote_id=excluded.remote_id,"
    " remote_context_id=excluded.remote_context_id, context_id=excluded.context_id"
)
_UPSERT_CONTEXT = "INSERT OR REPLACE INTO a2a_contexts VALUES (?,?,?,?)"

_Statement = tuple[str, tuple[Any, ...]]
_Write = tuple[tuple[_Statement, ...], "asyncio.Future[None]"]
"""One writer's statements, and the future it awaits until they are committed."""


_CHECKPOINT_EVERY = 500
"""Writes committed by the writer between two checkpoints run on the store thread."""


def _transaction(db: sqlite3.Connection, statements: Iterable[_Statement]) -> None:
    try:
        db.execute("BEGIN")
        for sql, args in statements:
            db.execute(sql, args)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _commit(db: sqlite3.Connection, batch: list[_Write]) -> list[BaseException | None]:
    """The batch in one transaction; if that fails, each write in its own, so one bad write
    fails only its own writer (as with a transaction per write)."""
    try:
        _transaction(db, [s for statements, _ in batch for s in statements])
        return [None] * len(batch)
    except sqlite3.Error as exc:
        if len(batch) == 1:
            return [exc]
    outcomes: list[BaseException | None] = []
    for statements, _ in batch:
        try:
            _transaction(db, statements)
            outcomes.append(None)
        except sqlite3.Error as exc:
            outcomes.append(exc)
    return outcomes


def _settle(batch: list[_Write], outcomes: list[BaseException | None]) -> None:
    for (_, done), outcome in zip(batch, outcomes, strict=True):
        if done.done() or done.get_loop().is_closed():
            continue  # its writer was cancelled or is gone; the write stands
        if outcome is None:
            done.set_result(None)
        else:
            done.set_exception(outcome)


_COLUMNS = "id, caller, agent, remote_id, context_id, remote_context_id, created, updated, task"


def record_of(row: Any) -> TaskRecord:
    """A record from a row of `_COLUMNS` (SQLite tuple or PostgreSQL record alike)."""
    record = TaskRecord(
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
    record.stored_state = record.state
    return record


def task_row(record: TaskRecord) -> tuple[Any, ...]:
    """What both stores' task upsert writes, in their column order."""
    return (
        record.id,
        record.caller,
        record.agent,
        record.remote_id,
        record.context_id,
        record.remote_context_id,
        record.state,
        record.created,
        record.updated,
        orjson.dumps(record.task),
    )


def context_row(record: TaskRecord) -> tuple[str, str, str, str]:
    return (record.caller, record.context_id, record.agent, record.remote_context_id)


class StateTally:
    """Tasks per state, counted from the table when a store opens and then kept as tasks are
    saved (`TaskRecord.stored_state`), so the metrics need no query."""

    def __init__(self, counts: dict[str, int] | None = None) -> None:
        self._states: Counter[str] = Counter(counts or {})

    def saved(self, record: TaskRecord) -> None:
        state = record.state
        if state != record.stored_state:
            if record.stored_state is not None:
                self._states[record.stored_state] -= 1
            self._states[state] += 1
            record.stored_state = state

    def counts(self) -> dict[str, int]:
        return {state: count for state, count in self._states.items() if count > 0}


def page_of(rows: list[Any], page_size: int, total: int) -> TaskPage:
    """A page from up to `page_size + 1` rows newest first (one more: there is a next page)."""
    records = [record_of(row) for row in rows[:page_size]]
    next_cursor = ""
    if len(rows) > page_size:
        last = records[-1]
        next_cursor = encode_cursor(last.updated, last.id)
    return TaskPage(records, next_cursor, total)


def encode_cursor(updated: float, task_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([updated, task_id])).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError for a token this store did not make."""
    try:
        updated, task_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(updated), str(task_id)
    except Exception as exc:
        raise ValueError("invalid page token") from exc


class SqliteTaskStore:
    """The embedded default (`store.url: sqlite:///PATH`); `:memory:` for tests.

    Writes are group-committed: the writes issued in one event-loop turn are committed together,
    as one transaction, at the end of that turn, and each writer's `await` returns once its
    write is committed; so what a caller was told is accepted is in the database, and a read
    issued after it sees it (reads first commit what is queued). Nothing is left queued at
    `close()`.

    Where: a WAL-mode commit of a few rows is a page-cache write of some 10-50 us, cheaper than
    handing it to a thread (the hand-off, GIL ping-pong and wake-up cost ~100 us a request
    under load), so batches are committed on the event loop by a writer connection that never
    waits for a lock (`timeout=0`) and never checkpoints. Everything that can wait runs on the
    store's own thread with a second connection: reads, WAL checkpoints, and any batch the
    writer could not commit at once (the database is locked by another connection, or a write
    failed; that batch is retried there, each write on its own if need be, and later batches
    queue behind it so writes stay in order). `:memory:` has one connection and no disk: all of
    it runs inline.
    """

    def __init__(self, path: str | Path, *, encryption_key: str | None = None) -> None:
        self.path = str(path)
        self.sealer = Sealer(encryption_key)
        """Push configs (webhook tokens, credentials) are sealed with it when a key is set."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="a2a-store")
        self._db: sqlite3.Connection | None = None
        """The thread's connection (reads, checkpoints, writes handed over); in `:memory:`
        mode the only one, used inline."""
        self._writer: sqlite3.Connection | None = None
        self._pending: list[_Write] = []
        self._scheduled: asyncio.AbstractEventLoop | None = None
        """The loop this turn's commit is scheduled on (a loop that stopped before running it
        must not leave later writes waiting for it)."""
        self._handed_over = 0
        """Batches queued on the thread: while any is, later batches follow them there."""
        self._since_checkpoint = 0
        self._checkpointing = False
        self._states = StateTally()

    @property
    def _inline(self) -> bool:
        return self.path == ":memory:"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._pending:
            self._commit_pending()  # a read sees every write issued before it
        if self._inline:
            assert self._db is not None, "store is not open"
            return fn(self._db)

        def call() -> T:
            assert self._db is not None, "store is not open"
            return fn(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _write(self, *statements: _Statement) -> asyncio.Future[None]:
        """Queue statements for this turn's batch; await the result to know they are committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((statements, done))
        if self._scheduled is not loop:
            self._scheduled = loop
            loop.call_soon(self._commit_pending)
        return done

    def _commit_pending(self) -> None:
        self._scheduled = None
        batch, self._pending = self._pending, []
        if not batch:
            return
        if self._inline:
            if self._db is None:
                _settle(batch, [RuntimeError("store is not open")] * len(batch))
            else:
                _settle(batch, _commit(self._db, batch))
            return
        writer = self._writer
        if writer is not None and not self._handed_over:
            try:
                _transaction(writer, [s for statements, _ in batch for s in statements])
            except sqlite3.Error as exc:
                log.debug("store: handing a batch of %d to the store thread: %s", len(batch), exc)
            else:
                _settle(batch, [None] * len(batch))
                self._since_checkpoint += len(batch)
                if self._since_checkpoint >= _CHECKPOINT_EVERY and not self._checkpointing:
                    self._checkpoint()
                return
        self._hand_over(batch)

    def _hand_over(self, batch: list[_Write]) -> None:
        loop = asyncio.get_running_loop()

        def commit() -> list[BaseException | None]:
            if self._db is None:
                return [RuntimeError("store is not open")] * len(batch)
            return _commit(self._db, batch)

        def committed(future: asyncio.Future[list[BaseException | None]]) -> None:
            self._handed_over -= 1
            failure = None if future.cancelled() else future.exception()
            _settle(batch, [failure] * len(batch) if failure else future.result())

        self._handed_over += 1
        loop.run_in_executor(self._executor, commit).add_done_callback(committed)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database on the thread (the writer never checkpoints)."""

        def checkpoint() -> None:
            if self._db is not None:
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

        def done(future: asyncio.Future[None]) -> None:
            self._checkpointing = False
            if not future.cancelled() and future.exception() is not None:
                log.warning("store: WAL checkpoint failed: %s", future.exception())

        self._since_checkpoint = 0
        self._checkpointing = True
        loop = asyncio.get_running_loop()
        loop.run_in_executor(self._executor, checkpoint).add_done_callback(done)

    async def open(self) -> None:
        def setup() -> None:
            if not self._inline:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite_connect(self.path)
            migrate_sqlite(db, self.path)
            self._states = StateTally(
                dict(db.execute("SELECT state, COUNT(*) FROM a2a_tasks GROUP BY state").fetchall())
            )
            if not self._inline:
                writer = sqlite_connect(self.path)
                writer.execute("PRAGMA busy_timeout=0")  # never wait on the event loop
                writer.execute("PRAGMA wal_autocheckpoint=0")  # the thread checkpoints
                self._writer = writer
            self._db = db

        await asyncio.get_running_loop().run_in_executor(self._executor, setup)

    async def flush(self) -> None:
        """Wait until every write issued so far is committed (or has failed)."""
        if self._pending:
            self._commit_pending()
        if self._handed_over or self._checkpointing:
            await asyncio.get_running_loop().run_in_executor(self._executor, lambda: None)

    async def close(self) -> None:
        """Commit what is queued, then close: nothing accepted is lost."""
        if self._db is not None:
            await self.flush()
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._executor, db.close)
        self._executor.shutdown(wait=False)

    async def save_task(self, record: TaskRecord, *, with_context: bool = False) -> None:
        """Insert or update; `with_context` also records the task's context mapping (one trip)."""
        self._states.saved(record)
        if with_context:
            await self._write(
                (_UPSERT_TASK, task_row(record)), (_UPSERT_CONTEXT, context_row(record))
            )
        else:
            await self._write((_UPSERT_TASK, task_row(record)))

    def state_counts(self) -> dict[str, int]:
        return self._states.counts()

    async def get_task(self, task_id: str, caller: str) -> TaskRecord | None:
        def read(db: sqlite3.Connection) -> TaskRecord | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM a2a_tasks WHERE id = ? AND caller = ?", (task_id, caller)
            ).fetchone()
            return None if row is None else record_of(row)

        return await self._run(read)

    async def get_task_any_caller(self, task_id: str) -> TaskRecord | None:
        def read(db: sqlite3.Connection) -> TaskRecord | None:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM a2a_tasks WHERE id = ?", (task_id,)
            ).fetchone()
            return None if row is None else record_of(row)

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
            return page_of(rows, page_size, int(total))

        return await self._run(read)

    async def save_context(
        self, caller: str, context_id: str, agent: str, remote_context_id: str
    ) -> None:
        await self._write((_UPSERT_CONTEXT, (caller, context_id, agent, remote_context_id)))

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
        blob = self.sealer.seal(orjson.dumps(config))
        await self._write(
            (
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
            return None if row is None else self._config(row[0])

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
            return [self._config(row[0]) for row in rows]

        return await self._run(read)

    async def delete_push(self, caller: str, task_id: str, config_id: str) -> None:
        await self._write(
            (
                "DELETE FROM a2a_push_configs WHERE caller = ? AND task_id = ? AND id = ?",
                (caller, task_id, config_id),
            )
        )

    def _config(self, blob: bytes) -> dict[str, Any]:
        return dict(orjson.loads(self.sealer.open(bytes(blob))))

    def enqueue_push(self, rows: list[OutboxRow]) -> asyncio.Future[None]:
        return self._write(
            *(
                (
                    _ENQUEUE,
                    (
                        r.task_id,
                        r.config_id,
                        r.seq,
                        r.body,
                        r.attempts,
                        r.lease_owner,
                        r.lease_until,
                    ),
                )
                for r in rows
            )
        )

    def touch_push(self, row: OutboxRow) -> asyncio.Future[None]:
        return self._write(
            (_TOUCH, (row.attempts, row.lease_until, row.task_id, row.config_id, row.seq))
        )

    def ack_push(self, row: OutboxRow) -> asyncio.Future[None]:
        return self._write((_ACK, (row.task_id, row.config_id, row.seq)))

    async def claim_push(self, owner: str, lease_until: float, limit: int) -> list[OutboxRow]:
        now = time.time()

        def claim(db: sqlite3.Connection) -> list[OutboxRow]:
            rows = db.execute(_CLAIM, (owner, lease_until, now, limit)).fetchall()
            return sorted((OutboxRow(*row) for row in rows), key=lambda r: r.seq)

        return await self._run(claim)


_ENQUEUE = (
    "INSERT INTO a2a_push_outbox (task_id, config_id, seq, body, attempts, lease_owner,"
    " lease_until) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)
_TOUCH = (
    "UPDATE a2a_push_outbox SET attempts = ?, lease_until = ?"
    " WHERE task_id = ? AND config_id = ? AND seq = ?"
)
_ACK = "DELETE FROM a2a_push_outbox WHERE task_id = ? AND config_id = ? AND seq = ?"
_CLAIM = (
    "UPDATE a2a_push_outbox SET lease_owner = ?1, lease_until = ?2 WHERE rowid IN"
    " (SELECT rowid FROM a2a_push_outbox o WHERE lease_until < ?3 AND NOT EXISTS"
    "  (SELECT 1 FROM a2a_push_outbox e WHERE e.task_id = o.task_id"
    "   AND e.config_id = o.config_id AND e.seq < o.seq AND e.lease_until >= ?3)"
    "  ORDER BY seq LIMIT ?4)"
    " RETURNING task_id, config_id, seq, body, attempts, lease_owner, lease_until"
)
