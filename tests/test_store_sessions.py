"""ACP sessions on either store, over the real ACP wire: a session started by one agent
runtime (one replica) is listed and loaded, with its history, by another; on PostgreSQL a turn
during an outage answers an error naming it and the session carries on afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from junction.config import JunctionConfig, StoreConfig
from tests.acp.wire import agent, agent_config
from tests.postgres import PostgresServer, postgres_server
from tests.router_core.llm_servers import Reply, openai_server


def _on(config: JunctionConfig, url: str) -> JunctionConfig:
    return config.model_copy(update={"store": StoreConfig(url=url, connect_timeout=2)})


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'j.db'}"


async def test_a_session_from_one_replica_loads_on_another(tmp_path: Path, store_url: str) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="the answer")])
        config = _on(agent_config(server.url, tmp_path / "unused.db"), store_url)
        async with agent(config) as first:
            await first.initialize()
            sid = await first.new_session(tmp_path)
            answered = await first.prompt(sid, "the question")
        async with agent(config) as second:
            await second.initialize()
            listed = await second.call("session/list", {})
            await second.call(
                "session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
            )
            replayed = [
                u["update"]["content"]["text"]
                for u in second.updates
                if u["update"]["sessionUpdate"] in ("user_message_chunk", "agent_message_chunk")
            ]
    assert answered["result"] == {"stopReason": "end_turn"}
    assert [s["sessionId"] for s in listed["sessions"]] == [sid]
    assert replayed == ["the question", "the answer"]


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


async def test_a_turn_during_an_outage_fails_clearly_then_the_session_goes_on(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="first answer"), Reply(text="lost"), Reply(text="third")])
        config = _on(agent_config(server.url, tmp_path / "unused.db"), own_server.database())
        async with agent(config) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            await client.prompt(sid, "one")
            own_server.stop()
            refused = await client.prompt(sid, "two")
            own_server.start()
            answered = await client.prompt(sid, "three")
        async with agent(config) as later:
            await later.initialize()
            await later.call(
                "session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
            )
            replayed = [
                u["update"]["content"]["text"]
                for u in later.updates
                if u["update"]["sessionUpdate"] in ("user_message_chunk", "agent_message_chunk")
            ]
    assert refused["error"]["code"] == -32603
    assert "is unavailable" in refused["error"]["message"]
    assert answered["result"] == {"stopReason": "end_turn"}
    assert "two" not in replayed and "lost" not in replayed
    assert replayed == ["one", "first answer", "three", "third"]


async def test_calls_that_arrive_together_on_a_fresh_store_all_work(postgres_url: str) -> None:
    import asyncio

    from acp.pgstore import PgSessionStore
    from acp.store import SessionRecord

    store = PgSessionStore(postgres_url)
    try:
        await asyncio.gather(
            store.save(SessionRecord(session_id="s1", cwd="/w")),
            store.append("s1", [{"kind": "user", "text": "hi"}]),
            store.history("nobody"),
        )
        history = await store.history("s1")
    finally:
        await store.aclose()
    assert history == [{"kind": "user", "text": "hi"}]


async def test_the_end_of_a_turn_is_one_write(store_url: str) -> None:
    """`save_with_entries` puts the entries after the stored ones and the record, in one
    statement on PostgreSQL (one round trip where a transaction of two would take four)."""
    from acp.pgstore import PgSessionStore
    from acp.store import SessionRecord, SqliteSessionStore
    from junction.storage import session_store

    store = session_store(_on(JunctionConfig(), store_url))
    record = SessionRecord(session_id="s-end-of-turn", cwd="/tmp/project")
    await store.save(record)
    await store.append(record.session_id, [{"kind": "user", "n": 1}])
    statements: list[str] = []
    if isinstance(store, PgSessionStore):
        write = store.db.write

        def counting(*batch: tuple[str, tuple[object, ...]], idempotent: bool = True) -> object:
            statements.extend(sql for sql, _ in batch)
            return write(*batch, idempotent=idempotent)

        store.db.write = counting  # type: ignore[method-assign,assignment]
    touched = record.touched(title="second")
    await store.save_with_entries(touched, [{"kind": "agent", "n": 2}, {"kind": "user", "n": 3}])
    assert [entry["n"] for entry in await store.history(record.session_id)] == [1, 2, 3]
    assert await store.get(record.session_id) == touched
    if isinstance(store, PgSessionStore):
        assert len(statements) == 1, statements
    else:
        assert isinstance(store, SqliteSessionStore)
    await store.aclose()
