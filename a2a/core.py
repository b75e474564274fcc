"""The hub's core: routing, ids, relays, the task store and push, with no HTTP in it.

The core thinks in A2A 1.0 JSON and in its own task and context ids. A binding (JSON-RPC,
HTTP+JSON; see `a2a.app`) lifts the caller's request to 1.0 and hands the core plain values in
a `CallContext` (version, caller, params, the agents the caller may use); the core routes (a
continuation to the task's owner; else the agent named in metadata; else one offering the skill,
chosen by router_core among healthy agents), rewrites to the agent's ids, calls it in the
agent's version, and answers with 1.0 dicts, an async iterator of events, or an `A2aError`.

Each upstream stream is consumed by a `TaskRelay` (`a2a.relay`) that runs on its own: it
records every event in the store, queues webhooks, and fans events out to the streams watching
the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from a2a import types
from a2a.cards import hub_card, proxied_card, withholds
from a2a.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    PUSH_NOT_SUPPORTED,
    TASK_NOT_CANCELABLE,
    TASK_NOT_FOUND,
    UNSUPPORTED_OPERATION,
    A2aError,
    admit_agent,
    violations_from_pydantic,
)
from a2a.events import (
    Binding,
    apply_event,
    ends_caller_stream,
    event_state,
    hub_status,
    new_id,
    progress,
    rewrite_event,
    trim_history,
)
from a2a.fanout import RedisFanout
from a2a.push import PushDispatcher
from a2a.registry import RegisteredAgent, Registry
from a2a.relay import END, TaskRelay, Watched
from a2a.routing import VIA, check_hops, choose, may_use
from a2a.settings import AgentSpec, HubSettings
from a2a.store import TaskRecord, TaskStore, decode_cursor
from a2a.upstream import AgentFailure, AgentTransport, SessionFactory, _default_session
from a2a.versions.common import ends_stream, is_terminal
from router_core import tracing
from router_core.semconv import a2a_relay_attributes

log = logging.getLogger(__name__)

Json = dict[str, Any]
Handler = Callable[[Any], Awaitable[Any]]


@dataclass(slots=True)
class CallContext:
    """One call as a binding hands it to the core: plain values, no request object."""

    version: str
    caller: str
    base: str | Callable[[], str]
    """The hub's base URL, or how to work it out (only card methods need it, so it is lazy)."""
    agent: str | None
    """The agent a per-agent URL names, None at the hub's own URL."""
    params: Json
    allowed: tuple[str, ...] | None = None
    """The agents this caller may use (globs), None for all: others are treated as unknown."""

    @property
    def base_url(self) -> str:
        if not isinstance(self.base, str):
            self.base = self.base()
        return self.base


_call: ContextVar[CallContext] = ContextVar("a2a_call")

Opened = tuple[Watched, "asyncio.Queue[Any]", Any]
"""A started stream: its relay (here or another replica's), the caller's queue, the first event."""


