"""Bad input and cancellation: clear errors, proper stops, and the agent stays up."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from tests.acp.wire import agent, agent_config
from tests.router_core.llm_servers import Call, Reply, openai_server


async def test_unknown_session_and_prompt_before_new(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            before = await client.prompt("sess_nothing", "hi")
            await client.new_session(tmp_path)
            unknown = await client.prompt("sess_other", "hi")
            still_alive = await client.call("session/list", {})
    assert before["error"]["code"] == -32002
    assert "call session/new or session/load first" in before["error"]["message"]
    assert unknown["error"]["code"] == -32002 and "sess_other" in unknown["error"]["message"]
    assert len(still_alive["sessions"]) == 1


async def test_malformed_content_blocks_and_params_are_invalid_params(tmp_path: Path) -> None:
    bad_prompts: list[Any] = [
        [{"type": "text"}],
        [{"type": "video", "url": "x"}],
        [{"text": "no type"}],
        [{"type": "image", "data": "!!!notbase64!!!", "mimeType": "image/png"}],
        [{"type": "image", "data": "aGVsbG8=", "mimeType": "text/plain"}],
        [{"type": "audio", "data": "aGVsbG8=", "mimeType": "audio/wav"}],
        [],
        "not a list",
    ]
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            replies = [
                await client.request("session/prompt", {"sessionId": sid, "prompt": p})
                for p in bad_prompts
            ]
            relative = await client.request(
                "session/new", {"cwd": "relative/dir", "mcpServers": []}
            )
            ok = await client.prompt(sid, "fine after all that")
    assert [r["error"]["code"] for r in replies] == [-32602] * len(bad_prompts)
    assert "audio is not supported" in replies[5]["error"]["message"]
    assert relative["error"]["code"] == -32602 and "absolute" in relative["error"]["message"]
    assert ok["result"] == {"stopReason": "end_turn"}
    assert len(server.chat_requests) == 1


async def test_unknown_methods_and_notifications(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            await client.notify("_vendor/unknown_notification", {"x": 1})
            await client.notify("session/unknown_notification", {"sessionId": "x"})
            ext = await client.request("_vendor/ext_method", {})
            unknown = await client.request("session/unknown_method", {"sessionId": "x"})
            still = await client.call("session/list", {})
    assert ext["error"]["code"] == -32601
    assert unknown["error"]["code"] == -32601
    assert still == {"sessions": []}


async def test_cancel_mid_stream_closes_the_model_stream(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="x" * 400, chunk_size=1, chunk_delay=0.01), Reply(text="next")])
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            running = client.start_request(
                "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "long"}]}
            )
            await client.wait_for(lambda: len(client.of_kind("agent_message_chunk")) >= 3)
            await client.notify("session/cancel", {"sessionId": sid})
            response = await running
            await server.wait_disconnect(timeout=10)
            partial = client.text()
            after = await client.prompt(sid, "again")
    assert response["result"] == {"stopReason": "cancelled"}
    assert 3 <= len(partial) < 400
    assert after["result"] == {"stopReason": "end_turn"}
    # The partial answer stays in the history the model sees next.
    messages = server.chat_requests[1].body["messages"]
    assert messages[2]["role"] == "assistant" and messages[2]["content"] == partial


async def test_cancel_request_for_the_prompt_answers_cancelled(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="y" * 400, chunk_size=1, chunk_delay=0.01)])
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            running = client.start_request(
                "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "long"}]}
            )
            await client.wait_for(lambda: bool(client.of_kind("agent_message_chunk")))
            prompt_id = client._next
            await client.notify("$/cancel_request", {"requestId": prompt_id})
            response = await running
    assert response["result"] == {"stopReason": "cancelled"}


async def test_cancel_while_the_client_never_answers_permission(tmp_path: Path) -> None:
    never = asyncio.Event()

    async def hang(params: dict[str, Any]) -> Any:
        await never.wait()

    async with openai_server(models=["m1"]) as server:
        server.script(
            [Reply(tool_calls=[Call("write_text_file", {"path": "w.txt", "content": "w"})])]
        )
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            client.handlers["session/request_permission"] = hang
            sid = await client.new_session(tmp_path)
            running = client.start_request(
                "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "w"}]}
            )
            await client.wait_for(
                lambda: any(
                    r["method"] == "session/request_permission" for r in client.agent_requests
                )
            )
            await client.notify("session/cancel", {"sessionId": sid})
            response = await running
            listed = await client.call("session/list", {})
    assert response["result"] == {"stopReason": "cancelled"}
    assert not (tmp_path / "w.txt").exists()
    failed = client.of_kind("tool_call_update")[-1]
    assert failed["status"] == "failed"
    assert listed["sessions"][0]["sessionId"] == sid


async def test_second_prompt_while_one_runs_is_rejected(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        server.script([Reply(text="z" * 100, chunk_size=1, chunk_delay=0.01)])
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            first = client.start_request(
                "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "one"}]}
            )
            await client.wait_for(lambda: bool(client.of_kind("agent_message_chunk")))
            second = await client.prompt(sid, "two")
            first_response = await first
    assert second["error"]["code"] == -32600
    assert "already running a prompt" in second["error"]["message"]
    assert first_response["result"] == {"stopReason": "end_turn"}
    assert client.text() == "z" * 100


async def test_a_20_mib_image_reaches_the_model(tmp_path: Path) -> None:
    raw = bytes(range(256)) * (20 * 1024 * 1024 // 256)
    data = base64.b64encode(raw).decode()
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            response = await client.request(
                "session/prompt",
                {
                    "sessionId": sid,
                    "prompt": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image", "data": data, "mimeType": "image/png"},
                    ],
                },
            )
    assert response["result"] == {"stopReason": "end_turn"}
    content = server.chat_requests[0].body["messages"][-1]["content"]
    assert content[1]["image_url"]["url"] == f"data:image/png;base64,{data}"


async def test_an_image_over_the_limit_is_refused_clearly(tmp_path: Path) -> None:
    data = base64.b64encode(b"\0" * 4096).decode()
    async with openai_server(models=["m1"]) as server:
        async with agent(
            agent_config(server.url, tmp_path / "j.db"), {"max_image_bytes": 1024}
        ) as client:
            await client.initialize()
            sid = await client.new_session(tmp_path)
            response = await client.request(
                "session/prompt",
                {
                    "sessionId": sid,
                    "prompt": [{"type": "image", "data": data, "mimeType": "image/png"}],
                },
            )
    assert response["error"]["code"] == -32602
    assert "4096 bytes; the limit is 1024 bytes" in response["error"]["message"]


async def test_an_mcp_server_that_fails_to_start_is_reported_not_fatal(tmp_path: Path) -> None:
    async with openai_server(models=["m1"]) as server:
        async with agent(agent_config(server.url, tmp_path / "j.db")) as client:
            await client.initialize()
            sid = await client.new_session(
                tmp_path,
                mcpServers=[
                    {
                        "name": "broken",
                        "command": str(tmp_path / "no-such-binary"),
                        "args": [],
                        "env": [],
                    }
                ],
            )
            response = await client.prompt(sid, "hello")
    assert response["result"] == {"stopReason": "end_turn"}
    assert "MCP server failed to start: broken" in client.text()
    assert client.text().endswith("Hello from the fake model.")
