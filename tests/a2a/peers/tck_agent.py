"""The A2A TCK's System Under Test, on the official a2a-sdk (1.3), run as a separate process.

    python tck_agent.py --port P

The TCK (a2aproject/a2a-tck, 1.0-dev) drives its SUT by the prefix of each message's
`messageId` (its scenarios/*.feature); this is its generated Python SUT (sut/a2a-python) ported
from the SDK's pre-1.0 `a2a.server.apps` to the `a2a.server.routes` of the SDK the tests pin,
without gRPC (Junction does not carry gRPC). JSON-RPC is served at `/`, HTTP+JSON at `/rest`.
Prints "READY" on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn
from a2a.helpers import new_task
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    Part,
    TaskState,
)
from a2a.utils.errors import A2AError
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Value
from starlette.applications import Starlette

REST_PATH = "/rest"

RESUBSCRIBE_WAIT_S = 4
"""The TCK's 'wait for 2x streaming timeout' (its SUT's figure)."""


async def _artifact_then_complete(updater: TaskUpdater, part: Part, *, stream: bool) -> None:
    if stream:
        await updater.start_work()
    await updater.add_artifact(parts=[part])
    await updater.complete()


class TckExecutor(AgentExecutor):
    """What the TCK's scenarios ask for, by `messageId` prefix (the generated SUT's order)."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        assert message is not None
        message_id = message.message_id
        task = context.current_task
        if task is not None:  # a continuation: the task's own ids, whatever the message says
            task_id, context_id = task.id, task.context_id
        else:
            task_id, context_id = context.task_id or "", context.context_id or ""
            if not message_id.startswith("tck-message-response"):
                submitted = TaskState.TASK_STATE_SUBMITTED
                task = new_task(task_id, context_id, submitted, history=[message])
                await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task_id, context_id)

        if message_id.startswith("tck-stream-artifact-chunked"):
            await updater.start_work()
            await updater.add_artifact(parts=[Part(text="chunk-1 ")], append=True)
            await updater.add_artifact(parts=[Part(text="chunk-2")], append=True, last_chunk=True)
            await updater.complete()
        elif message_id.startswith("test-resubscribe-message-id"):
            await updater.start_work()
            await asyncio.sleep(RESUBSCRIBE_WAIT_S)
            await updater.complete()
        elif message_id.startswith("tck-stream-artifact-text"):
            text = Part(text="Streamed text content")
            await _artifact_then_complete(updater, text, stream=True)
        elif message_id.startswith("tck-stream-artifact-file"):
            file = Part(raw=b"tck", media_type="text/plain", filename="output.txt")
            await _artifact_then_complete(updater, file, stream=True)
        elif message_id.startswith("tck-stream-ordering-001"):
            await _artifact_then_complete(updater, Part(text="Ordered output"), stream=True)
        elif message_id.startswith("tck-artifact-file-url"):
            link = Part(
                url="https://example.com/output.txt", media_type="text/plain", filename="output.txt"
            )
            await _artifact_then_complete(updater, link, stream=False)
        elif message_id.startswith("tck-message-response"):
            reply = updater.new_agent_message([Part(text="Direct message response")])
            await event_queue.enqueue_event(reply)
        elif message_id.startswith("tck-input-required"):
            await updater.requires_input()
        elif message_id.startswith("tck-complete-task"):
            await updater.complete(updater.new_agent_message([Part(text="Hello from TCK")]))
        elif message_id.startswith("tck-artifact-text"):
            text = Part(text="Generated text content")
            await _artifact_then_complete(updater, text, stream=False)
        elif message_id.startswith("tck-artifact-file"):
            file = Part(raw=b"tck", media_type="text/plain", filename="output.txt")
            await _artifact_then_complete(updater, file, stream=False)
        elif message_id.startswith("tck-artifact-data"):
            data = Part(data=json_format.Parse('{"key": "value", "count": 42}', Value()))
            await _artifact_then_complete(updater, data, stream=False)
        elif message_id.startswith("tck-reject-task"):
            raise A2AError("rejected")
        elif message_id.startswith("tck-stream-001"):
            await _artifact_then_complete(updater, Part(text="Stream hello from TCK"), stream=True)
        elif message_id.startswith("tck-stream-002"):
            await updater.complete()
        elif message_id.startswith("tck-stream-003"):
            await _artifact_then_complete(updater, Part(text="Stream task lifecycle"), stream=True)
        else:
            unhandled = Part(text="Unhandled messageId prefix: " + message_id)
            await updater.complete(updater.new_agent_message([unhandled]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        assert task is not None
        await TaskUpdater(event_queue, task.id, task.context_id).cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    card = AgentCard(
        name="tck",
        description="The A2A TCK's System Under Test on the a2a-sdk",
        version="1.0.0",
        provider=AgentProvider(organization="A2A Project", url="https://github.com/a2aproject"),
        supported_interfaces=[
            AgentInterface(url=base, protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(
                url=base + REST_PATH, protocol_binding="HTTP+JSON", protocol_version="1.0"
            ),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text"],
        default_output_modes=["text"],
        skills=[
            AgentSkill(
                id="tck",
                name="TCK Conformance",
                description="Handles TCK conformance test messages",
                tags=["tck"],
            )
        ],
    )
    handler = DefaultRequestHandler(
        agent_executor=TckExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    routes = create_agent_card_routes(card)
    routes += create_jsonrpc_routes(handler, "/")
    routes += create_rest_routes(handler, path_prefix=REST_PATH)
    config = uvicorn.Config(
        Starlette(routes=routes),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
            await asyncio.sleep(0.01)
        print("READY", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
