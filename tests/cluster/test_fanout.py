"""`a2a.fanout` against a real redis-server, in-process, for what the process tests cannot
arrange: a relay that stalled past its lease (another replica took the task) publishes nothing
more, replicas sweeping lapsed leases at the same time take each task once, and a status update
that a taken-over task's snapshot already showed is not shared twice."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from a2a.events import Binding
from a2a.fanout import PREFIX, RedisFanout
from a2a.relay import TaskRelay
from a2a.store import TaskRecord
from tests.test_limits_redis import RedisServer


class Host:
    """The little of a hub a relay touches when it only shares."""

    def __init__(self, fanout: RedisFanout) -> None:
        self.relays: dict[str, TaskRelay] = {}
        self.fanout = fanout


def relay_of(fanout: RedisFanout, task_id: str) -> TaskRelay:
    task = {"id": task_id, "contextId": "c", "status": {"state": "TASK_STATE_WORKING"}}
    record = TaskRecord(task_id, "alice", "agent", "remote", "c", "rc", task)
    return TaskRelay(Host(fanout), None, Binding("agent", "alice", task_id, "remote"), record)  # type: ignore[arg-type]


def update(n: int) -> dict[str, Any]:
    return {"statusUpdate": {"taskId": "t", "status": {"state": "TASK_STATE_WORKING"}, "n": n}}


async def test_a_relay_that_lost_its_lease_publishes_nothing_more(redis: RedisServer) -> None:
    a = RedisFanout(redis.url, "A", lease_seconds=5)
    b = RedisFanout(redis.url, "B", lease_seconds=5)
    try:
        relay = relay_of(a, "t")
        await a.share(relay, update(1))
        assert redis.command(b"DEL", f"{PREFIX}lease:t".encode()) == b":1"  # A stalled
        assert await b.join(relay.record) is None  # B claimed the task: it follows the agent
        await a.share(relay, update(2))
        length = redis.command(b"XLEN", f"{PREFIX}events:t".encode())
        taken = relay_of(b, "t")
        await b.share(taken, update(3))
        entries = await b.redis.xrange(f"{PREFIX}events:t")
        held = set(a.held), set(b.held)
    finally:
        await a.close()
        await b.close()
    assert relay.unshared and held == (set(), {"t"})
    assert length == b":1"  # A's second event was refused
    assert [e[1][b"e"] for e in entries][-1].endswith(b'"n":3}}')


async def test_replicas_sweeping_together_take_each_lapsed_task_once(redis: RedisServer) -> None:
    tasks = [f"task-{i}" for i in range(30)]
    for task_id in tasks:  # relayed by a replica that died: in the set, lapsed, no lease
        redis.command(b"ZADD", f"{PREFIX}relays".encode(), b"0", task_id.encode())
    sweepers = [RedisFanout(redis.url, f"R{i}", lease_seconds=5) for i in range(3)]
    try:
        rounds = await asyncio.gather(
            *(
                s._script("sweep", [s.key("relays")], [s.replica, s.lease_ms, PREFIX, 7])
                for _ in range(5)
                for s in sweepers
            )
        )
        owners = {t: redis.command(b"GET", f"{PREFIX}lease:{t}".encode()) for t in tasks}
    finally:
        for sweeper in sweepers:
            await sweeper.close()
    won = [task.decode() for taken in rounds for task in taken]
    assert sorted(won) == sorted(tasks)  # every lapsed task taken, none twice
    assert all(owner is not None and owner.startswith(b"$2\r\nR") for owner in owners.values())


def said(text: str, state: str = "TASK_STATE_WORKING") -> dict[str, Any]:
    message = {"messageId": f"m-{text}", "role": "ROLE_AGENT", "parts": [{"text": text}]}
    return {"state": state, "message": message}


async def test_a_status_update_the_takeover_snapshot_showed_is_not_shared_again(
    redis: RedisServer,
) -> None:
    """An a2a-sdk agent's SubscribeToTask snapshot can already hold an update that then comes
    as an event too (it taps its queue before it reads the task): followers see it once."""
    fanout = RedisFanout(redis.url, "B", lease_seconds=5)
    try:
        relay = relay_of(fanout, "t")
        assert relay.record is not None
        relay.shared_task = dict(relay.record.task, status=said("step 1"))
        relay.record.task = dict(relay.record.task, status=said("step 2"))
        await fanout.share(relay, {"task": relay.record.task}, resync=True)  # new: shared
        await fanout.share(relay, {"statusUpdate": {"taskId": "t", "status": said("step 2")}})
        relay.record.task = dict(relay.record.task, status=said("step 3"))
        await fanout.share(relay, {"statusUpdate": {"taskId": "t", "status": said("step 3")}})
        done = said("step 3", "TASK_STATE_COMPLETED")  # same message, a new state: shared
        relay.record.task = dict(relay.record.task, status=done)
        await fanout.share(relay, {"statusUpdate": {"taskId": "t", "status": done}})
        entries = await fanout.redis.xrange(f"{PREFIX}events:t")
    finally:
        await fanout.close()
    shared = [orjson.loads(fields[b"e"]) for _, fields in entries]
    assert [
        (next(iter(e)), e.get("statusUpdate", e.get("task"))["status"]["message"]["parts"])
        for e in shared
    ] == [
        ("task", [{"text": "step 2"}]),
        ("statusUpdate", [{"text": "step 3"}]),
        ("statusUpdate", [{"text": "step 3"}]),
    ]
    assert shared[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
