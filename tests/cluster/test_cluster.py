"""Three `junction --mode serve` replicas as one A2A hub: PostgreSQL (tasks, push outbox),
Redis (`cluster.redis_url`: task events fan out, relay leases), HAProxy in front (round robin,
no stickiness), the a2a-sdk as agent and client. A task streamed through one replica is read,
listed and followed through the others; the replica relaying it is killed (SIGKILL) with the
agent still working, and the client's resubscribe through the balancer gets every remaining
event once, in order, from the replica that took the task over; each webhook is delivered
once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.a2a.harness import free_port, webhook_receiver
from tests.cluster.harness import (
    HANG_GUARD,
    Replica,
    cluster_client,
    haproxy,
    replica_config,
    ticker_agent,
)
from tests.test_limits_redis import RedisServer

pytestmark = pytest.mark.timeout(120)


def text(event: dict[str, Any]) -> str:
    """The status message's text of a Task or a status update ('' for none)."""
    body = event.get("task") or event.get("statusUpdate") or {}
    parts = (body.get("status", {}).get("message") or {}).get("parts") or [{}]
    return str(parts[0].get("text", ""))


def state(event: dict[str, Any]) -> str:
    body = event.get("task") or event.get("statusUpdate") or {}
    return str(body.get("status", {}).get("state", ""))


async def balanced_next(http: httpx.AsyncClient, lb: str, order: list[str], avoid: str) -> None:
    """Turn the balancer's round robin so that the next request goes to a replica other than
    `avoid` (nothing else is sending meanwhile)."""
    while True:
        answered = (await http.get(f"{lb}/health/live")).headers["x-junction-replica"]
        if order[(order.index(answered) + 1) % len(order)] != avoid:
            return


async def subscribes_at(http: httpx.AsyncClient, agent: str) -> int:
    """How many SubscribeToTask calls the ticker agent has taken its snapshot for."""
    return int((await http.get(f"{agent}/subscribes")).json()["subscribes"])


async def wait_for(check: Any) -> Any:
    async with asyncio.timeout(HANG_GUARD):
        while not (found := await check()):  # noqa: ASYNC110 (another process's state)
            await asyncio.sleep(0.05)
        return found


async def test_one_task_across_three_replicas_and_a_killed_relay(
    tmp_path: Path, postgres_url: str, redis: RedisServer
) -> None:
    with ticker_agent() as agent:
        config = replica_config(tmp_path / "junction.json", postgres_url, redis.url, agent)
        replicas = [Replica(f"r{i}", free_port(), config) for i in (1, 2, 3)]
        order = [r.name for r in replicas]
        await asyncio.gather(*(r.start() for r in replicas))
        try:
            async with (
                haproxy(tmp_path, replicas) as lb,
                webhook_receiver() as (hooks, hook_url),
                cluster_client(lb) as client,
                httpx.AsyncClient(timeout=10) as http,
            ):

                async def release(upto: int) -> None:
                    await http.post(f"{agent}/release", json={"upto": upto})

                client.send("stream", text="tick 6", push_url=hook_url)
                first = await client.streamed()
                task_id, creator = first["stream"]["task"]["id"], first["replica"]
                seen = [first]
                await release(1)
                while text((await client.streamed())["stream"]) != "step 1":
                    pass

                await balanced_next(http, lb, order, creator)
                got, get_on = await client.call("get", id=task_id)
                await balanced_next(http, lb, order, creator)
                listed, list_on = await client.call("list")
                await balanced_next(http, lb, order, creator)
                n = client.send("subscribe", id=task_id, max_events=2)
                joined = await client.next(n)  # the snapshot, at step 1
                await release(2)
                followed = await client.next(n)
                subscribed = await client.next(n)
                while text((await client.streamed())["stream"]) != "step 2":
                    pass
                upstream_before_kill = await subscribes_at(http, agent)
                gets_before_kill = (await http.get(f"{agent}/subscribes")).json()["gets"]
                await hooks.wait_for(lambda h, body: text(body) == "step 2")

                relay = next(r for r in replicas if r.name == creator)
                assert relay.proc is not None
                relay.proc.process.send_signal(signal.SIGKILL)
                await relay.proc.exit_code()
                while "resumed" not in (item := await client.streamed()) or not item["resumed"]:
                    seen.append(item)
                resumed = [item]
                await wait_for(
                    lambda: subscribes_at(http, agent)
                )  # a replica took it over upstream
                await release(4)
                while text((item := await client.streamed())["stream"]) != "step 4":
                    resumed.append(item)
                resumed.append(item)
                cancelled, cancel_on = await client.call("cancel", id=task_id)
                while "stream_end" not in (item := await client.streamed()):
                    resumed.append(item)
                ended = item
                final, final_on = await client.call("get", id=task_id)
                await hooks.wait_for(lambda h, body: state(body) == "TASK_STATE_CANCELED")
                await asyncio.sleep(0)
        finally:
            print("seen", locals().get("seen"), "resumed", locals().get("resumed"))
            print(
                "redis",
                redis.command(b"KEYS", b"*"),
                redis.command(b"ZRANGE", b"junction:a2a:relays", b"0", b"-1", b"WITHSCORES"),
            )
            tid = locals().get("task_id", "x").encode()
            print(
                "lease",
                redis.command(b"GET", b"junction:a2a:lease:" + tid),
                redis.command(b"XLEN", b"junction:a2a:events:" + tid),
            )
            for replica in replicas:
                if replica.proc is not None:
                    await replica.proc.kill()
                    lines = [ln for ln in replica.proc.stderr if "/health/live" not in ln]
                    print(f"--- {replica.name}\n{''.join(lines)}")  # shown if the test fails

    others = set(order) - {creator}
    assert got["status"]["state"] == "TASK_STATE_WORKING" and get_on in others
    assert task_id in [t["id"] for t in listed["tasks"]] and list_on in others
    assert joined["replica"] in others and text(joined["event"]) == "step 1"
    assert text(followed["event"]) == "step 2" and [text(e) for e in subscribed["ok"]] == [
        "step 1",
        "step 2",
    ]
    assert {get_on, list_on, joined["replica"]} == others  # every other replica served some
    assert upstream_before_kill == 0  # followers on other replicas read Redis, not the agent
    assert gets_before_kill == 0  # GetTask on another replica answered from Redis too

    # the killed relay's stream broke; the resubscribe went to a live replica, whose snapshot
    # is where the old stream stopped, and every later event came once, in order
    assert any("broken" in item for item in seen)
    assert resumed[0]["replica"] in others and text(resumed[0]["stream"]) == "step 2"
    after = [(state(i["stream"]), text(i["stream"])) for i in resumed[1:]]
    assert after == [
        ("TASK_STATE_WORKING", "step 3"),
        ("TASK_STATE_WORKING", "step 4"),
        ("TASK_STATE_CANCELED", after[-1][1]),
    ]
    assert ended == {"stream_end": True}
    assert cancelled["status"]["state"] == "TASK_STATE_CANCELED" and cancel_on in others
    assert final["status"]["state"] == "TASK_STATE_CANCELED" and final_on in others

    # webhooks: each event once (a redelivery would repeat its X-Junction-Sequence)
    mine = [(h, b) for h, b in hooks.received if h.get("x-junction-task-id") == task_id]
    by_sequence = {h["x-junction-sequence"]: b for h, b in mine}
    steps = Counter(text(b) for b in by_sequence.values() if text(b).startswith("step"))
    assert steps == Counter({"step 1": 1, "step 2": 1, "step 3": 1, "step 4": 1})
    assert any(state(b) == "TASK_STATE_CANCELED" for b in by_sequence.values())


