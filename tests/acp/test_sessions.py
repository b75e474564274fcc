"""Sessions survive a restart, load faithfully, list, resume and close."""

from __future__ import annotations

from pathlib import Path

import pytest

from acp.store import SqliteSessionStore
from tests.acp.wire import ClientError, agent, agent_config
from tests.router_core.llm_servers import Call, Reply, openai_server


async def test_load_after_restart_replays_history_and_continues(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("remember me")
    db = tmp_path / "j.db"
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(
                    reasoning="let me look",
                    tool_calls=[Call("read_text_file", {"path": "notes.txt"})],
                ),
                Reply(text="It says: remember me"),
                Reply(text="Still here."),
            ]
        )
        async with agent(agent_config(server.url, db)) as first:
            await first.initialize()
            sid = await first.new_session(tmp_path)
            await first.call("session/set_mode", {"sessionId": sid, "modeId": "auto"})
            await first.prompt(sid, "What do my notes say?")
        # A new agent process on the same store (the first one is gone).
        async with agent(agent_config(server.url, db)) as second:
            await second.initialize()
            listed = await second.call("session/list", {})
            loaded = await second.call(
                "session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
            )
            replay = [
                u
                for u in second.updates
                if u["update"]["sessionUpdate"] != "available_commands_update"
            ]
            response = await second.prompt(sid, "And now?")
    assert [s["sessionId"] for s in listed["sessions"]] == [sid]
    assert listed["sessions"][0]["title"] == "What do my notes say?"
    assert listed["sessions"][0]["cwd"] == str(tmp_path)
    assert loaded["modes"]["currentModeId"] == "auto"
    kinds = [u["update"]["sessionUpdate"] for u in replay]
    assert kinds == [
        "user_message_chunk",
        "agent_thought_chunk",
        "tool_call",
        "agent_message_chunk",
    ]
    assert replay[0]["update"]["content"] == {"type": "text", "text": "What do my notes say?"}
    tool = replay[2]["update"]
    assert tool["status"] == "completed" and tool["kind"] == "read"
    assert tool["content"][0]["content"]["text"] == "remember me"
    assert replay[3]["update"]["content"]["text"] == "It says: remember me"
    assert response["result"] == {"stopReason": "end_turn"}
    messages = server.chat_requests[2].body["messages"]
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]
    assert messages[2]["tool_calls"][0]["function"]["name"] == "read_text_file"
    assert messages[3]["content"] == "remember me"


async def test_list_paginates_and_filters_by_cwd(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    async with openai_server(models=["m1"]) as server:
        async with agent(
            agent_config(server.url, tmp_path / "j.db"), {"list_page_size": 2}
        ) as client:
            await client.initialize()
            ids = [await client.new_session(d) for d in (a, a, a, b)]
            first = await client.call("session/list", {})
            second = await client.call("session/list", {"cursor": first["nextCursor"]})
            only_b = await client.call("session/list", {"cwd": str(b)})
            with pytest.raises(ClientError) as bad:
                await client.call("session/list", {"cursor": "not-a-cursor"})
    seen = [s["sessionId"] for s in first["sessions"] + second["sessions"]]
    assert sorted(seen) == sorted(ids) and len(first["sessions"]) == 2
    assert "nextCursor" not in second
    assert [s["sessionId"] for s in only_b["sessions"]] == [ids[3]]
    assert bad.value.code == -32602


async def test_resume_does_not_replay_and_close_ends_the_session(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, db)) as first:
            await first.initialize()
            sid = await first.new_session(tmp_path)
            await first.prompt(sid, "hello")
        async with agent(agent_config(server.url, db)) as second:
            await second.initialize()
            resumed = await second.call("session/resume", {"sessionId": sid, "cwd": str(tmp_path)})
            replayed = [
                u
                for u in second.updates
                if u["update"]["sessionUpdate"] != "available_commands_update"
            ]
            again = await second.prompt(sid, "still there?")
            assert await second.call("session/close", {"sessionId": sid}) == {}
            after = await second.prompt(sid, "gone?")
            with pytest.raises(ClientError) as unknown:
                await second.call(
                    "session/load",
                    {"sessionId": "sess_nope", "cwd": str(tmp_path), "mcpServers": []},
                )
    assert replayed == []
    assert {o["id"] for o in resumed["configOptions"]} == {"mode", "model", "agents"}
    assert again["result"] == {"stopReason": "end_turn"}
    assert len(server.chat_requests[1].body["messages"]) == 4  # system, hello, answer, question
    assert after["error"]["code"] == -32002
    assert unknown.value.code == -32002


