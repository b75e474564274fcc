"""The hub's `junction/via` hop path goes to the agent (loops between hubs are stopped by it) but
never comes back to the caller: an agent that echoes the message in its task history, status or
a reply shows the caller the message as the caller sent it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.a2a.harness import rpc as call
from tests.a2a.harness import running_hub, sdk_agent, send_params, task_of

VIA = "junction/via"


def metadatas(value: Any) -> list[dict[str, Any]]:
    """Every `metadata` object anywhere in `value`."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if isinstance(value.get("metadata"), dict):
            found.append(value["metadata"])
        for item in value.values():
            found.extend(metadatas(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(metadatas(item))
    return found


async def test_the_hop_path_is_not_shown_to_the_caller(tmp_path: Path) -> None:
    with sdk_agent("echo") as url:
        async with running_hub({"echo": url}, tmp_path / "hub.db") as (hub, base):
            sent = await call(base, "SendMessage", send_params("hello", "echo"))
            task = task_of([sent["result"]])
            got = await call(base, "GetTask", {"id": task["id"]})
            streamed = await call(base, "SendStreamingMessage", send_params("again", "echo"))
            stored = await hub.store.get_task(task["id"], "anonymous")
    for answer in (sent, got, streamed):
        assert all(VIA not in metadata for metadata in metadatas(answer)), answer
    assert stored is not None
    assert all(VIA not in m for m in metadatas(stored.task))
    # The caller's own metadata survives.
    history = got["result"]["history"]
    assert any(m.get("metadata", {}).get("agent") == "echo" for m in history), history