async def test_a_replica_that_stops_hands_its_tasks_over(
    tmp_path: Path, postgres_url: str, redis: RedisServer
) -> None:
    """SIGTERM on the relaying replica: it hands the task's lease over as it stops (the lease
    here is far longer than the test may wait, so only the hand-over can explain a takeover),
    and a subscriber on the other replica goes on receiving without resubscribing. A webhook
    registered through the other replica is delivered by the relaying one, then by the one
    that took over, each event once (a delivery the stopping replica had not seen answered may
    come again, with the same sequence: at least once)."""
    with ticker_agent() as agent:
        config = replica_config(
            tmp_path / "junction.json", postgres_url, redis.url, agent, lease=300, grace=1
        )
        one, two = (Replica(f"r{i}", free_port(), config) for i in (1, 2))
        await asyncio.gather(one.start(), two.start())
        assert one.proc is not None and two.proc is not None
        try:
            async with (
                cluster_client(one.url) as starter,
                cluster_client(two.url) as follower,
                webhook_receiver() as (hooks, hook_url),
                httpx.AsyncClient(timeout=10) as http,
            ):
                starter.send("stream", text="tick 3")
                task_id = (await starter.streamed())["stream"]["task"]["id"]
                _, push_on = await follower.call("push_set", task_id=task_id, url=hook_url)
                n = follower.send("subscribe", id=task_id, max_events=100)
                joined = await follower.next(n)
                await http.post(f"{agent}/release", json={"upto": 1})
                while text((await follower.next(n))["event"]) != "step 1":
                    pass
                one.proc.process.send_signal(signal.SIGTERM)
                stopped = await one.proc.exit_code()
                await two.proc.wait_log(r"took over relaying task")
                await wait_for(lambda: subscribes_at(http, agent))  # step 2 will be an event
                await http.post(f"{agent}/release", json={"upto": 3})
                rest = [await follower.next(n) for _ in range(4)]
                await hooks.wait_for(lambda h, body: state(body) == "TASK_STATE_COMPLETED")
                subscribes = (await http.get(f"{agent}/subscribes")).json()["subscribes"]
                metrics = (await http.get(f"{two.url}/metrics")).text
        finally:
            await one.proc.kill()
            await two.proc.kill()
    assert "junction_a2a_takeovers_total 1.0" in metrics
    assert "junction_a2a_relays_held 0.0" in metrics  # the task completed: its lease is gone
    assert joined["replica"] == "r2" and "task" in joined["event"]
    assert stopped == 0
    assert [text(i["event"]) for i in rest[:2]] == ["step 2", "step 3"]
    assert state(rest[2]["event"]) == "TASK_STATE_COMPLETED"
    assert [text(e) for e in rest[3]["ok"]][-4:-1] == ["step 1", "step 2", "step 3"]
    assert subscribes == 1  # r2 subscribed at the agent once, when it took over
    assert push_on == "r2"
    by_sequence = {h["x-junction-sequence"]: b for h, b in hooks.received}  # at least once
    delivered = Counter(text(b) for b in by_sequence.values() if text(b).startswith("step"))
    assert delivered == Counter({"step 1": 1, "step 2": 1, "step 3": 1})


