"""The agent over a real pipe with the fake model server: setup, turns, tools, permissions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.acp.wire import ClientError, agent, agent_config
from tests.router_core.llm_servers import Call, Reply, openai_server


async def test_initialize_advertises_v1_capabilities(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            result = await client.initialize()
    assert result["protocolVersion"] == 1
    caps = result["agentCapabilities"]
    assert caps["loadSession"] is True
    assert caps["mcpCapabilities"] == {"http": True, "sse": True}
    assert caps["sessionCapabilities"] == {
        "list": {},
        "resume": {},
        "close": {},
        "delete": {},
        "additionalDirectories": {},
    }
    assert caps["promptCapabilities"]["embeddedContext"] is True
    assert result["agentInfo"]["name"] == "junction"
    assert "authMethods" not in result


async def test_prompt_streams_text_and_ends_turn(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="Hello there, IDE!", reasoning="thinking hard", chunk_size=3)])
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            response = await client.prompt(sid, "say hi")
    assert response["result"] == {"stopReason": "end_turn"}
    assert client.text() == "Hello there, IDE!"
    assert len(client.of_kind("agent_message_chunk")) > 1
    assert client.text("agent_thought_chunk") == "thinking hard"
    assert client.of_kind("usage_update")[0]["used"] == 15
    info = client.of_kind("session_info_update")
    assert info and info[0]["title"] == "say hi"
    body = server.chat_requests[0].body
    assert body["model"] == "m1" and body["stream"] is True
    assert body["messages"][0]["role"] == "system"
    assert body["messages"][-1] == {"role": "user", "content": "say hi"}


def _answer(option: str) -> object:
    async def handler(params: dict[str, object]) -> dict[str, object]:
        return {"outcome": {"outcome": "selected", "optionId": option}}

    return handler


async def test_write_asks_permission_then_writes_through_the_client(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(
                    tool_calls=[Call("write_text_file", {"path": str(target), "content": "new\n"})]
                ),
                Reply(text="Done."),
            ]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            response = await client.prompt(sid, "write it")
    assert response["result"] == {"stopReason": "end_turn"}
    assert target.read_text() == "new\n"
    asked = [r for r in client.agent_requests if r["method"] == "session/request_permission"]
    assert len(asked) == 1
    tool_call = asked[0]["params"]["toolCall"]
    assert tool_call["kind"] == "edit"
    assert tool_call["content"][0] == {
        "type": "diff",
        "path": str(target),
        "oldText": "old\n",
        "newText": "new\n",
    }
    assert {o["kind"] for o in asked[0]["params"]["options"]} == {
        "allow_once",
        "allow_always",
        "reject_once",
        "reject_always",
    }
    statuses = [u.get("status") for u in client.of_kind("tool_call_update")]
    assert statuses == ["in_progress", "completed"]
    started = client.of_kind("tool_call")[0]
    assert started["status"] == "pending" and started["locations"] == [{"path": str(target)}]
    assert client.of_kind("tool_call_update")[-1]["content"][0]["type"] == "diff"
    tool_message = server.chat_requests[1].body["messages"][-1]
    assert tool_message["role"] == "tool" and "Wrote 4 bytes" in tool_message["content"]
    assert client.text() == "Done."


async def test_reads_need_no_permission(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    async with openai_server(models=["m1"]) as server:
        server.script(
            [Reply(tool_calls=[Call("read_text_file", {"path": "a.txt"})]), Reply(text="ok")]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            await client.prompt(sid, "read")
    assert [r["method"] for r in client.agent_requests] == ["fs/read_text_file"]
    assert client.agent_requests[0]["params"]["path"] == str(tmp_path / "a.txt")
    assert server.chat_requests[1].body["messages"][-1]["content"] == "alpha"


async def test_allow_always_is_remembered_and_reject_fails_the_call(tmp_path: Path) -> None:
    calls = [Call("write_text_file", {"path": f"f{i}.txt", "content": str(i)}) for i in range(3)]
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(tool_calls=[calls[0]]),
                Reply(tool_calls=[calls[1]]),
                Reply(text="1"),
                Reply(tool_calls=[calls[2]]),
                Reply(text="2"),
            ]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            client.handlers["session/request_permission"] = _answer("allow_always")  # type: ignore[assignment]
            sid = await client.new_session(tmp_path)
            await client.prompt(sid, "two writes")
            asked_first = sum(
                r["method"] == "session/request_permission" for r in client.agent_requests
            )
            # A reject_always for another tool name does not apply; this one stays allowed.
            await client.prompt(sid, "third write")
    assert asked_first == 1
    assert sum(r["method"] == "session/request_permission" for r in client.agent_requests) == 1
    assert [(tmp_path / f"f{i}.txt").read_text() for i in range(3)] == ["0", "1", "2"]


async def test_reject_and_unknown_option_fail_the_call_and_the_loop_goes_on(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(tool_calls=[Call("write_text_file", {"path": "x.txt", "content": "x"})]),
                Reply(tool_calls=[Call("write_text_file", {"path": "y.txt", "content": "y"})]),
                Reply(text="gave up"),
            ]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            answers = iter([_answer("reject_once"), _answer("no-such-option")])

            async def permission(params: dict[str, object]) -> object:
                return await next(answers)(params)  # type: ignore[operator]

            client.handlers["session/request_permission"] = permission
            sid = await client.new_session(tmp_path)
            response = await client.prompt(sid, "try")
    assert response["result"] == {"stopReason": "end_turn"}
    assert not (tmp_path / "x.txt").exists() and not (tmp_path / "y.txt").exists()
    failed = [u for u in client.of_kind("tool_call_update") if u.get("status") == "failed"]
    assert len(failed) == 2
    assert "you rejected it" in failed[0]["content"][0]["content"]["text"]
    assert "no-such-option" in failed[1]["content"][0]["content"]["text"]
    messages = server.chat_requests[2].body["messages"]
    assert "Permission denied" in messages[-1]["content"]
    assert client.text() == "gave up"


async def test_unknown_tool_and_invalid_arguments_fail_only_that_call(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(
                    tool_calls=[
                        Call("no_such_tool", {"a": 1}),
                        Call("read_text_file", '{"path": "unterminated'),
                    ]
                ),
                Reply(text="recovered"),
            ]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            response = await client.prompt(sid, "go")
    assert response["result"] == {"stopReason": "end_turn"}
    failed = [u for u in client.of_kind("tool_call_update") if u.get("status") == "failed"]
    assert len(failed) == 2
    tool_messages = [m for m in server.chat_requests[1].body["messages"] if m["role"] == "tool"]
    assert "Unknown tool 'no_such_tool'" in tool_messages[0]["content"]
    assert "read_text_file" in tool_messages[0]["content"]  # the available tools are named
    assert "not valid JSON" in tool_messages[1]["content"]
    assert client.text() == "recovered"


async def test_file_access_is_confined_to_the_session_roots(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (project / "link").symlink_to(tmp_path)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "ok.txt").write_text("fine")
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(
                    tool_calls=[
                        Call("read_text_file", {"path": "../secret.txt"}),
                        Call("read_text_file", {"path": str(outside)}),
                        Call("read_text_file", {"path": "link/secret.txt"}),
                        Call("read_text_file", {"path": str(extra / "ok.txt")}),
                    ]
                ),
                Reply(text="done"),
            ]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(project, additionalDirectories=[str(extra)])
            await client.prompt(sid, "read things")
    reads = [
        r["params"]["path"] for r in client.agent_requests if r["method"] == "fs/read_text_file"
    ]
    assert reads == [str(extra / "ok.txt")]
    tool_messages = [
        m["content"] for m in server.chat_requests[1].body["messages"] if m["role"] == "tool"
    ]
    assert "'..' is not allowed" in tool_messages[0]
    assert "outside the session" in tool_messages[1]
    assert "symlink" in tool_messages[2]
    assert tool_messages[3] == "fine"


async def test_modes_read_only_refuses_and_auto_skips_asking(tmp_path: Path) -> None:
    write = Call("write_text_file", {"path": "m.txt", "content": "m"})
    async with openai_server(models=["m1"]) as server:
        server.script(
            [Reply(tool_calls=[write]), Reply(text="a"), Reply(tool_calls=[write]), Reply(text="b")]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            assert (
                await client.call("session/set_mode", {"sessionId": sid, "modeId": "read-only"})
                == {}
            )
            assert client.of_kind("current_mode_update")[-1] == {
                "sessionUpdate": "current_mode_update",
                "currentModeId": "read-only",
            }
            await client.prompt(sid, "write in read-only")
            assert not (tmp_path / "m.txt").exists()
            result = await client.call(
                "session/set_config_option", {"sessionId": sid, "configId": "mode", "value": "auto"}
            )
            await client.prompt(sid, "write in auto")
    mode = next(o for o in result["configOptions"] if o["id"] == "mode")
    assert mode["currentValue"] == "auto" and mode["category"] == "mode"
    assert (tmp_path / "m.txt").read_text() == "m"
    assert not [r for r in client.agent_requests if r["method"] == "session/request_permission"]
    failed = [u for u in client.of_kind("tool_call_update") if u.get("status") == "failed"]
    assert "read-only" in failed[0]["content"][0]["content"]["text"]


async def test_run_command_goes_through_the_client_terminal(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(tool_calls=[Call("run_command", {"command": "echo", "args": ["hi there"]})]),
                Reply(text="ran"),
            ]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            await client.prompt(sid, "run")
    methods = [r["method"] for r in client.agent_requests]
    assert methods == [
        "session/request_permission",
        "terminal/create",
        "terminal/wait_for_exit",
        "terminal/output",
        "terminal/release",
    ]
    assert client.of_kind("tool_call")[0]["kind"] == "execute"
    done = client.of_kind("tool_call_update")[-1]
    assert done["status"] == "completed" and done["content"][0]["type"] == "terminal"
    assert "hi there" in server.chat_requests[1].body["messages"][-1]["content"]


async def test_without_client_capabilities_no_fs_or_terminal_tools(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize(capabilities={})
            sid = await client.new_session(tmp_path)
            await client.prompt(sid, "hello")
    assert "tools" not in server.chat_requests[0].body


async def test_stop_reasons_follow_finish_reasons_and_the_request_limit(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    read = Call("read_text_file", {"path": "a.txt"})
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(text="cut", finish_reason="length"),
                Reply(text="no", finish_reason="content_filter"),
                Reply(tool_calls=[read]),
                Reply(tool_calls=[read]),
                Reply(tool_calls=[read]),
            ]
        )
        config = agent_config(server.url, tmp_path / "j.db")
        async with agent(config, {"max_model_requests": 2}) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            stops = [(await client.prompt(sid, p))["result"]["stopReason"] for p in ("a", "b", "c")]
    assert stops == ["max_tokens", "refusal", "max_turn_requests"]
    assert len(server.chat_requests) == 4


async def test_every_backend_down_fails_the_prompt_saying_why_once(tmp_path: Path) -> None:
    """No `end_turn` for a turn that got no answer: a JSON-RPC error with the reason, the
    router's retries of the same connect error said once."""
    async with openai_server(models=["m1"]) as server:
        dead_url = server.url
    config = agent_config(dead_url, tmp_path / "j.db")
    async with agent(config) as client:
        await client.initialize()
        sid = await client.new_session(tmp_path)
        response = await client.prompt(sid, "anyone there?")
        later = await client.call("session/list", {})
    assert "result" not in response
    message = response["error"]["message"]
    assert response["error"]["code"] == -32603
    assert message.startswith("The model request failed: backend 'fake': cannot connect")
    assert message.count("Cannot connect to host") == 1, message
    assert "agent_message_chunk" not in client.kinds(sid)
    assert later["sessions"][0]["title"] == "anyone there?"