class HubCore:
    """Registry + store + push + the 1.0 methods; bindings call `invoke` and `open_stream`."""

    def __init__(
        self,
        store: TaskStore,
        settings: HubSettings | None = None,
        *,
        session: SessionFactory = _default_session,
    ) -> None:
        self.settings = settings or HubSettings()
        self.hub_id = self.settings.hub_id or os.urandom(8).hex()
        """This hub's entry in `junction/via` (loop detection)."""
        self.store = store
        self.registry = Registry(self.settings, session=session)
        self.push = PushDispatcher(self.settings.push, store)
        self.relays: dict[str, TaskRelay] = {}
        """Live relays by hub task id (`a2a.relay.RelayHost`)."""
        self.fanout: RedisFanout | None = None
        """Task events shared with the other replicas (`cluster.redis_url`), set before start."""
        self._followers: set[asyncio.Task[None]] = set()
        self._push_cache: dict[str, list[Json]] = {}
        self._methods: dict[str, tuple[Handler, type[BaseModel]]] = self._method_table()

    # -- lifecycle

    async def start(self, agents: dict[str, AgentSpec] | None = None) -> None:
        """Open the store, register configured agents (a bad card is logged, not fatal)."""
        await self.store.open()
        self.push.start()  # deliveries a stopped process left in the store's outbox
        for name, spec in (agents or {}).items():
            await self.registry.add(name, spec, source="config", strict=False)
        self.registry.start()
        if self.fanout is not None:
            self.fanout.start(self)

    async def close(self) -> None:
        await self.registry.stop()
        tasks = [r.runner for r in self.relays.values() if r.runner] + list(self._followers)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.fanout is not None:  # hand the tasks relayed here to the other replicas
            await self.fanout.close()
        await self.push.close()
        await self.store.close()

    def end_streams(self, reason: str) -> None:
        """A server shutdown: end every open client stream with one last status event.

        The upstream task is left running at its agent (the hub only relays it) and the event
        keeps the task's current state, with `reason` as its message and
        `metadata.junction.shutdown: true`; after a restart the caller follows the task with
        GetTask or SubscribeToTask. Nothing is recorded: the stored task is the agent's last
        word. `close()` then stops the relays."""
        for relay in list(self.relays.values()):
            record = relay.record
            if relay.done or not relay.subscribers or record is None:
                continue
            state = (record.task.get("status") or {}).get("state", "TASK_STATE_WORKING")
            text = (
                f"{reason}: this stream ends here; the task continues at agent "
                f"{relay.agent.name} (follow it with GetTask or SubscribeToTask)"
            )
            junction = {"shutdown": True, "reason": reason}
            relay.publish(hub_status(record.id, record.context_id, state, text, junction))
            relay.publish(END)
            relay.subscribers.clear()

    def task_state_counts(self) -> dict[str, int]:
        """Recorded tasks by current 1.0 state (kept by the store as it writes: no query)."""
        return self.store.state_counts()

    def visible(self, name: str, allowed: tuple[str, ...] | None) -> RegisteredAgent | None:
        """The agent `name` if it is registered and a caller limited to `allowed` may use it
        (else, to that caller, it does not exist)."""
        agent = self.registry.get(name)
        return agent if agent is not None and may_use(allowed, name) else None

    # -- the two entry points of the bindings

    async def invoke(self, method: str, ctx: CallContext) -> Any:
        """Run one non-streaming 1.0 method for either binding (JSON-RPC or HTTP+JSON).

        Both call the same handler after the same pydantic validation, so params errors and
        error codes are the same whichever binding the caller used; a failure is raised as
        `A2aError`. The bindings have already checked their envelopes, so no JSON-RPC dispatcher
        sits in between (jsonrpcserver's cost ~25 us of a SendMessage's ~180 here).
        """
        entry = self._methods.get(method)
        if entry is None:
            raise A2aError(METHOD_NOT_FOUND, "Method not found")
        handler, model = entry
        try:
            params = model.model_validate(ctx.params)
        except ValidationError as exc:
            raise _invalid(exc) from None
        token = _call.set(ctx)
        try:
            return await handler(params)
        except A2aError:
            raise
        except Exception:
            log.exception("A2A handler for %s failed", method)
            raise A2aError(INTERNAL_ERROR, "Internal error") from None
        finally:
            _call.reset(token)

    async def open_stream(self, method: str, ctx: CallContext) -> Opened:
        """Start a streaming method for either binding, up to its first event.

        Everything that can fail before an event exists (bad params, unknown task, routing, an
        agent refusing) is raised here as `A2aError`, so the binding can still answer with a
        plain error instead of a stream.
        """
        model = (
            types.SendMessageRequest
            if method == "SendStreamingMessage"
            else types.SubscribeToTaskRequest
        )
        try:
            validated = model.model_validate(ctx.params)
        except ValidationError as exc:
            raise _invalid(exc) from None
        if method == "SendStreamingMessage":
            assert isinstance(validated, types.SendMessageRequest)
            relay, queue, snapshot = await self._start_send_stream(ctx, validated)
        else:
            assert isinstance(validated, types.SubscribeToTaskRequest)
            relay, queue, snapshot = await self._start_subscribe(ctx, validated)
        first = snapshot if snapshot is not None else await queue.get()
        if isinstance(first, A2aError):
            relay.unsubscribe(queue)
            raise first
        if first is END:
            relay.unsubscribe(queue)
            raise A2aError(INTERNAL_ERROR, "the agent sent no events")
        return relay, queue, first

    async def stream_events(
        self, relay: Watched, queue: asyncio.Queue[Any], first: Any, *, legacy: bool = False
    ) -> AsyncGenerator[Json | A2aError, None]:
        """A caller's events (1.0 StreamResponses) as the relay delivers them, in order.

        Ends after a message, a terminal state (for a 0.3 caller, `legacy`, an interrupted one
        too), the relay's end, or an `A2aError` (yielded, for the binding to frame); closing it
        unsubscribes the caller from the relay.
        """
        item = first
        try:
            while item is not END:
                yield item
                if isinstance(item, A2aError) or ends_caller_stream(item, legacy):
                    return
                item = await queue.get()
        finally:
            relay.unsubscribe(queue)

    # -- streaming

    async def _start_send_stream(
        self, ctx: CallContext, request: types.SendMessageRequest
    ) -> Opened:
        agent, binding, record = await self._route(ctx, request)
        await admit_agent(agent.name)
        upstream = self._upstream_params(ctx.params, binding)
        connection = self._usable(agent)
        if not agent.streaming:
            result = await self._send_blocking(agent, binding, record, upstream)
            relay = TaskRelay(self, agent, binding, record)
            relay.done = True
            queue: asyncio.Queue[Any] = asyncio.Queue()
            queue.put_nowait(END)
            return relay, queue, result
        self._claim(agent)
        relay = TaskRelay(self, agent, binding, record)
        queue = relay.subscribe()
        push = (ctx.params.get("configuration") or {}).get("taskPushNotificationConfig")
        relay_push = push if isinstance(push, dict) else None
        if relay_push is not None:
            await self.push.validate(str(relay_push.get("url")))
        relay.pending_push = (relay_push, ctx.version)
        agent.endpoint.stats.begin()
        relay.runner = asyncio.get_running_loop().create_task(
            relay.run(connection.stream("SendStreamingMessage", upstream)), name="a2a-relay"
        )
        if binding.hub_id:
            self.relays[binding.hub_id] = relay
        return relay, queue, None

    async def _start_subscribe(
        self, ctx: CallContext, request: types.SubscribeToTaskRequest
    ) -> Opened:
        record = await self._owned(ctx, request.id)
        if is_terminal(record.state):
            raise A2aError(
                UNSUPPORTED_OPERATION,
                f"task is in a terminal state ({record.state}); use GetTask",
                {"taskId": record.id},
            )
        live = self.relays.get(record.id)
        if live is not None and not live.done:
            queue = live.subscribe()
            snapshot = {"task": live.record.task if live.record else record.task}
            return live, queue, snapshot
        agent = self._owner(record)
        self._usable(agent)
        if not agent.streaming:
            raise A2aError(UNSUPPORTED_OPERATION, f"agent {agent.name} does not stream")
        if self.fanout is not None and (joined := await self.fanout.join(record)) is not None:
            return joined  # another replica relays it
        relay = self._follow(agent, record)
        queue = relay.subscribe()
        return relay, queue, {"task": record.task}

    def _follow(self, agent: RegisteredAgent, record: TaskRecord) -> TaskRelay:
        """Watch a task upstream (SubscribeToTask) so the store and webhooks stay current."""
        existing = self.relays.get(record.id)
        if existing is not None and not existing.done:
            return existing
        binding = Binding.of(record)
        relay = TaskRelay(self, agent, binding, record, upstream_snapshot=True)
        self.relays[record.id] = relay
        connection = agent.connection
        assert connection is not None
        agent.endpoint.stats.begin()
        relay.runner = asyncio.get_running_loop().create_task(
            relay.run(connection.stream("SubscribeToTask", {"id": record.remote_id})),
            name="a2a-follow",
        )
        return relay

    # -- relay host (`a2a.relay.RelayHost`)

    async def adopt(self, relay: TaskRelay, raw: Json) -> Json:
        """Map an agent's event to hub ids, binding a new task on its first event."""
        binding = relay.binding
        if binding.remote_id is None:
            remote_id: str | None = None
            remote_ctx: str | None = None
            if "task" in raw:
                remote_id, remote_ctx = raw["task"].get("id"), raw["task"].get("contextId")
            elif "statusUpdate" in raw or "artifactUpdate" in raw:
                body = raw.get("statusUpdate") or raw.get("artifactUpdate") or {}
                remote_id, remote_ctx = body.get("taskId"), body.get("contextId")
            elif "message" in raw:
                remote_ctx = raw["message"].get("contextId")
            binding.learn_context(remote_ctx)
            if remote_id:
                binding.remote_id = remote_id
                binding.hub_id = new_id()
                self.relays[binding.hub_id] = relay
        event = rewrite_event(raw, binding.mapping())
        if binding.hub_id and relay.record is None:
            relay.record = TaskRecord(
                id=binding.hub_id,
                caller=binding.caller,
                agent=binding.agent,
                remote_id=binding.remote_id or "",
                context_id=binding.hub_context or "",
                remote_context_id=binding.remote_context or "",
                task={
                    "id": binding.hub_id,
                    "contextId": binding.hub_context,
                    "status": {"state": "TASK_STATE_SUBMITTED"},
                },
            )
        return event

    async def record(self, relay: TaskRelay, event: Json) -> None:
        """Keep `event` in the store (the task, or a new context) and queue its webhooks."""
        record = relay.record
        if record is None:
            if "message" in event and relay.binding.new_context and relay.binding.hub_context:
                b = relay.binding
                await self.store.save_context(
                    b.caller, b.hub_context or "", b.agent, b.remote_context or ""
                )
            return
        # a follow's opening snapshot that shows nothing new is no news for the webhooks
        resync = relay.upstream_snapshot and "task" in event
        seen = progress(record.task) if resync else None
        record.task = apply_event(record.task, event)
        record.updated = time.time()
        await self.store.save_task(record, with_context=relay.binding.new_context)
        relay.binding.new_context = False
        pending = relay.pending_push
        if pending is not None and pending[0] is not None:
            relay.pending_push = None
            await self._save_push(record.caller, record.id, pending[0], pending[1])
        if seen is None or seen != progress(record.task):
            self._notify(record.id, event, record.task)

    def _notify(self, task_id: str, event: Json, task: Json) -> None:
        configs = self._push_cache.get(task_id)
        if configs:
            self.push.notify(task_id, configs, event, task)

    # -- routing

    async def _route(
        self, ctx: CallContext, request: types.SendMessageRequest
    ) -> tuple[RegisteredAgent, Binding, TaskRecord | None]:
        message = request.message
        check_hops(self.hub_id, self.settings.max_hops, message.metadata)
        if message.task_id:
            record = await self._owned(ctx, message.task_id)
            if message.context_id and message.context_id != record.context_id:
                raise A2aError(
                    INVALID_PARAMS,
                    "contextId does not match the task's context",
                    {"taskId": record.id},
                )
            live = self.relays.get(record.id)
            if live is not None and live.record is not None:
                record = live.record  # one copy of a watched task, whichever relay records
            return self._owner(record), Binding.of(record), record
        if message.context_id:
            known = await self.store.get_context(ctx.caller, message.context_id)
            if (
                known is not None
                and (ctx.agent is None or known[0] == ctx.agent)
                and may_use(ctx.allowed, known[0])
            ):
                owner = self.registry.get(known[0])
                if owner is None:
                    raise A2aError(
                        UNSUPPORTED_OPERATION,
                        f"agent {known[0]} of this context is no longer registered",
                    )
                return (
                    owner,
                    Binding(
                        owner.name,
                        ctx.caller,
                        hub_context=message.context_id,
                        remote_context=known[1],
                    ),
                    None,
                )
        agent = choose(self.registry, self.settings, ctx.agent, ctx.allowed, request)
        binding = Binding(agent.name, ctx.caller)
        if message.context_id:  # a context id the caller made up: keep it, learn the agent's
            binding.hub_context = message.context_id
            binding.remote_context = message.context_id
            binding.new_context = True
        return agent, binding, None

    def _owner(self, record: TaskRecord) -> RegisteredAgent:
        agent = self.registry.get(record.agent)
        if agent is None:
            raise A2aError(
                UNSUPPORTED_OPERATION, f"agent {record.agent} of this task is no longer registered"
            )
        return agent

    def _usable(self, agent: RegisteredAgent) -> AgentTransport:
        if agent.connection is None:
            raise A2aError(
                UNSUPPORTED_OPERATION, f"agent {agent.name} is unavailable: {agent.state()}"
            )
        return agent.connection

    def _claim(self, agent: RegisteredAgent) -> None:
        health = agent.endpoint.health
        if (health is not None and not health.healthy) or not agent.endpoint.breaker.allow():
            raise A2aError(
                UNSUPPORTED_OPERATION, f"agent {agent.name} is unavailable: {agent.state()}"
            )

    async def _owned(self, ctx: CallContext, task_id: str) -> TaskRecord:
        record = await self.store.get_task(task_id, ctx.caller)
        if (
            record is None
            or (ctx.agent is not None and record.agent != ctx.agent)
            or not may_use(ctx.allowed, record.agent)
        ):
            raise A2aError(TASK_NOT_FOUND, "Task not found", {"taskId": task_id})
        return record

    def _upstream_params(self, params: Json, binding: Binding) -> Json:
        out = dict(params)
        message = dict(out["message"])
        metadata = dict(message.get("metadata") or {})
        via = metadata.get(VIA)
        metadata[VIA] = [*(via if isinstance(via, list) else []), self.hub_id]
        message["metadata"] = metadata
        if binding.remote_id:
            message["taskId"] = binding.remote_id
        if binding.remote_context:
            message["contextId"] = binding.remote_context
        elif "contextId" in message and binding.hub_context is None:
            message.pop("contextId")
        out["message"] = message
        config = out.get("configuration")
        if isinstance(config, dict) and "taskPushNotificationConfig" in config:
            out["configuration"] = {
                k: v for k, v in config.items() if k != "taskPushNotificationConfig"
            }
        return out

    # -- the non-streaming methods

    def _method_table(self) -> dict[str, tuple[Handler, type[BaseModel]]]:
        """The non-streaming 1.0 methods: each one's handler and its params model."""
        return {
            "SendMessage": (self._send_message, types.SendMessageRequest),
            "GetTask": (self._get_task, types.GetTaskRequest),
            "ListTasks": (self._list_tasks, types.ListTasksRequest),
            "CancelTask": (self._cancel_task, types.CancelTaskRequest),
            "CreateTaskPushNotificationConfig": (
                self._push_create,
                types.TaskPushNotificationConfig,
            ),
            "GetTaskPushNotificationConfig": (
                self._push_get,
                types.GetTaskPushNotificationConfigRequest,
            ),
            "ListTaskPushNotificationConfigs": (
                self._push_list,
                types.ListTaskPushNotificationConfigsRequest,
            ),
            "DeleteTaskPushNotificationConfig": (
                self._push_delete,
                types.GetTaskPushNotificationConfigRequest,
            ),
            "GetExtendedAgentCard": (self._extended_card, types.GetExtendedAgentCardRequest),
        }

    async def _send_message(self, request: types.SendMessageRequest) -> Json:
        ctx = _call.get()
        agent, binding, record = await self._route(ctx, request)
        await admit_agent(agent.name)
        self._usable(agent)
        push = (
            request.configuration.task_push_notification_config if request.configuration else None
        )
        if push is not None:
            await self.push.validate(push.url)
        upstream = self._upstream_params(ctx.params, binding)
        result = await self._send_blocking(agent, binding, record, upstream)
        history = request.configuration.history_length if request.configuration else None
        if "task" in result:
            task_id = result["task"]["id"]
            if push is not None:
                raw_push = (ctx.params.get("configuration") or {}).get("taskPushNotificationConfig")
                await self._save_push(ctx.caller, task_id, raw_push, ctx.version)
                self._notify(task_id, result, result.get("task", {}))
            return {"task": trim_history(result["task"], history)}
        return result

    @tracing.traced(  # a client span per relayed SendMessage (no-op with tracing off)
        lambda self, agent, *_: f"invoke_agent {agent.name}",
        "client",
        lambda self, agent, *_: a2a_relay_attributes(agent.name, agent.spec.url, "SendMessage"),
    )
    async def _send_blocking(
        self,
        agent: RegisteredAgent,
        binding: Binding,
        record: TaskRecord | None,
        upstream: Json,
    ) -> Json:
        connection = self._usable(agent)
        self._claim(agent)
        stats = agent.endpoint.stats
        stats.begin()
        started = time.perf_counter()
        try:
            raw = await connection.call("SendMessage", upstream)
        except A2aError:
            stats.succeed(time.perf_counter() - started)
            agent.endpoint.breaker.record_success()
            raise
        except AgentFailure as exc:
            stats.fail(str(exc))
            agent.endpoint.breaker.record_failure()
            raise A2aError(
                INTERNAL_ERROR, f"agent {agent.name} failed: {exc}", {"agent": agent.name}
            ) from None
        except asyncio.CancelledError:
            stats.abandon()
            agent.endpoint.breaker.release()
            raise
        stats.succeed(time.perf_counter() - started)
        agent.endpoint.breaker.record_success()
        if not isinstance(raw, dict) or len(raw.keys() & {"task", "message"}) != 1:
            raise A2aError(
                INTERNAL_ERROR,
                f"agent {agent.name} answered SendMessage with neither a task nor a message",
            )
        relay = TaskRelay(self, agent, binding, record)
        event = await self.adopt(relay, raw)
        relay.done = True  # a one-shot answer: nothing to subscribe to
        relay.release()
        await self.record(relay, event)
        if (
            "task" in event
            and relay.record is not None
            and not ends_stream(event_state(event))
            and agent.streaming
        ):
            self._follow(agent, relay.record)
        return event

    async def _get_task(self, request: types.GetTaskRequest) -> Json:
        ctx = _call.get()
        record = await self._owned(ctx, request.id)
        live = self.relays.get(record.id)
        if live is not None and live.record is not None:
            record = live.record
        elif self.fanout is not None and (shared := await self.fanout.snapshot(record.id)):
            return trim_history(shared, request.history_length)  # another replica relays it
        elif not ends_stream(record.state):
            record = await self._refresh(record)
        return trim_history(record.task, request.history_length)

    async def _refresh(self, record: TaskRecord) -> TaskRecord:
        """A non-terminal task nobody is watching: ask its agent (keep the stored one on failure)."""
        agent = self.registry.get(record.agent)
        if agent is None or agent.connection is None or not agent.endpoint.available():
            return record
        try:
            raw = await agent.connection.call("GetTask", {"id": record.remote_id})
        except (A2aError, AgentFailure) as exc:
            log.info("refreshing task %s from %s failed: %s", record.id, agent.name, exc)
            return record
        record.task = rewrite_event({"task": raw}, Binding.of(record).mapping())["task"]
        record.updated = time.time()
        await self.store.save_task(record)
        return record

    async def _list_tasks(self, request: types.ListTasksRequest) -> Json:
        ctx = _call.get()
        after = None
        if request.status_timestamp_after:
            try:
                after = datetime.fromisoformat(
                    request.status_timestamp_after.replace("Z", "+00:00")
                ).timestamp()
            except ValueError:
                raise A2aError(
                    INVALID_PARAMS, "statusTimestampAfter is not an ISO 8601 timestamp"
                ) from None
        if request.page_token:
            try:
                decode_cursor(request.page_token)
            except ValueError:
                raise A2aError(INVALID_PARAMS, "invalid pageToken") from None
        size = request.page_size or 50
        page = await self.store.list_tasks(
            ctx.caller,
            context_id=request.context_id,
            state=request.status.value if request.status else None,
            updated_after=after,
            page_size=size,
            cursor=request.page_token,
        )
        tasks = []
        for record in page.records:
            if (ctx.agent is not None and record.agent != ctx.agent) or not may_use(
                ctx.allowed, record.agent
            ):
                continue
            task = trim_history(record.task, request.history_length)
            if not request.include_artifacts:
                task = {k: v for k, v in task.items() if k != "artifacts"}
            tasks.append(task)
        return {
            "tasks": tasks,
            "nextPageToken": page.next_cursor,
            "pageSize": size,
            "totalSize": page.total,
        }

    async def _cancel_task(self, request: types.CancelTaskRequest) -> Json:
        ctx = _call.get()
        record = await self._owned(ctx, request.id)
        if is_terminal(record.state):
            raise A2aError(
                TASK_NOT_CANCELABLE, f"task is already {record.state}", {"taskId": record.id}
            )
        agent = self._owner(record)
        connection = self._usable(agent)
        params: Json = {"id": record.remote_id}
        if request.metadata:
            params["metadata"] = request.metadata
        try:
            raw = await connection.call("CancelTask", params)
        except AgentFailure as exc:
            raise A2aError(INTERNAL_ERROR, f"agent {agent.name} failed: {exc}") from None
        event = rewrite_event({"task": raw}, Binding.of(record).mapping())
        live = self.relays.get(record.id)
        target = live.record if live is not None and live.record is not None else record
        target.task = event["task"]
        target.updated = time.time()
        await self.store.save_task(target)
        self._notify(target.id, event, target.task)
        return target.task

    async def _save_push(self, caller: str, task_id: str, raw: Any, version: str) -> Json:
        config = {k: v for k, v in dict(raw or {}).items() if k not in ("tenant",)}
        config["taskId"] = task_id
        config.setdefault("id", str(uuid.uuid4()))
        if not config.get("id"):
            config["id"] = str(uuid.uuid4())
        stored = {**config, "_version": version}
        await self.store.save_push(caller, task_id, stored)
        await self._push_changed(task_id)
        return config

    async def _push_changed(self, task_id: str) -> None:
        self._push_cache[task_id] = await self.store.list_push(task_id)
        if self.fanout is not None:  # the replica relaying the task delivers its webhooks
            await self.fanout.push_changed(task_id)

    def _push_context(self) -> CallContext:
        """The call, if push configs may be kept for it: through an agent's own path, only when
        its card offers push notifications (as the agent itself would answer, -32003)."""
        ctx = _call.get()
        if ctx.agent is not None:
            agent = self.registry.get(ctx.agent)
            if agent is not None and not agent.capabilities.get("pushNotifications"):
                raise A2aError(
                    PUSH_NOT_SUPPORTED, f"agent {ctx.agent} does not offer push notifications"
                )
        return ctx

    async def _push_create(self, request: types.TaskPushNotificationConfig) -> Json:
        ctx = self._push_context()
        if not request.task_id:
            raise A2aError(INVALID_PARAMS, "taskId is required")
        record = await self._owned(ctx, request.task_id)
        await self.push.validate(request.url)
        return await self._save_push(ctx.caller, record.id, ctx.params, ctx.version)

    async def _push_get(self, request: types.GetTaskPushNotificationConfigRequest) -> Json:
        ctx = self._push_context()
        await self._owned(ctx, request.task_id)
        config = await self.store.get_push(ctx.caller, request.task_id, request.id)
        if config is None:
            raise A2aError(
                TASK_NOT_FOUND,
                "push notification config not found",
                {"taskId": request.task_id, "id": request.id},
            )
        return _public_push(config)

    async def _push_list(self, request: types.ListTaskPushNotificationConfigsRequest) -> Json:
        ctx = self._push_context()
        await self._owned(ctx, request.task_id)
        configs = await self.store.list_push(request.task_id, ctx.caller)
        return {"configs": [_public_push(c) for c in configs], "nextPageToken": ""}

    async def _push_delete(self, request: types.GetTaskPushNotificationConfigRequest) -> None:
        ctx = self._push_context()
        await self._owned(ctx, request.task_id)
        await self.store.delete_push(ctx.caller, request.task_id, request.id)
        await self._push_changed(request.task_id)
        self.push.forget(request.task_id, request.id)

    async def _extended_card(self, request: types.GetExtendedAgentCardRequest) -> Json:
        ctx = _call.get()
        if ctx.agent is not None:
            agent = self.registry.get(ctx.agent)
            if agent is None or agent.card is None:
                raise A2aError(UNSUPPORTED_OPERATION, "the agent's card is not available")
            # its skills kept off the public card are here; else as the agent would answer
            withheld = withholds(self.settings, self.registry.security(), agent.name)
            if not (withheld or agent.capabilities.get("extendedAgentCard")):
                raise A2aError(
                    UNSUPPORTED_OPERATION, f"agent {agent.name} has no extended agent card"
                )
            signer = self.registry.signer
            return proxied_card(agent, ctx.base_url, ctx.version, signer=signer, withheld=withheld)
        signer = self.registry.signer
        return hub_card(
            self.registry, self.settings, ctx.base_url, ctx.allowed, ctx.version, signer=signer
        )


def _public_push(config: Json) -> Json:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _invalid(exc: ValidationError) -> A2aError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    violations = violations_from_pydantic(list(errors))
    return A2aError(INVALID_PARAMS, "Invalid params", violations=violations)


__all__ = ["CallContext", "HubCore"]
