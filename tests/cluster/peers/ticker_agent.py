"""An a2a-sdk agent whose task advances only when the test says so, run as its own process.

    python ticker_agent.py --port P

"tick N": the task starts working, then sends status updates "step 1" .. "step N", step k only
once the test has released it (POST /release {"upto": k}), then completes. The agent does
nothing by itself, so a test knows exactly which events exist and can tell a gap from a late
event without timing anything. GET /subscribes answers how many SubscribeToTask calls it has
had (a hub that takes a task over subscribes again; counted once the call's snapshot is taken,
so a test that releases a step after seeing the count knows the step reaches that subscriber
as an event, not inside the snapshot) and how many GetTask calls. Prints "READY" once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class Gate:
    def __init__(self) -> None:
        self.upto = 0
        self.changed = asyncio.Condition()

    async def release(self, upto: int) -> None:
        async with self.changed:
            self.upto = max(self.upto, upto)
            self.changed.notify_all()

    async def wait(self, step: int) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: self.upto >= step)


class Ticker(AgentExecutor):
    def __init__(self, gate: Gate) -> None:
        self.gate = gate

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        steps = int(context.get_user_input().split()[-1])
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        for step in range(1, steps + 1):
            await self.gate.wait(step)
            message = new_text_message(f"step {step}", task.context_id, task.id)
            await updater.update_status(TaskState.TASK_STATE_WORKING, message)
        await updater.complete(new_text_message("done", task.context_id, task.id))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        assert task is not None
        await TaskUpdater(event_queue, task.id, task.context_id).cancel()


class CountingHandler(DefaultRequestHandler):
    subscribes = 0
    gets = 0

    async def on_get_task(self, *args: Any, **kwargs: Any) -> Any:
        CountingHandler.gets += 1
        return await super().on_get_task(*args, **kwargs)

    async def on_subscribe_to_task(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        counted = False
        async for event in super().on_subscribe_to_task(*args, **kwargs):
            if not counted:  # counted once the snapshot is taken: later events reach this tap
                CountingHandler.subscribes += 1
                counted = True
            yield event


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    card = AgentCard(
        name="ticker",
        description="steps when told",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"{base}/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="tick", name="tick", description="ticks", tags=["tick"])],
    )
    gate = Gate()
    handler = CountingHandler(
        agent_executor=Ticker(gate), task_store=InMemoryTaskStore(), agent_card=card
    )

    async def release(request: Request) -> Response:
        await gate.release(int((await request.json())["upto"]))
        return JSONResponse({"upto": gate.upto})

    async def subscribes(request: Request) -> Response:
        return JSONResponse(
            {"subscribes": CountingHandler.subscribes, "gets": CountingHandler.gets}
        )

    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, "/")
    routes += [
        Route("/release", release, methods=["POST"]),
        Route("/subscribes", subscribes, methods=["GET"]),
    ]
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=routes),
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            lifespan="off",
        )
    )

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
            await asyncio.sleep(0.01)
        print("READY", flush=True)
        await task

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
