"""Task events shared by replicas through Redis (`cluster.redis_url`).

One replica relays a task's upstream stream (`a2a.relay.TaskRelay`) and holds the task's
*lease*; every event it records is also appended to the task's Redis stream, together with the
task as it stands after that event (the *snapshot*, kept beside the stream under the entry's
id), by one Lua script, so the two never disagree. A `SubscribeToTask` on another replica
reads the snapshot and follows the stream from the snapshot's entry id: what it shows first is
exactly what every later entry builds on, so a subscriber that joins mid-stream sees no gap and
no event twice, in the order the relay recorded them.

The lease is a key with a time to live (`cluster.relay_lease_seconds`) that its holder renews;
a sorted set lists every relayed task by its lease's end. A replica killed mid-stream stops
renewing; each replica sweeps the set (every second, or three times a lease if shorter) and
the first to find a lapsed one takes it (`SET NX`, so one replica each), asks the agent for the task and subscribes to it
upstream again: its events continue the same Redis stream. A replica that stops gracefully
hands its leases over at once. Events the agent sent while nobody followed it are not replayed
by A2A agents; the takeover's first look at the task (GetTask, then the SubscribeToTask
snapshot) is relayed as one Task event when it differs from the last shared snapshot.

Redis down: each replica keeps relaying what it relays (local subscribers see no difference),
a subscriber on another replica gets a last status event saying so and its stream ends, and a
new `SubscribeToTask` follows the agent itself, as without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from a2a.events import (
    Binding,
    apply_event,
    ends_caller_stream,
    event_state,
    hub_status,
    progress,
    repeats_status,
)
from a2a.relay import END, TaskRelay
from a2a.store import TaskRecord, TaskStore
from a2a.versions.common import is_terminal

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from a2a.registry import Registry

log = logging.getLogger(__name__)

Json = dict[str, Any]

PREFIX = "junction:a2a:"
_KEEP_MS = 600_000
"""How long a task's stream and snapshot outlive its last event (late subscribers of an ended
task are answered from the store anyway)."""
_MAXLEN = 10_000
"""Entries kept per task stream (approximate trim); a follower is at most a few behind."""
_BLOCK_MS = 1000
_SUBSCRIBER_BACKLOG = 1024

# KEYS: lease, events, snap, relays. ARGV: me, ttl_ms, kind ('e' | 'snap' | 'end'), event,
# task, task_id, final ('1' releases the lease). Nil: another replica holds the lease.
_SHARE = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id
if ARGV[3] == 'snap' then
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  id = (last[1] and last[1][1]) or '0-0'
else
  id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', @MAXLEN@, '*', ARGV[3], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], @KEEP@)
end
if ARGV[3] ~= 'end' then
  redis.call('SET', KEYS[3], id .. '\\n' .. ARGV[5], 'PX', @KEEP@)
end
if ARGV[7] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[6])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), ARGV[6])
end
return id
""".replace("@MAXLEN@", str(_MAXLEN)).replace("@KEEP@", str(_KEEP_MS))

# KEYS: lease, snap, relays. ARGV: me, ttl_ms, task_id. Claims a free lease; answers
# {owner, snapshot or nil}.
_JOIN = """
local owner = redis.call('GET', KEYS[1])
if not owner then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('ZADD', KEYS[3], tonumber(t[1]) * 1000 + tonumber(ARGV[2]), ARGV[3])
end
if not owner or owner == ARGV[1] then return {ARGV[1], redis.call('GET', KEYS[2])} end
return {owner, redis.call('GET', KEYS[2])}
"""

# KEYS: relays. ARGV: me, ttl_ms, prefix, task ids... Renews the leases still ours; answers
# the ids that are not.
_RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
local lost = {}
for i = 4, #ARGV do
  local key = ARGV[3] .. 'lease:' .. ARGV[i]
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    redis.call('ZADD', KEYS[1], until_, ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

# KEYS: relays. ARGV: me, ttl_ms, prefix, limit. Takes lapsed leases (one replica each).
_SWEEP = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local won = {}
for _, id in ipairs(due) do
  if redis.call('SET', ARGV[3] .. 'lease:' .. id, ARGV[1], 'NX', 'PX', ARGV[2]) then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id)
    table.insert(won, id)
  end
