"""PostgreSQL going down under a running store, then coming back (the real server, stopped
and started): what needs it fails at once with a clear error, nothing acknowledged before is
lost, and the same store object works again when the server is back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from a2a.errors import INTERNAL_ERROR, A2aError
from a2a.pgstore import PgTaskStore
from a2a.store import TaskRecord
from acp.pgstore import PgSessionStore
from acp.store import SessionRecord
from stores.postgres import StoreUnavailableError
from tests.postgres import PostgresServer, postgres_server


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A cluster of its own: this test stops it."""
    with postgres_server() as server:
        yield server


def record(n: int, state: str = "TASK_STATE_WORKING") -> TaskRecord:
    return TaskRecord(
        id=f"task-{n}",
        caller="alice",
        agent="fast",
        remote_id=f"r-{n}",
        context_id="ctx",
        remote_context_id="rctx",
        task={"id": f"task-{n}", "status": {"state": state}},
    )


async def test_a_store_outage_fails_clearly_and_recovers(own_server: PostgresServer) -> None:
    url = own_server.database()
    tasks = PgTaskStore(url, connect_timeout=2)
    sessions = PgSessionStore(url, connect_timeout=2)
    await tasks.open()
    try:
        await tasks.save_task(record(1), with_context=True)
        await sessions.save(SessionRecord(session_id="s1", cwd="/w"))
        await sessions.append("s1", [{"kind": "user", "text": "before"}])

        own_server.stop()
        with pytest.raises(A2aError) as saving:
            await tasks.save_task(record(2))
        with pytest.raises(A2aError) as reading:
            await tasks.get_task("task-1", "alice")
        with pytest.raises(StoreUnavailableError) as appending:
            await sessions.append("s1", [{"kind": "user", "text": "during"}])

        own_server.start()
        await tasks.save_task(record(1, "TASK_STATE_COMPLETED"))
        got = await tasks.get_task("task-1", "alice")
        missing = await tasks.get_task("task-2", "alice")
        await sessions.append("s1", [{"kind": "user", "text": "after"}])
        history = await sessions.history("s1")
    finally:
        await tasks.close()
        await sessions.aclose()
    for failure in (saving.value, reading.value):
        assert failure.code == INTERNAL_ERROR
        assert "the task store is unavailable" in str(failure)
    assert "is unavailable" in str(appending.value)
    assert got is not None and got.state == "TASK_STATE_COMPLETED"
    assert missing is None  # refused, so never acknowledged, and not there
    assert [e["text"] for e in history] == ["before", "after"]


async def test_a_store_opened_while_the_server_is_down_starts_and_catches_up(
    own_server: PostgresServer,
) -> None:
    url = own_server.database()
    own_server.stop()
    tasks = PgTaskStore(url, connect_timeout=2)
    await tasks.open()  # logged, not fatal: the process starts
    try:
        with pytest.raises(A2aError, match="unavailable"):
            await tasks.save_task(record(1))
        own_server.start()
        await tasks.save_task(record(1))  # the schema is made on the way
        got = await tasks.get_task("task-1", "alice")
    finally:
        await tasks.close()
    assert got is not None