async def test_slash_commands_switch_model_and_mode_and_list_tools(tmp_path: Path) -> None:
    async with openai_server(models=["m1", "m2"]) as server:
        config = agent_config(server.url, tmp_path / "j.db", models=("m1", "m2"))
        async with agent(config) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            await client.wait_for(lambda: bool(client.of_kind("available_commands_update")))
            commands = client.of_kind("available_commands_update")[0]["availableCommands"]
            listing = await client.prompt(sid, "/model")
            switched = await client.prompt(sid, "/model m2")
            await client.prompt(sid, "/mode auto")
            await client.prompt(sid, "/tools")
            await client.prompt(sid, "/agents")
            await client.prompt(sid, "now a real question")
    assert {c["name"] for c in commands} >= {"model", "mode", "tools", "agents"}
    assert (
        listing["result"]["stopReason"] == "end_turn"
        and switched["result"]["stopReason"] == "end_turn"
    )
    text = client.text()
    assert "- m1 (current)" in text and "- m2" in text
    assert "Model set to m2." in text and "Mode set to auto." in text
    assert "`read_text_file`" in text and "No A2A agents" in text
    model_option = next(
        o for o in client.of_kind("config_option_update")[0]["configOptions"] if o["id"] == "model"
    )
    assert model_option["currentValue"] == "m2" and model_option["category"] == "model"
    assert client.of_kind("current_mode_update")[-1]["currentModeId"] == "auto"
    assert len(server.chat_requests) == 1
    body = server.chat_requests[0].body
    assert body["model"] == "m2"
    assert [m["content"] for m in body["messages"] if m["role"] == "user"] == [
        "now a real question"
    ]


