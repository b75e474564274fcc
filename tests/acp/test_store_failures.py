"""A store that fails: no turn is acknowledged that was not stored, and the session carries
on from what was stored once the store works again."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

import pytest

from acp import store as store_module
from acp.store import SqliteSessionStore
from tests.acp.wire import agent, agent_config
from tests.router_core.llm_servers import Reply, openai_server

NO_HISTORY = (
    "CREATE TRIGGER no_history BEFORE INSERT ON acp_history"
    " BEGIN SELECT RAISE(ABORT, 'the disk says no'); END"
)


def _sql(db: Path, statement: str) -> None:
    """Change the store's file from another connection, as another process would."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(statement)
    finally:
        conn.close()


async def test_a_turn_the_store_refused_answers_an_error_then_the_session_recovers(
    tmp_path: Path,
) -> None:
    db = tmp_path / "j.db"
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="lost answer"), Reply(text="kept answer")])
        async with agent(agent_config(server.url, db)) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            _sql(db, NO_HISTORY)
            refused = await client.prompt(sid, "first question")
            _sql(db, "DROP TRIGGER no_history")
            mode = await client.request("session/set_mode", {"sessionId": sid, "modeId": "auto"})
            answered = await client.prompt(sid, "second question")
        async with agent(agent_config(server.url, db)) as later:
            await later.initialize()
            await later.call(
                "session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
            )
            replayed = [
                u["update"]["content"]["text"]
                for u in later.updates
                if u["update"]["sessionUpdate"] in ("user_message_chunk", "agent_message_chunk")
            ]
    assert "result" not in refused
    assert refused["error"]["code"] == -32603
    assert "the disk says no" in refused["error"]["message"]
    assert mode["result"] == {}
    assert answered["result"] == {"stopReason": "end_turn"}
    # The second turn's model request holds only what was stored: not the refused turn.
    second = server.chat_requests[1].body["messages"]
    assert [(m["role"], m["content"]) for m in second[1:]] == [("user", "second question")]
    assert replayed == ["second question", "kept answer"]


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 50)


@pytest.mark.usefixtures("short_busy_timeout")
async def test_an_append_waits_out_a_lock_held_past_the_busy_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "s.db"
    store = SqliteSessionStore(db)
    await store.history("open")
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")

    class ReleaseOnBusy(logging.Handler):
        """Another process finishing its write just after this one gave up waiting once."""

        def emit(self, record: logging.LogRecord) -> None:
            if holder.in_transaction:
                holder.execute("COMMIT")

    release = ReleaseOnBusy(logging.WARNING)
    logging.getLogger("acp.store").addHandler(release)
    try:
        await store.append("s", [{"kind": "notice", "text": "kept"}])
        history = await store.history("s")
    finally:
        logging.getLogger("acp.store").removeHandler(release)
        holder.close()
        await store.aclose()
    assert history == [{"kind": "notice", "text": "kept"}]


@pytest.mark.usefixtures("short_busy_timeout")
async def test_an_append_gives_up_on_a_lock_that_is_never_released(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    store = SqliteSessionStore(db)
    await store.history("open")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await asyncio.wait_for(store.append("s", [{"kind": "notice"}]), timeout=20)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await store.history("s") == []
    await store.aclose()