async def test_new_session_offers_modes_and_a_model_option(tmp_path: Path) -> None:
    async with openai_server(models=["m1", "m2"]) as server:
        config = agent_config(server.url, tmp_path / "j.db", models=("m1", "m2"))
        async with agent(config) as client:
            await client.initialize()
            result = await client.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            sid = result["sessionId"]
            changed = await client.call(
                "session/set_config_option", {"sessionId": sid, "configId": "model", "value": "m2"}
            )
            with pytest.raises(ClientError) as bad_model:
                await client.call(
                    "session/set_config_option",
                    {"sessionId": sid, "configId": "model", "value": "zzz"},
                )
            with pytest.raises(ClientError) as bad_mode:
                await client.call("session/set_mode", {"sessionId": sid, "modeId": "yolo"})
    assert result["modes"]["currentModeId"] == "ask"
    assert [m["id"] for m in result["modes"]["availableModes"]] == ["ask", "auto", "read-only"]
    model = next(o for o in result["configOptions"] if o["category"] == "model")
    assert model["type"] == "select" and model["currentValue"] == "m1"
    assert [o["value"] for o in model["options"]] == ["m1", "m2"]
    assert next(o for o in changed["configOptions"] if o["id"] == "model")["currentValue"] == "m2"
    assert bad_model.value.code == -32602 and bad_mode.value.code == -32602


async def test_a_database_from_before_session_owners_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE acp_sessions (session_id TEXT PRIMARY KEY, cwd TEXT NOT NULL,"
            " additional_directories TEXT NOT NULL, title TEXT, mode TEXT NOT NULL,"
            " config TEXT NOT NULL, permissions TEXT NOT NULL, created_at TEXT NOT NULL,"
            " updated_at TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO acp_sessions VALUES ('sess_old', '/w', '[]', 't', 'ask', '{}', '{}',"
            " '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')"
        )
    store = SqliteSessionStore(path)
    try:
        record = await store.get("sess_old")
        assert record is not None and record.owner is None and record.title == "t"
        listed, _ = await store.list(cwd=None, cursor=None, limit=10)
        assert [r.session_id for r in listed] == ["sess_old"]
        assert (await store.list(cwd=None, cursor=None, limit=10, owner="someone"))[0] == []
    finally:
        await store.aclose()


async def test_every_update_of_a_load_comes_before_its_response(tmp_path: Path) -> None:
    """ACP-LOAD-002: the replay and the slash commands are all out when `session/load`
    answers; nothing of the load follows it."""
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="hi")])
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            await client.prompt(sid, "hello")
            client.updates.clear()
            loaded = await client.request(
                "session/load", {"sessionId": sid, "cwd": str(tmp_path), "mcpServers": []}
            )
            before = client.updates[: client.updates_before[loaded["id"]]]
    assert "result" in loaded
    assert [u["update"]["sessionUpdate"] for u in before] == [
        "user_message_chunk",
        "agent_message_chunk",
        "available_commands_update",
    ]


async def test_delete_removes_the_session_and_its_history(tmp_path: Path) -> None:
    db = tmp_path / "j.db"
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="kept"), Reply(text="x" * 2000, chunk_size=1, chunk_delay=0.01)])
        async with agent(agent_config(server.url, db)) as client:
            init = await client.initialize()
            kept = await client.new_session(tmp_path)
            await client.prompt(kept, "keep me")
            gone = await client.new_session(tmp_path)
            running = client.start_request(
                "session/prompt",
                {"sessionId": gone, "prompt": [{"type": "text", "text": "delete me"}]},
            )
            await client.wait_for(lambda: "agent_message_chunk" in client.kinds(gone))
            assert await client.call("session/delete", {"sessionId": gone}) == {}
            stopped = await running
            again = await client.call("session/delete", {"sessionId": gone})
            never = await client.call("session/delete", {"sessionId": "sess_never"})
            listed = await client.call("session/list", {})
            with pytest.raises(ClientError) as load:
                await client.call(
                    "session/load", {"sessionId": gone, "cwd": str(tmp_path), "mcpServers": []}
                )
            with pytest.raises(ClientError) as prompt:
                await client.call(
                    "session/prompt",
                    {"sessionId": gone, "prompt": [{"type": "text", "text": "still there?"}]},
                )
    assert init["agentCapabilities"]["sessionCapabilities"]["delete"] == {}
    assert stopped["result"] == {"stopReason": "cancelled"}
    assert again == {} and never == {}
    assert [s["sessionId"] for s in listed["sessions"]] == [kept]
    assert load.value.code == -32002
    assert prompt.value.code == -32002
    store = SqliteSessionStore(db)
    try:
        assert await store.get(gone) is None and await store.history(gone) == []
        assert await store.history(kept) != []
    finally:
        await store.aclose()