async def test_run_command_with_one_line_runs_it_through_the_shell(tmp_path: Path) -> None:
    """A model's `{"command": "echo hi && echo there"}` is a shell line (`sh -c`), as the tool's
    description says, not a program named `echo hi && echo there`."""
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(tool_calls=[Call("run_command", {"command": "echo hi && echo there"})]),
                Reply(text="ran"),
            ]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            await client.prompt(sid, "run")
    created = next(r for r in client.agent_requests if r["method"] == "terminal/create")
    assert created["params"]["command"] == "sh"
    assert created["params"]["args"] == ["-c", "echo hi && echo there"]
    assert client.of_kind("tool_call_update")[-1]["status"] == "completed"
    assert "hi\nthere\n" in server.chat_requests[1].body["messages"][-1]["content"]


async def test_the_clients_terminal_error_details_reach_the_model(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script(
            [
                Reply(tool_calls=[Call("run_command", {"command": "nope", "args": ["x"]})]),
                Reply(text="it failed"),
            ]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:

            async def refuse(params: dict[str, Any]) -> dict[str, Any]:
                raise ClientError(
                    {"code": -32603, "message": "Internal error", "data": "spawn nope ENOENT"}
                )

            client.handlers["terminal/create"] = refuse
            await client.initialize()
            sid = await client.new_session(tmp_path)
            await client.prompt(sid, "run")
    told = server.chat_requests[1].body["messages"][-1]["content"]
    assert "Internal error" in told and "spawn nope ENOENT" in told
    assert client.of_kind("tool_call_update")[-1]["status"] == "failed"
