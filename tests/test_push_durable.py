"""Push notifications survive the process: a delivery still pending when the process is
killed (SIGKILL, nothing flushed at exit) is in the store's outbox, and the next process
delivers it, in order, with the task id and sequence a receiver dedupes on. With several
replicas on one PostgreSQL database, each pending delivery goes to one of them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from a2a.pgstore import PgTaskStore
from a2a.push import PushDispatcher
from a2a.settings import PushSettings
from a2a.store import OutboxRow, SqliteTaskStore
from tests.transports.servers import serve_app

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 5

SENDER = """
import asyncio, sys, orjson
from a2a.pgstore import PgTaskStore
from a2a.push import PushDispatcher
from a2a.settings import PushSettings
from a2a.store import SqliteTaskStore

async def main(where, hook, events):
    store = PgTaskStore(where) if where.startswith("postgresql://") else SqliteTaskStore(where)
    await store.open()
    settings = PushSettings(
        allow_insecure_loopback=True, lease=1.0, resume_interval=0.2, backoff=0.2,
        max_backoff=0.5, max_attempts=1000, timeout=5,
    )
    push = PushDispatcher(settings, store)
    push.start()
    if hook != "-":
        config = {"id": "c1", "url": hook, "token": "tok"}
        await store.save_push("alice", "task-1", config)
        for n in range(events):
            event = {"statusUpdate": {"taskId": "task-1", "n": n}}
            push.notify("task-1", [config], event, {})
        await store.flush()
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def _sender(where: str, hook: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", SENDER, where, hook, str(EVENTS)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


class Receiver:
    """A webhook that answers `status` and keeps every request's headers."""

    def __init__(self) -> None:
        self.status = 200
        self.seen: list[dict[str, str]] = []

    async def endpoint(self, request: Request) -> Response:
        await request.body()
        self.seen.append(dict(request.headers))
        return Response(status_code=self.status)


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "junction.db")


async def test_pending_deliveries_survive_sigkill_and_arrive_after_a_restart(where: str) -> None:
    hooks = Receiver()
    app = Starlette(routes=[Route("/hook", hooks.endpoint, methods=["POST"])])
    async with serve_app(app) as base:
        hooks.status = 503  # the deliveries are retrying when the process dies
        first = _sender(where, f"{base}/hook")
        try:
            for _ in range(200):
                if hooks.seen:
                    break
                await asyncio.sleep(0.05)
            assert hooks.seen
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        assert first.returncode == -signal.SIGKILL
        hooks.status = 200
        hooks.seen.clear()
        second = _sender(where, "-")  # a new process on the same store, with no new events
        try:
            for _ in range(400):
                if len({h["x-junction-sequence"] for h in hooks.seen}) >= EVENTS:
                    break
                await asyncio.sleep(0.05)
        finally:
            second.send_signal(signal.SIGKILL)
            second.wait()
    headers = hooks.seen
    assert {h["x-junction-task-id"] for h in headers} == {"task-1"}
    assert all(h["x-a2a-notification-token"] == "tok" for h in headers)
    sequences = [int(h["x-junction-sequence"]) for h in headers]
    # Every event arrived after the restart, in the order it was sent; a redelivery (at least
    # once) repeats a sequence the receiver has seen, never a new one out of order.
    distinct = list(dict.fromkeys(sequences))
    assert len(distinct) == EVENTS
    assert distinct == sorted(distinct)


async def test_replicas_each_take_a_pending_delivery_once(postgres_url: str) -> None:
    stores = [PgTaskStore(postgres_url) for _ in range(3)]
    for store in stores:
        await store.open()
    taken: dict[str, list[int]] = {f"replica-{i}": [] for i in range(3)}

    async def replica(i: int, store: PgTaskStore) -> None:
        while rows := await store.claim_push(f"replica-{i}", 1e12, 5):
            taken[f"replica-{i}"] += [row.seq for row in rows]
            await asyncio.sleep(0)

    try:
        rows = [OutboxRow(f"task-{n}", "c1", n, b"{}", 0, "dead", 0.0) for n in range(1, 61)]
        await stores[0].enqueue_push(rows)
        await asyncio.gather(*(replica(i, store) for i, store in enumerate(stores)))
        again = await stores[0].claim_push("late", 1e12, 100)
    finally:
        for store in stores:
            await store.close()
    every = [seq for seqs in taken.values() for seq in seqs]
    assert sorted(every) == list(range(1, 61))  # each row went to exactly one replica
    assert again == []  # leased rows are not handed out twice


async def test_a_webhook_is_resumed_in_order_behind_a_row_still_leased(tmp_path: Path) -> None:
    store = SqliteTaskStore(tmp_path / "j.db")
    await store.open()
    try:
        await store.enqueue_push(
            [
                OutboxRow("task-1", "c1", 1, b"{}", 3, "busy", 1e12),  # still being retried
                OutboxRow("task-1", "c1", 2, b"{}", 0, "dead", 0.0),
                OutboxRow("task-2", "c1", 3, b"{}", 0, "dead", 0.0),
            ]
        )
        claimed = await store.claim_push("me", 1e12, 10)
    finally:
        await store.close()
    # task-1's second notification waits for its first; another task's goes ahead.
    assert [(r.task_id, r.seq) for r in claimed] == [("task-2", 3)]


async def test_a_delivered_notification_leaves_the_outbox(tmp_path: Path) -> None:
    store = SqliteTaskStore(tmp_path / "j.db")
    await store.open()
    push = PushDispatcher(PushSettings(allow_insecure_loopback=True, lease=0.01), store)
    hooks = Receiver()
    app = Starlette(routes=[Route("/hook", hooks.endpoint, methods=["POST"])])
    try:
        async with serve_app(app) as base:
            push.notify("task-9", [{"id": "c1", "url": f"{base}/hook"}], {"n": 1}, {})
            for _ in range(100):
                if push.delivered:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.05)
            await store.flush()
            left = await store.claim_push("other", 1e12, 10)
    finally:
        await push.close()
        await store.close()
    assert [h["x-junction-task-id"] for h in hooks.seen] == ["task-9"]
    assert left == []
