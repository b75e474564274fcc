"""The official a2a-sdk as a client of the hub, driven by NDJSON commands on stdin.

    python sdk_client.py URL VERSION        (VERSION: 1.0 or 0.3)

Each stdin line is a command object; each answer is one stdout line:
{"ok": RESULT} or {"error": "ExceptionType: text", "code": N?}. Protobuf results are printed
in their ProtoJSON form (1.0 shape, whatever the wire version was).
Commands: card, send {text, metadata?, stream?, return_immediately?, task_id?, context_id?,
push_url?, push_token?}, get {id, history_length?}, list {}, cancel {id},
subscribe {id, max_events?}, push_set {task_id, url, token?}, push_get {task_id, id},
push_list {task_id}, push_delete {task_id, id}, extended_card {}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import httpx
from a2a.client.card_resolver import A2ACardResolver
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskPushNotificationConfig,
)
from google.protobuf.json_format import MessageToDict, ParseDict

from a2a.client import ClientConfig, ClientFactory


def proto(value: Any) -> Any:
    return MessageToDict(value)


async def main() -> None:
    url, version = sys.argv[1], sys.argv[2]
    headers = {"A2A-Version": version}
    if os.environ.get("A2A_BEARER"):  # an API key for a hub that requires one
        headers["Authorization"] = f"Bearer {os.environ['A2A_BEARER']}"
    http = httpx.AsyncClient(timeout=30, headers=headers)
    card = await A2ACardResolver(http, url).get_agent_card()
    kept = [i for i in card.supported_interfaces if i.protocol_version.startswith(version)]
    del card.supported_interfaces[:]
    card.supported_interfaces.extend(kept)
    client = ClientFactory(ClientConfig(httpx_client=http, streaming=True)).create(card)
    plain = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ok": "ready"}), flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        try:
            result = await run(command, client, plain, card)
            out: dict[str, Any] = {"ok": result}
        except Exception as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
            for attr in ("code",):
                if hasattr(exc, attr):
                    out[attr] = getattr(exc, attr)
        print(json.dumps(out), flush=True)


async def run(command: dict[str, Any], client: Any, plain: Any, card: Any) -> Any:
    op = command["op"]
    if op == "card":
        return proto(card)
    if op == "send":
        message = Message(message_id=str(uuid.uuid4()), role="ROLE_USER")
        message.parts.add(text=command["text"])
        if command.get("task_id"):
            message.task_id = command["task_id"]
        if command.get("context_id"):
            message.context_id = command["context_id"]
        if command.get("metadata"):
            ParseDict(command["metadata"], message.metadata)
        request = SendMessageRequest(message=message)
        if command.get("return_immediately"):
            request.configuration.return_immediately = True
        if command.get("push_url"):
            request.configuration.task_push_notification_config.url = command["push_url"]
            request.configuration.task_push_notification_config.token = command.get(
                "push_token", ""
            )
        chosen = client if command.get("stream") else plain
        events = []
        async for event in chosen.send_message(request):
            events.append(proto(event))
        return events
    if op == "get":
        request = GetTaskRequest(id=command["id"])
        if "history_length" in command:
            request.history_length = command["history_length"]
        return proto(await client.get_task(request))
    if op == "list":
        return proto(await client.list_tasks(ListTasksRequest(**command.get("args", {}))))
    if op == "cancel":
        return proto(await client.cancel_task(CancelTaskRequest(id=command["id"])))
    if op == "subscribe":
        events = []
        async for event in client.subscribe(SubscribeToTaskRequest(id=command["id"])):
            events.append(proto(event))
            if len(events) >= command.get("max_events", 1000):
                break
        return events
    if op == "push_set":
        config = TaskPushNotificationConfig(
            task_id=command["task_id"], url=command["url"], token=command.get("token", "")
        )
        if command.get("id"):
            config.id = command["id"]
        return proto(await client.create_task_push_notification_config(config))
    if op == "push_get":
        return proto(
            await client.get_task_push_notification_config(
                GetTaskPushNotificationConfigRequest(task_id=command["task_id"], id=command["id"])
            )
        )
    if op == "push_list":
        return proto(
            await client.list_task_push_notification_configs(
                ListTaskPushNotificationConfigsRequest(task_id=command["task_id"])
            )
        )
    if op == "push_delete":
        await client.delete_task_push_notification_config(
            DeleteTaskPushNotificationConfigRequest(task_id=command["task_id"], id=command["id"])
        )
        return None
    if op == "extended_card":
        return proto(await client.get_extended_agent_card(GetExtendedAgentCardRequest()))
    raise ValueError(f"unknown op {op}")


if __name__ == "__main__":
    asyncio.run(main())