async def test_redis_down_ends_remote_followers_and_replicas_go_on_alone(
    tmp_path: Path, postgres_url: str, redis: RedisServer
) -> None:
    """Redis killed: the replica relaying a task keeps streaming it to its own caller, a
    subscriber on another replica gets one last status event saying why its stream ends, and a
    new SubscribeToTask there follows the task at the agent itself, as without Redis."""
    with ticker_agent() as agent:
        config = replica_config(tmp_path / "junction.json", postgres_url, redis.url, agent)
        one, two = (Replica(f"r{i}", free_port(), config) for i in (1, 2))
        await asyncio.gather(one.start(), two.start())
        assert one.proc is not None and two.proc is not None
        try:
            async with (
                cluster_client(one.url) as starter,
                cluster_client(two.url) as follower,
                httpx.AsyncClient(timeout=10) as http,
            ):
                starter.send("stream", text="tick 3")
                task_id = (await starter.streamed())["stream"]["task"]["id"]
                n = follower.send("subscribe", id=task_id, max_events=100)
                while state((await follower.next(n))["event"]) != "TASK_STATE_WORKING":
                    pass  # the snapshot from Redis, then (if not in it) the agent's start
                redis.kill()
                remote: list[Any] = []
                while "ok" not in (item := await follower.next(n)):
                    remote.append(item["event"])
                await http.post(f"{agent}/release", json={"upto": 1})
                while text((await starter.streamed())["stream"]) != "step 1":
                    pass
                m = follower.send("subscribe", id=task_id, max_events=2)
                await follower.next(m)  # the snapshot, from the store
                await http.post(f"{agent}/release", json={"upto": 2})
                alone = await follower.next(m)
                subscribes = (await http.get(f"{agent}/subscribes")).json()["subscribes"]
        finally:
            await one.proc.kill()
            await two.proc.kill()
    assert "event bus (Redis) is unreachable" in text(remote[-1])
    assert state(remote[-1]) == "TASK_STATE_WORKING"
    assert text(alone["event"]) == "step 2"
    assert subscribes == 1  # the second subscriber's replica followed the agent itself


async def test_a_restarted_hub_tells_a_subscriber_what_the_agent_did_while_none_followed(
    tmp_path: Path,
) -> None:
    """The only hub is killed mid-task and the agent goes on (step 2) while no hub follows it.
    Restarted, the hub's store still says step 1: a SubscribeToTask gets that snapshot, then
    step 2 as an event (from the agent's own snapshot, which the hub records but does not
    relay as a second snapshot), then the rest."""
    with ticker_agent() as agent:
        config = tmp_path / "junction.json"
        config.write_text(
            orjson.dumps(
                {
                    "store": {"url": f"sqlite:///{tmp_path / 'junction.db'}"},
                    "a2a_agents": {"ticker": {"url": agent}},
                }
            ).decode()
        )
        hub = Replica("r1", free_port(), config)
        await hub.start()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                async with cluster_client(hub.url) as starter:
                    starter.send("stream", text="tick 3")
                    task_id = (await starter.streamed())["stream"]["task"]["id"]
                    await http.post(f"{agent}/release", json={"upto": 1})
                    while text((await starter.streamed())["stream"]) != "step 1":
                        pass
                    assert hub.proc is not None
                    await hub.proc.kill()
                await http.post(f"{agent}/release", json={"upto": 2})  # nobody follows it
                await hub.start()
                async with cluster_client(hub.url) as follower:
                    n = follower.send("subscribe", id=task_id, max_events=100)
                    snapshot = await follower.next(n)
                    caught_up = await follower.next(n)
                    await http.post(f"{agent}/release", json={"upto": 3})
                    rest = [await follower.next(n) for _ in range(2)]
        finally:
            if hub.proc is not None:
                await hub.proc.kill()
    assert "task" in snapshot["event"] and text(snapshot["event"]) == "step 1"
    assert "statusUpdate" in caught_up["event"] and text(caught_up["event"]) == "step 2"
    assert text(rest[0]["event"]) == "step 3"
    assert state(rest[1]["event"]) == "TASK_STATE_COMPLETED"
