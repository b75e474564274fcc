"""The task store's group commit: batched writes are committed before their writers return,
reads see every write issued before them, nothing queued is lost at close, a locked database
or a bad write costs only what it must. The engine-neutral tests run on SQLite (a file and
`:memory:`) and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from a2a import SqliteTaskStore, TaskRecord
from a2a.pgstore import PgTaskStore
from a2a.store import TaskStore

pytestmark = pytest.mark.asyncio


def record(n: int, state: str = "TASK_STATE_WORKING", caller: str = "alice") -> TaskRecord:
    return TaskRecord(
        id=f"task-{n}",
        caller=caller,
        agent="fast",
        remote_id=f"remote-{n}",
        context_id=f"ctx-{n}",
        remote_context_id=f"remote-ctx-{n}",
        task={"id": f"task-{n}", "contextId": f"ctx-{n}", "status": {"state": state}},
    )


@pytest.fixture(params=["file", "memory", "postgresql"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the store lives: an SQLite file, SQLite in memory, or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "tasks.db") if request.param == "file" else ":memory:"


def make_store(path: str) -> SqliteTaskStore | PgTaskStore:
    return PgTaskStore(path) if path.startswith("postgresql://") else SqliteTaskStore(path)


def has_pending_writes(store: TaskStore) -> bool:
    """Writes queued for the batch that has not been sent yet."""
    queue = store.db._pending if isinstance(store, PgTaskStore) else store._pending  # type: ignore[attr-defined]
    return bool(queue)


async def test_a_saved_task_is_readable_at_once(path: str) -> None:
    store = make_store(path)
    await store.open()
    try:
        await store.save_task(record(1), with_context=True)
        got = await store.get_task("task-1", "alice")
        assert got is not None and got.state == "TASK_STATE_WORKING"
        assert await store.get_context("alice", "ctx-1") == ("fast", "remote-ctx-1")
        assert await store.get_task("task-1", "mallory") is None
        page = await store.list_tasks("alice")
        assert [r.id for r in page.records] == ["task-1"]
    finally:
        await store.close()


async def test_concurrent_saves_are_all_committed_and_in_order(path: str) -> None:
    store = make_store(path)
    await store.open()
    try:
        await asyncio.gather(*(store.save_task(record(n)) for n in range(200)))
        # Two updates of one task in one turn: the later one wins.
        await asyncio.gather(
            store.save_task(record(7, "TASK_STATE_WORKING")),
            store.save_task(record(7, "TASK_STATE_COMPLETED")),
        )
        page = await store.list_tasks("alice", page_size=500)
        assert page.total == 200
        got = await store.get_task("task-7", "alice")
        assert got is not None and got.state == "TASK_STATE_COMPLETED"
    finally:
        await store.close()


async def test_a_read_issued_right_after_an_unawaited_write_sees_it(path: str) -> None:
    store = make_store(path)
    await store.open()
    try:
        pending = asyncio.ensure_future(store.save_task(record(1)))
        await asyncio.sleep(0)  # the write is queued, its batch not yet committed
        assert has_pending_writes(store)
        got = await store.get_task_any_caller("task-1")
        assert got is not None and got.id == "task-1"
        await pending
    finally:
        await store.close()


@pytest.fixture(params=["file", "postgresql"])
def durable_path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that outlives its store (one to reopen)."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "tasks.db")


async def test_writes_still_queued_at_close_are_committed(durable_path: str) -> None:
    path = durable_path
    store = make_store(path)
    await store.open()
    writers = [asyncio.ensure_future(store.save_task(record(n))) for n in range(20)]
    await asyncio.sleep(0)  # each writer has queued its write; none is committed yet
    assert has_pending_writes(store)
    await store.close()
    assert all(w.done() and w.exception() is None for w in writers)
    reopened = make_store(path)
    await reopened.open()
    try:
        page = await reopened.list_tasks("alice", page_size=100)
        assert page.total == 20
    finally:
        await reopened.close()


async def test_a_locked_database_delays_writes_without_losing_or_reordering_them(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "tasks.db")
    store = SqliteTaskStore(db)
    await store.open()
    locked = threading.Event()
    release = threading.Event()

    def hold_write_lock() -> None:
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        other.execute("COMMIT")
        other.close()

    holder = threading.Thread(target=hold_write_lock)
    holder.start()
    try:
        await asyncio.to_thread(locked.wait, 5)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        first = asyncio.ensure_future(store.save_task(record(1, "TASK_STATE_WORKING")))
        await asyncio.sleep(0)
        assert time.perf_counter() - started < 0.5  # the event loop was not blocked
        second = asyncio.ensure_future(store.save_task(record(1, "TASK_STATE_COMPLETED")))
        loop.call_later(0.2, release.set)
        await asyncio.wait_for(asyncio.gather(first, second), 10)
        got = await store.get_task("task-1", "alice")
        assert got is not None and got.state == "TASK_STATE_COMPLETED"
        # Once the hand-over has drained, writes are committed on the loop again.
        await store.save_task(record(2))
        assert await store.get_task("task-2", "alice") is not None
    finally:
        release.set()
        holder.join()
        await store.close()


async def test_a_bad_write_fails_only_its_writer(path: str) -> None:
    store = make_store(path)
    await store.open()
    try:
        good = asyncio.ensure_future(store.save_task(record(1)))
        if isinstance(store, PgTaskStore):
            bad = store.db.write(("INSERT INTO no_such_table VALUES ($1)", (1,)))
            error: type[Exception] = __import__("asyncpg").UndefinedTableError
        else:
            bad = store._write(("INSERT INTO no_such_table VALUES (?)", (1,)))
            error = sqlite3.OperationalError
        also_good = asyncio.ensure_future(store.save_task(record(2)))
        await asyncio.gather(good, also_good)
        with pytest.raises(error):
            await bad
        assert await store.get_task("task-1", "alice") is not None
        assert await store.get_task("task-2", "alice") is not None
    finally:
        await store.close()


async def test_push_configs_go_through_the_same_queue(path: str) -> None:
    store = make_store(path)
    await store.open()
    try:
        await store.save_task(record(1))
        await store.save_push("alice", "task-1", {"id": "p1", "url": "https://example.test/hook"})
        assert [c["id"] for c in await store.list_push("task-1", "alice")] == ["p1"]
        await store.delete_push("alice", "task-1", "p1")
        assert await store.list_push("task-1") == []
    finally:
        await store.close()
