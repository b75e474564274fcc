"""One upstream stream for one task, consumed on its own: every event is recorded, pushed and
fanned out to the callers watching the task, so a caller that disconnects does not stop the
recording, and `SubscribeToTask` joins the same relay."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from a2a.errors import INTERNAL_ERROR, A2aError
from a2a.events import Binding, catch_up, ends_caller_stream, hub_status
from a2a.registry import RegisteredAgent
from a2a.store import TaskRecord
from a2a.upstream import AgentFailure
from a2a.versions.common import is_interrupted
from router_core import tracing
from router_core.semconv import a2a_relay_attributes

log = logging.getLogger(__name__)

Json = dict[str, Any]

END = object()
"""What a subscriber's queue gets last: the relay is over."""
_SUBSCRIBER_BACKLOG = 1024


class Watched(Protocol):
    """What a caller's stream holds on to: a local relay, or another replica's (`a2a.fanout`)."""

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None: ...


class Sharing(Protocol):
    """Where a relay's events go for the other replicas (`a2a.fanout.RedisFanout`)."""

    async def share(self, relay: TaskRelay, event: Json, *, resync: bool = False) -> None: ...

    async def ended(self, relay: TaskRelay) -> None: ...


class RelayHost(Protocol):
    """What a relay needs from the hub: its ids, its store, the table of live relays, and the
    replicas' fan-out when there is one."""

    relays: dict[str, TaskRelay]

    @property
    def fanout(self) -> Sharing | None: ...

    async def adopt(self, relay: TaskRelay, raw: Json) -> Json: ...

    async def record(self, relay: TaskRelay, event: Json) -> None: ...


@dataclass(eq=False)
class TaskRelay:
    """One upstream stream for one task: recorded, pushed and fanned out as events arrive."""

    host: RelayHost
    agent: RegisteredAgent
    binding: Binding
    record: TaskRecord | None = None
    subscribers: list[asyncio.Queue[Any]] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None
    done: bool = False
    pending_push: tuple[Json | None, str] | None = None
    """A push config sent with the message, saved once the task id is known."""
    upstream_snapshot: bool = False
    """The upstream stream opens with a Task snapshot (SubscribeToTask) that is recorded but not
    relayed: every subscriber got the hub's own snapshot when it joined, and a second one would
    reach only those that joined before it came (the TCK's STREAM-ORDER-003). What it shows
    beyond the hub's task reaches them as events (`a2a.events.catch_up`)."""
    shared_task: Json | None = None
    """The task as other replicas last saw it (`a2a.fanout`): an upstream snapshot that shows
    nothing new is not shared again."""
    unshared: bool = False
    """Another replica took this task over: this relay serves its own subscribers only."""

    def subscribe(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue(_SUBSCRIBER_BACKLOG)
        self.subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        with contextlib.suppress(ValueError):
            self.subscribers.remove(queue)

    def publish(self, item: Any) -> None:
        """Hand `item` (an event, an `A2aError` or `END`) to every subscriber; one that fell
        behind by a whole backlog is dropped with `END`."""
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning(
                    "a subscriber of task %s fell behind; closing its stream", self.binding.hub_id
                )
                self.unsubscribe(queue)
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(END)

    def release(self) -> None:
        """Leave the host's table of live relays (if this relay is still the one there)."""
        hub_id = self.binding.hub_id
        if hub_id and self.host.relays.get(hub_id) is self:
            del self.host.relays[hub_id]

    @tracing.traced(  # the relayed stream's client span (no-op with tracing off)
        lambda self, events: f"invoke_agent {self.agent.name}",
        "client",
        lambda self, events: a2a_relay_attributes(self.agent.name, self.agent.spec.url, "stream"),
    )
    async def run(self, events: AsyncIterator[Json]) -> None:
        host, agent = self.host, self.agent
        stats, breaker = agent.endpoint.stats, agent.endpoint.breaker
        started = time.perf_counter()
        first = True
        verdict: str | None = None
        try:
            async for raw in events:
                if first:
                    stats.observe_ttft(time.perf_counter() - started)
                    first = False
                event = await host.adopt(self, raw)
                resync = self.upstream_snapshot and "task" in event
                shown = self.record.task if resync and self.record is not None else None
                # Stored before the caller sees it: a task id a caller holds is in the store
                # (another replica answers for it if this process dies the next moment).
                await host.record(self, event)
                if not resync:
                    self.publish(event)
                elif shown is not None and self.record is not None:
                    for missed in catch_up(shown, self.record.task):
                        self.publish(missed)
                self.upstream_snapshot = False
                if host.fanout is not None:  # then to the other replicas' subscribers
                    await host.fanout.share(self, event, resync=resync)
                if ends_caller_stream(event):
                    break
            verdict = "ok"
        except A2aError as exc:
            verdict = "ok"  # the agent answered; the request was refused
            self.publish(exc)
        except AgentFailure as exc:
            if self.record is not None and is_interrupted(self.record.state):
                # the task waits on its caller: an agent that hangs up or goes quiet meanwhile
                # has not failed it (the caller's next message goes to the agent afresh)
                verdict = "ok"
                log.info("agent %s closed task %s's stream: %s", agent.name, self.record.id, exc)
            else:
                verdict = str(exc)
                log.warning("agent %s: %s", agent.name, exc)
                await self._fail(str(exc))
        except asyncio.CancelledError:
            verdict = None
            raise
        except Exception as exc:
            verdict = f"{type(exc).__name__}: {exc}"
            log.exception("relay for agent %s failed", agent.name)
            await self._fail("internal error while relaying the agent's stream")
        finally:
            if verdict == "ok":
                stats.succeed()
                breaker.record_success()
            elif verdict is not None:
                stats.fail(verdict)
                breaker.record_failure()
            else:
                stats.abandon()
                breaker.release()
            self.done = True
            self.publish(END)
            self.release()
            if verdict is not None and host.fanout is not None:
                await host.fanout.ended(self)

    async def _fail(self, reason: str) -> None:
        """The agent broke off: the task ends failed (so no caller waits forever)."""
        binding = self.binding
        text = f"agent {self.agent.name} failed: {reason}"
        if binding.hub_id is None or self.record is None:
            self.publish(A2aError(INTERNAL_ERROR, text))
            return
        event = hub_status(
            binding.hub_id,
            binding.hub_context,
            "TASK_STATE_FAILED",
            text,
            {"agent": self.agent.name, "reason": reason},
        )
        self.publish(event)
        await self.host.record(self, event)
        if self.host.fanout is not None:
            await self.host.fanout.share(self, event)