end
return won
"""

# KEYS: relays. ARGV: me, prefix, task ids... Hands the leases still ours to the next sweep.
_HAND_OVER = """
for i = 3, #ARGV do
  local key = ARGV[2] .. 'lease:' .. ARGV[i]
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    redis.call('ZADD', KEYS[1], 0, ARGV[i])
  end
end
return 1
"""


class ClusterHub(Protocol):
    """What the fan-out needs of the hub (`a2a.core.HubCore`) to take a task over."""

    store: TaskStore
    registry: Registry
    relays: dict[str, TaskRelay]
    _push_cache: dict[str, list[Json]]

    async def _refresh(self, record: TaskRecord) -> TaskRecord: ...

    def _follow(self, agent: Any, record: TaskRecord) -> TaskRelay: ...


@dataclass(eq=False)
class RemoteFeed:
    """A task relayed by another replica, followed here from its Redis stream; the local
    subscribers of it share one reader."""

    fanout: RedisFanout
    task_id: str
    task: Json
    cursor: str
    subscribers: list[asyncio.Queue[Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None
    done: bool = False

    def subscribe(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue(_SUBSCRIBER_BACKLOG)
        self.subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(queue)
        if not self.subscribers and self.reader is not None:
            self.reader.cancel()

    def publish(self, item: Any) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning("a subscriber of task %s fell behind; closing its stream", self.task_id)
                self.subscribers.remove(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(END)

    async def read(self) -> None:
        """Follow the stream until the task ends, the relaying replicas let it go, or Redis
        fails; then END for every subscriber."""
        from redis.exceptions import RedisError

        fanout = self.fanout
        key = fanout.key("events", self.task_id)
        try:
            while True:
                answer: Any = await fanout.redis.xread(
                    {key: self.cursor}, count=100, block=_BLOCK_MS
                )
                if not answer:
                    if not await fanout.relayed(self.task_id):
                        return  # nobody relays it any more (its relay ended without a state)
                    continue
                for entry_id, fields in answer[0][1]:
                    self.cursor = entry_id.decode()
                    if b"e" not in fields:
                        return  # the relay's end marker
                    event = orjson.loads(fields[b"e"])
                    self.task = apply_event(self.task, event)
                    self.publish(event)
                    if ends_caller_stream(event):
                        return
        except (RedisError, OSError) as exc:
            log.warning("following task %s from Redis failed: %s", self.task_id, exc)
            status = self.task.get("status") or {}
            self.publish(
                hub_status(
                    self.task_id,
                    self.task.get("contextId"),
                    str(status.get("state") or "TASK_STATE_WORKING"),
                    "the replicas' event bus (Redis) is unreachable: this stream ends here; "
                    "follow the task with GetTask or SubscribeToTask",
                    {"cluster": "redis unreachable"},
                )
            )
        finally:
            self.done = True
            self.publish(END)
            if fanout.feeds.get(self.task_id) is self:
                del fanout.feeds[self.task_id]


class RedisFanout:
    """The cluster side of the hub's relays: share, join, renew, sweep, hand over."""

    def __init__(self, url: str, replica: str, *, lease_seconds: float = 5.0) -> None:
        self.url = url
        self.replica = replica
        self.lease_ms = max(int(lease_seconds * 1000), 200)
        self.held: set[str] = set()
        """Tasks whose lease this replica holds (renewed by the sweeper)."""
        self.feeds: dict[str, RemoteFeed] = {}
        self.claimed: dict[str, Json] = {}
        """Snapshots of tasks whose lapsed lease a subscriber here just claimed."""
        self._client: Redis | None = None
        self._scripts: dict[str, Any] = {}
        self._hub: ClusterHub | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._takeovers: set[asyncio.Task[None]] = set()
        self._down_logged = False
        self.takeovers = 0
        """Tasks this replica took over from a replica that died or stopped."""

    def metrics(self) -> list[Any]:
        """Prometheus families: leases held, tasks followed from elsewhere, takeovers."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        return [
            GaugeMetricFamily(
                "junction_a2a_relays_held",
                "A2A tasks this replica relays for the cluster (their leases).",
                value=len(self.held),
            ),
            GaugeMetricFamily(
                "junction_a2a_tasks_followed_remotely",
                "A2A tasks this replica's subscribers follow from another replica (Redis).",
                value=sum(1 for feed in self.feeds.values() if not feed.done),
            ),
            CounterMetricFamily(
                "junction_a2a_takeovers",
                "A2A tasks this replica took over from a replica that died or stopped.",
                value=self.takeovers,
            ),
        ]

    @property
    def redis(self) -> Redis:
        if self._client is None:
            from redis.asyncio import Redis

            self._client = Redis.from_url(
                self.url, socket_timeout=_BLOCK_MS / 1000 + 2, socket_connect_timeout=2
            )
            for name, source in (
                ("share", _SHARE),
                ("join", _JOIN),
                ("renew", _RENEW),
                ("sweep", _SWEEP),
                ("hand_over", _HAND_OVER),
            ):
                self._scripts[name] = self._client.register_script(source)
        return self._client

    def key(self, kind: str, task_id: str = "") -> str:
        return f"{PREFIX}{kind}:{task_id}" if task_id else f"{PREFIX}{kind}"

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        client = self.redis
        return await self._scripts[name](keys=keys, args=args, client=client)

    def _redis_failed(self, what: str, exc: BaseException) -> None:
        if not self._down_logged:
            log.warning("cluster event fan-out: %s failed (Redis): %s", what, exc)
            self._down_logged = True

    # -- lifecycle

    def start(self, hub: ClusterHub) -> None:
        self._hub = hub
        loop = asyncio.get_running_loop()
        self._sweeper = loop.create_task(self._sweep(), name="a2a-sweep")
        self._listener = loop.create_task(self._listen_push(), name="a2a-push-changes")

    async def close(self) -> None:
        """Stop sweeping, hand this replica's leases to the others (their next sweep takes
        them, no lease time lost), stop following remote tasks."""
        from redis.exceptions import RedisError

        for loop_task in (self._sweeper, self._listener):
            if loop_task is not None:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop_task
        for task in list(self._takeovers):
            task.cancel()
        if self.held:
            try:
                await self._script(
                    "hand_over", [self.key("relays")], [self.replica, PREFIX, *self.held]
                )
            except (RedisError, OSError) as exc:
                self._redis_failed("handing leases over", exc)
            self.held.clear()
        for feed in list(self.feeds.values()):
            if feed.reader is not None:
                feed.reader.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the relaying replica

    async def share(self, relay: TaskRelay, event: Json, *, resync: bool = False) -> None:
        """Append a recorded event (and the task after it) to the task's stream. `resync`: the
        upstream snapshot a follow opens with, appended only when it shows something the
        last shared snapshot did not; a status update the last shared snapshot already shows
        is not appended either (`repeats_status`)."""
        from redis.exceptions import RedisError

        record, task_id = relay.record, relay.binding.hub_id
        if record is None or task_id is None or relay.unshared:
            return
        kind = "e"
        if resync and relay.shared_task is None:
            relay.shared_task = self.claimed.pop(task_id, None)
        if (
            resync
            and relay.shared_task is not None
            and progress(relay.shared_task) == progress(record.task)
        ) or (not resync and repeats_status(event, relay.shared_task)):
            kind = "snap"
        final = is_terminal(event_state(event))
        try:
            shared = await self._script(
                "share",
                [
                    self.key("lease", task_id),
                    self.key("events", task_id),
                    self.key("snap", task_id),
                    self.key("relays"),
                ],
                [
                    self.replica,
                    self.lease_ms,
                    kind,
                    orjson.dumps(event),
                    orjson.dumps(record.task),
                    task_id,
                    "1" if final else "0",
                ],
            )
        except (RedisError, OSError) as exc:
            self._redis_failed("sharing a task event", exc)
            return
        self._down_logged = False
        relay.shared_task = record.task
        if shared is None:
            # another replica took the task over (this one stalled past its lease): it relays
            # to the others now; this relay keeps serving its own subscribers only
            log.warning("task %s is relayed by another replica now; not sharing", task_id)
            relay.unshared = True
            self.held.discard(task_id)
        elif final:
            self.held.discard(task_id)
            self.claimed.pop(task_id, None)
        else:
            self.held.add(task_id)

    async def ended(self, relay: TaskRelay) -> None:
        """A relay ended without a terminal state (the agent closed the stream of a task that
        waits for input, or failed before a task existed): followers elsewhere end too."""
        task_id = relay.binding.hub_id
        if task_id is not None:
            self.claimed.pop(task_id, None)
        if task_id is None or task_id not in self.held or relay.unshared:
            return
        self.held.discard(task_id)
        await self._end_shared(task_id, "ending a task's stream")

    # -- push configs saved through another replica than the relaying one

    async def push_changed(self, task_id: str) -> None:
        """Tell the replicas a task's push configs changed (the relaying one reloads them)."""
        from redis.exceptions import RedisError

        try:
            await self.redis.publish(self.key("push-changed"), task_id)
        except (RedisError, OSError) as exc:
            self._redis_failed("announcing a push config", exc)

    async def _listen_push(self) -> None:
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        while True:
            client = Redis.from_url(self.url, socket_connect_timeout=2)  # waits without timeout
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.key("push-changed"))
                    async for message in pubsub.listen():
                        if message["type"] != "message" or self._hub is None:
                            continue
                        task_id = bytes(message["data"]).decode()
                        live = self._hub.relays.get(task_id)
                        if live is not None and not live.done:
                            await self._load_push(task_id)
            except (RedisError, OSError) as exc:
                self._redis_failed("listening for push config changes", exc)
                await asyncio.sleep(1)
            finally:
                await client.aclose()

    # -- another replica's subscriber

    async def join(self, record: TaskRecord) -> tuple[RemoteFeed, asyncio.Queue[Any], Any] | None:
        """Follow `record` from the replica that relays it; None when none does (the lease is
        now this replica's: the caller follows the agent itself) or Redis is down."""
        from redis.exceptions import RedisError

        feed = self.feeds.get(record.id)
        if feed is not None and not feed.done:
            return feed, feed.subscribe(), {"task": feed.task}
        try:
            owner, snap = await self._script(
                "join",
                [self.key("lease", record.id), self.key("snap", record.id), self.key("relays")],
                [self.replica, self.lease_ms, record.id],
            )
            if owner.decode() == self.replica:
                self.held.add(record.id)
                await self._load_push(record.id)
                if snap:  # what followers elsewhere have seen: the follow's resync base
                    self.claimed[record.id] = orjson.loads(bytes(snap).partition(b"\n")[2])
                return None
            if not snap:  # the relay has not shared its first event yet
                snap = await self._first_snapshot(record.id)
        except (RedisError, OSError) as exc:
            self._redis_failed("joining a task's stream", exc)
            return None
        if snap:
            cursor, _, raw = bytes(snap).partition(b"\n")
            task, start = orjson.loads(raw), cursor.decode()
        else:
            task, start = record.task, "0-0"
        feed = self.feeds.get(record.id)  # another subscriber here may have joined meanwhile
        if feed is None or feed.done:
            feed = RemoteFeed(self, record.id, task, start)
            self.feeds[record.id] = feed
            feed.reader = asyncio.get_running_loop().create_task(feed.read(), name="a2a-feed")
        return feed, feed.subscribe(), {"task": feed.task}

    async def _load_push(self, task_id: str) -> None:
        """The task's webhooks, which another replica registered: this one delivers now."""
        if self._hub is not None:
            self._hub._push_cache[task_id] = await self._hub.store.list_push(task_id)

    async def _first_snapshot(self, task_id: str) -> bytes | None:
        key = self.key("snap", task_id)
        await self.redis.xread({self.key("events", task_id): "0-0"}, count=1, block=_BLOCK_MS)
        snap: Any = await self.redis.get(key)
        return bytes(snap) if snap else None

    async def snapshot(self, task_id: str) -> Json | None:
        """The task as another replica relaying it last shared it (None: no replica relays it
        now, or Redis is down): what GetTask answers instead of asking the agent."""
        from redis.exceptions import RedisError

        try:
            found: Any = await self.redis.mget(
                [self.key("lease", task_id), self.key("snap", task_id)]
            )
        except (RedisError, OSError) as exc:
            self._redis_failed("reading a task's snapshot", exc)
            return None
        owner, snap = found
        if not owner or not snap or bytes(owner).decode() == self.replica:
            return None
        task: Json = orjson.loads(bytes(snap).partition(b"\n")[2])
        return task

    async def relayed(self, task_id: str) -> bool:
        """Whether some replica relays `task_id` or will take it over."""
        score = await self.redis.zscore(self.key("relays"), task_id)
        return score is not None

    # -- every replica: renew what it holds, take over what lapsed

    async def _sweep(self) -> None:
        from redis.exceptions import RedisError

        while True:  # renewed 3 times a lease; a handed-over task is taken within a second
            await asyncio.sleep(min(self.lease_ms / 3000, 1.0))
            try:
                if self.held:
                    lost = await self._script(
                        "renew",
                        [self.key("relays")],
                        [self.replica, self.lease_ms, PREFIX, *self.held],
                    )
                    for task_id in lost:
                        self.held.discard(task_id.decode())
                won = await self._script(
                    "sweep", [self.key("relays")], [self.replica, self.lease_ms, PREFIX, 10]
                )
                snaps: list[Any] = [await self.redis.get(self.key("snap", t.decode())) for t in won]
            except (RedisError, OSError) as exc:
                self._redis_failed("renewing and sweeping leases", exc)
                continue
            self._down_logged = False
            for task_id, snap in zip(won, snaps, strict=True):
                self.held.add(task_id.decode())
                shared = orjson.loads(bytes(snap).partition(b"\n")[2]) if snap else None
                work = asyncio.ensure_future(self._take_over(task_id.decode(), shared))
                self._takeovers.add(work)
                work.add_done_callback(self._takeovers.discard)

    async def _take_over(self, task_id: str, shared: Json | None) -> None:
        """Relay `task_id` from here: its relaying replica died or stopped. The agent is asked
        for the task first; a different task than the last shared one is shared as one Task
        event, a terminal one ends the followers; otherwise the task is followed upstream."""
        hub = self._hub
        assert hub is not None
        started = time.monotonic()
        try:
            record = await hub.store.get_task_any_caller(task_id)
            agent = hub.registry.get(record.agent) if record is not None else None
            if record is None or agent is None or agent.connection is None:
                await self._let_go(task_id, record)
                return
            live = hub.relays.get(task_id)
            if live is not None and not live.done:
                return  # a subscriber here already follows it
            record = await hub._refresh(record)
            probe = TaskRelay(hub, agent, Binding.of(record), record)  # type: ignore[arg-type]
            probe.shared_task = shared
            if progress(shared) != progress(record.task):
                await self.share(probe, {"task": record.task})
            if is_terminal(record.state) or not agent.streaming:
                await self._let_go(task_id, record)
                return
            await self._load_push(task_id)
            relay = hub._follow(agent, record)
            relay.shared_task = record.task
            self.takeovers += 1
            log.info(
                "took over relaying task %s (agent %s) in %.0f ms",
                task_id,
                agent.name,
                (time.monotonic() - started) * 1000,
            )
        except Exception:
            log.exception("taking over task %s failed", task_id)
            await self._let_go(task_id, None)

    async def _let_go(self, task_id: str, record: TaskRecord | None) -> None:
        """Nobody can relay `task_id` (ended, or its agent is gone): end its followers."""
        self.held.discard(task_id)
        await self._end_shared(task_id, "letting a task go")

    async def _end_shared(self, task_id: str, doing: str) -> None:
        """Mark `task_id`'s shared stream ended and drop its lease (its followers end)."""
        from redis.exceptions import RedisError

        try:
            await self._script(
                "share",
                [
                    self.key("lease", task_id),
                    self.key("events", task_id),
                    self.key("snap", task_id),
                    self.key("relays"),
                ],
                [self.replica, self.lease_ms, "end", b"", b"", task_id, "1"],
            )
        except (RedisError, OSError) as exc:
            self._redis_failed(doing, exc)


__all__ = ["PREFIX", "RedisFanout", "RemoteFeed"]
