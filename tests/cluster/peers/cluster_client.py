"""The official a2a-sdk client against a hub behind a load balancer, run as its own process.

    python cluster_client.py URL

Each stdin line is a command {"n": N, "op": ...}; commands run concurrently and each answers
one stdout line {"n": N, "ok": RESULT, "replica": R} or {"n": N, "error": "..."}, where R is
the `x-junction-replica` header of the response that carried it. Ops: get {id}, list {},
cancel {id}, push_set {task_id, url}, subscribe {id, max_events} (each event also as {"n": N, "event": EVENT} as it
comes), stream {text, push_url?}.

`stream` sends a streaming message and prints every event as {"stream": EVENT, "replica": R,
"resumed": BOOL}; when the stream breaks it prints {"broken": "..."} and, as a client of a
replicated service should, subscribes to the task again through the same URL and goes on
until the task ends ({"stream_end": true}).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

import httpx
from a2a.client.card_resolver import A2ACardResolver
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
)
from google.protobuf.json_format import MessageToDict

from a2a.client import ClientConfig, ClientFactory

replicas: dict[str, str] = {}
"""The replica that answered the last request of each JSON-RPC method."""


async def note_replica(response: httpx.Response) -> None:
    try:
        method = json.loads(response.request.content or b"{}").get("method", "")
    except (ValueError, httpx.RequestNotRead):
        method = ""
    replicas[method or response.request.url.path] = response.headers.get("x-junction-replica", "")


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def terminal(event: dict[str, Any]) -> bool:
    for kind in ("task", "statusUpdate"):
        if kind in event:
            state = event[kind]["status"]["state"]
            return state in ("TASK_STATE_COMPLETED", "TASK_STATE_CANCELED", "TASK_STATE_FAILED")
    return False


async def stream(client: Any, command: dict[str, Any]) -> None:
    message = Message(message_id=str(uuid.uuid4()), role="ROLE_USER")
    message.parts.add(text=command["text"])
    request = SendMessageRequest(message=message)
    if command.get("push_url"):
        request.configuration.task_push_notification_config.url = command["push_url"]
    task_id = ""
    events: Any = client.send_message(request)
    method, resumed = "SendStreamingMessage", False
    for _attempt in range(20):
        try:
            async for item in events:
                event = MessageToDict(item)
                task_id = task_id or event.get("task", {}).get("id", "")
                emit({"stream": event, "replica": replicas.get(method, ""), "resumed": resumed})
                if terminal(event):
                    emit({"stream_end": True})
                    return
            emit({"broken": "the stream ended before the task did"})
        except Exception as exc:
            emit({"broken": f"{type(exc).__name__}: {exc}"})
        await asyncio.sleep(0.2)
        events = client.subscribe(SubscribeToTaskRequest(id=task_id))
        method, resumed = "SubscribeToTask", True
    emit({"stream_end": False})


async def run(client: Any, command: dict[str, Any]) -> Any:
    op = command["op"]
    if op == "get":
        return MessageToDict(await client.get_task(GetTaskRequest(id=command["id"]))), "GetTask"
    if op == "list":
        return MessageToDict(await client.list_tasks(ListTasksRequest())), "ListTasks"
    if op == "cancel":
        task = await client.cancel_task(CancelTaskRequest(id=command["id"]))
        return MessageToDict(task), "CancelTask"
    if op == "push_set":
        config = TaskPushNotificationConfig(task_id=command["task_id"], url=command["url"])
        made = await client.create_task_push_notification_config(config)
        return MessageToDict(made), "CreateTaskPushNotificationConfig"
    if op == "subscribe":
        events = []
        async for item in client.subscribe(SubscribeToTaskRequest(id=command["id"])):
            events.append(MessageToDict(item))
            emit({"n": command["n"], "event": events[-1], "replica": replicas["SubscribeToTask"]})
            if len(events) >= command["max_events"]:
                break
        return events, "SubscribeToTask"
    raise ValueError(f"unknown op {op}")


async def answer(client: Any, command: dict[str, Any]) -> None:
    try:
        result, method = await run(client, command)
        emit({"n": command["n"], "ok": result, "replica": replicas.get(method, "")})
    except Exception as exc:
        emit({"n": command["n"], "error": f"{type(exc).__name__}: {exc}"})


async def main() -> None:
    url = sys.argv[1]
    http = httpx.AsyncClient(
        timeout=60, headers={"A2A-Version": "1.0"}, event_hooks={"response": [note_replica]}
    )
    card = await A2ACardResolver(http, url).get_agent_card()
    client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"ready": True})
    running: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        command = json.loads(line)
        work = stream(client, command) if command["op"] == "stream" else answer(client, command)
        task = asyncio.create_task(work)
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)


if __name__ == "__main__":
    asyncio.run(main())
