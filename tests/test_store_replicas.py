"""Two `junction --mode serve` replicas on one PostgreSQL database, an a2a-sdk agent behind
both: a task started through replica A is read, followed (SubscribeToTask) and cancelled
through replica B, and A's own stream sees the cancellation; replica A killed (SIGKILL)
mid-stream does not take the task with it: B still answers for it."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.a2a.harness import rpc, sdk_agent, send_params
from tests.test_bridge import start_serve

HEADERS = {"A2A-Version": "1.0", "Accept": "text/event-stream"}


async def _events(
    http: httpx.AsyncClient, url: str, method: str, params: Any
) -> AsyncIterator[Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    async with http.stream("POST", url, json=body, headers=HEADERS) as response:
        if not response.headers["content-type"].startswith("text/event-stream"):
            raise AssertionError(f"{method}: {(await response.aread()).decode()}")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                yield orjson.loads(line[5:])["result"]


def _state(event: Any) -> str:
    for kind in ("task", "statusUpdate"):
        if kind in event:
            return str(event[kind]["status"]["state"])
    return ""


async def test_a_task_started_on_one_replica_is_followed_and_cancelled_on_another(
    tmp_path: Path, postgres_url: str
) -> None:
    with sdk_agent("waiter") as agent:
        config = tmp_path / "junction.yaml"
        config.write_text(
            f'store: {{url: "{postgres_url}"}}\na2a_agents: {{waiter: {{url: "{agent}"}}}}\n'
        )
        a, port_a = await start_serve(config)
        b, port_b = await start_serve(config)
        base_a, base_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                stream_a = _events(
                    http, f"{base_a}/a2a", "SendStreamingMessage", send_params("wait", "waiter")
                )
                first = await anext(stream_a)
                task_id = first["task"]["id"]
                read_on_b = await rpc(base_b, "GetTask", {"id": task_id})
                stream_b = _events(http, f"{base_b}/a2a", "SubscribeToTask", {"id": task_id})
                followed = [await anext(stream_b), await anext(stream_b)]
                cancelled = await rpc(base_b, "CancelTask", {"id": task_id})
                end_b = [_state(e) async for e in stream_b]
                end_a = [_state(e) async for e in stream_a]
                read_on_a = await rpc(base_a, "GetTask", {"id": task_id})
        finally:
            await a.kill()
            await b.kill()
    assert read_on_b["result"]["status"]["state"] == "TASK_STATE_WORKING"
    assert all(_state(e) == "TASK_STATE_WORKING" for e in followed)
    assert cancelled["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    assert end_b[-1] == "TASK_STATE_CANCELED" and end_a[-1] == "TASK_STATE_CANCELED"
    assert read_on_a["result"]["status"]["state"] == "TASK_STATE_CANCELED"


async def test_a_replica_killed_mid_stream_leaves_the_task_to_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    with sdk_agent("waiter") as agent:
        config = tmp_path / "junction.yaml"
        config.write_text(
            f'store: {{url: "{postgres_url}"}}\na2a_agents: {{waiter: {{url: "{agent}"}}}}\n'
        )
        a, port_a = await start_serve(config)
        b, port_b = await start_serve(config)
        base_b = f"http://127.0.0.1:{port_b}"
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                stream_a = _events(
                    http,
                    f"http://127.0.0.1:{port_a}/a2a",
                    "SendStreamingMessage",
                    send_params("wait", "waiter"),
                )
                task_id = (await anext(stream_a))["task"]["id"]
                a.process.send_signal(signal.SIGKILL)
                await a.exit_code()
                resumed = _events(http, f"{base_b}/a2a", "SubscribeToTask", {"id": task_id})
                after = [await anext(resumed), await anext(resumed)]
                cancelled = await rpc(base_b, "CancelTask", {"id": task_id})
                ended = [_state(e) async for e in resumed]
        finally:
            await a.kill()
            await b.kill()
    assert after[0]["task"]["id"] == task_id
    assert _state(after[1]) == "TASK_STATE_WORKING"
    assert cancelled["result"]["status"]["state"] == "TASK_STATE_CANCELED"
    assert ended[-1] == "TASK_STATE_CANCELED"
