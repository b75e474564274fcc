"""ACP's remote transport on `junction --mode serve`, driven by the official ACP Python SDK 0.12.1
(`acp.http`, `acp.ws`, from its own venv, a separate process) and by raw HTTP for what the SDK
does not do (resume with a cursor) and for bad input.

The server is the real `junction --mode serve` process with an API key and the fake OpenAI
server as its backend (tests/router_core/llm_servers.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers import cache_dir
from tests.router_core.llm_servers import Call, Fault, OpenAIServer, Reply, openai_server
from tests.test_bridge import KEY, Proc, serve_config, start_serve

PEER = Path(__file__).with_name("acp_remote_peer.py")
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON = {**AUTH, "Content-Type": "application/json"}


def sdk_python() -> Path:
    path = cache_dir() / "peers" / "agent-client-protocol-http" / "bin" / "python"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `bash .ci/run` once")
    return path


async def run_peer(tmp_path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    spec_file = tmp_path / f"spec-{spec['scenario']}-{spec['transport']}.json"
    spec_file.write_text(json.dumps({"token": KEY, "cwd": str(tmp_path), **spec}))
    process = await asyncio.create_subprocess_exec(
        str(sdk_python()),
        "-I",  # not tests/ first on sys.path: tests/acp would shadow the SDK's `acp`
        str(PEER),
        str(spec_file),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    async with asyncio.timeout(90):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    return report


@pytest.fixture
async def model() -> AsyncIterator[OpenAIServer]:
    async with openai_server(models=["m1"]) as server:
        yield server


@pytest.fixture
async def served(tmp_path: Path, model: OpenAIServer) -> AsyncIterator[tuple[Proc, int]]:
    proc, port = await start_serve(serve_config(tmp_path, model))
    yield proc, port
    await proc.kill()


def text_of(updates: list[dict[str, Any]]) -> str:
    return "".join(
        u["content"]["text"] for u in updates if u.get("sessionUpdate") == "agent_message_chunk"
    )


@pytest.mark.parametrize("transport", ["http", "ws"])
async def test_sdk_client_runs_a_session_and_loads_it_on_a_new_connection(
    tmp_path: Path, model: OpenAIServer, served: tuple[Proc, int], transport: str
) -> None:
    target = tmp_path / "out.txt"
    model.script(
        [
            Reply(text="Hello from far away."),
            Reply(tool_calls=[Call("write_text_file", {"path": str(target), "content": "x"})]),
            Reply(text="Written."),
            Reply(text="Once more."),
        ]
    )
    _, port = served
    scheme = "ws" if transport == "ws" else "http"
    url = f"{scheme}://127.0.0.1:{port}/acp"
    report = await run_peer(tmp_path, {"url": url, "transport": transport, "scenario": "session"})

    assert report["init"]["protocolVersion"] == 1
    assert report["stops"] == ["end_turn", "end_turn", "end_turn"]
    assert text_of(report["updates"]).startswith("Hello from far away.")
    assert report["permissions"] == 1
    assert report["writes"] == [str(target)]
    assert target.read_text() == "x"
    assert "Hello from far away." in text_of(report["replayed"])  # history from the store
    assert text_of(report["after"]) == "Once more."


async def test_dropped_stream_resumes_from_its_cursor_and_a_retried_prompt_runs_once(
    tmp_path: Path, model: OpenAIServer, served: tuple[Proc, int]
) -> None:
    story = " ".join(f"word{i}" for i in range(60))
    model.script([Reply(text=story, chunk_size=3)])
    _, port = served
    url = f"http://127.0.0.1:{port}/acp"
    spec = {"url": url, "transport": "http", "scenario": "resume", "drop_after": 3}
    report = await run_peer(tmp_path, spec)

    cursors = [int(cursor) for cursor, _ in report["events"]]
    assert cursors == list(range(1, len(cursors) + 1))  # no gap, no duplicate
    messages = [message for _, message in report["events"]]
    updates = [m["params"]["update"] for m in messages if m.get("method") == "session/update"]
    assert text_of(updates) == story
    answers = [m for m in messages if m.get("id") == 3]
    assert answers == [{"jsonrpc": "2.0", "id": 3, "result": {"stopReason": "end_turn"}}]
    assert len(model.chat_requests) == 1  # the retried prompt was not run again
    # session/new, the prompt, its retry (a duplicate)
    assert report["posts"] == [[202, None], [202, None], [202, "true"]]
    assert report["resumed_status"] == 200
    assert report["beyond_status"] == 409
    assert "cannot resume" in report["beyond_body"]["error"]
    assert report["delete_status"] == 202
    assert report["after_delete_status"] == 404


async def test_bad_requests_on_a_live_connection_are_refused_and_the_server_stays_up(
    tmp_path: Path, model: OpenAIServer, served: tuple[Proc, int]
) -> None:
    model.script([Reply(fault=Fault.hang())])
    _, port = served
    url = f"http://127.0.0.1:{port}/acp"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(url, json=init)  # the access guard: no key
        assert refused.status_code == 401
        answer = await http.post(url, json=init, headers=AUTH)
        assert answer.json()["result"]["protocolVersion"] == 1
        mine = {**AUTH, "Acp-Connection-Id": answer.headers["acp-connection-id"]}
        new = {"jsonrpc": "2.0", "id": 2, "method": "session/new"}
        new["params"] = {"cwd": str(tmp_path), "mcpServers": []}
        sse = {**mine, "Accept": "text/event-stream"}
        async with http.stream("GET", url, headers=sse) as live:
            assert (await http.post(url, json=new, headers=mine)).status_code == 202
            lines = live.aiter_lines()
            async for line in lines:
                if line.startswith("data:") and '"id":2' in line:
                    sid = json.loads(line[5:])["result"]["sessionId"]
                    break
            prompt = {"jsonrpc": "2.0", "id": 3, "method": "session/prompt"}
            prompt["params"] = {"sessionId": sid, "prompt": [{"type": "text", "text": "hang"}]}
            scoped = {**mine, "Acp-Session-Id": sid}
            assert (await http.post(url, json=prompt, headers=scoped)).status_code == 202
            other = {**prompt, "params": {**prompt["params"], "prompt": []}}
            conflict = await http.post(url, json=other, headers=scoped)
            assert conflict.status_code == 409  # id 3 is still running another prompt
            assert "in use" in conflict.json()["error"]
            ghost = {**prompt, "id": 4, "params": {**prompt["params"], "sessionId": "sess-x"}}
            unknown = await http.post(url, json=ghost, headers={**mine, "Acp-Session-Id": "sess-x"})
            assert unknown.status_code == 404
            mismatch = await http.post(url, json=ghost, headers=scoped)
            assert mismatch.status_code == 400
        health = await http.get(f"http://127.0.0.1:{port}/health/live")
        assert health.status_code == 200
        assert (await http.delete(url, headers=mine)).status_code == 202
