"""An A2A agent built with the official a2a-sdk, run as a separate process by the tests.

    python sdk_agent.py --port P --version 1.0|0.3 --name NAME [--skill ID:TAG,TAG ...]
                        [--binding jsonrpc|rest|both]

`--binding rest` serves (and lists on its card) only the SDK's HTTP+JSON routes; `both` lists
JSON-RPC and HTTP+JSON.

`--sign PEM:KID[:JKU]` signs the card with the SDK's own signer (a2a.utils.signing, ES256;
JKU `self` is this agent's `/jwks.json`, served from `--jwks FILE`); `--tamper` changes the
description after signing, so the signature no longer holds.

`--version 0.3` serves a 0.3-only card and refuses 1.0 requests (so a hub must translate).
What it does is chosen by the first word of the user's text:
  echo X     complete with an artifact "echo: X"
  file       complete with an artifact of file parts only (a link and raw bytes)
  empty      complete with an artifact that has no parts
  reply X    answer with a direct Message (no task)
  steps N    N working updates each with an artifact chunk, then complete
  wait       stay working until canceled (a status update every 0.2 s)
  ask        input-required; the next message on the task completes it
  die        one working update, then the process exits (mid-stream)
  garbage    send a malformed SSE event (only through the raw route below)
Prints "READY" on stdout once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Part,
    TaskState,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


class Executor(AgentExecutor):
    def __init__(self, name: str) -> None:
        self.name = name

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input().strip()
        word, _, rest = text.partition(" ")
        task = context.current_task
        if word == "reply":
            await event_queue.enqueue_event(
                new_text_message(f"{self.name} replies: {rest}", context_id=context.context_id)
            )
            return
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        if task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED:
            await updater.add_artifact([new_text_part(f"{self.name} got: {text}")], name="answer")
            await updater.complete()
            return
        if word == "echo":
            await updater.add_artifact([new_text_part(f"echo: {rest}")], name="echo")
            await updater.complete()
        elif word == "file":
            link = Part(url="https://example.com/r.pdf", media_type="application/pdf")
            raw = Part(raw=b"hi", filename="hi.txt", media_type="text/plain")
            await updater.add_artifact([link, raw], name="files")
            await updater.complete()
        elif word == "empty":
            await updater.add_artifact([], name="nothing")
            await updater.complete()
        elif word == "steps":
            count = int(rest or "3")
            await updater.start_work()
            for i in range(count):
                await updater.add_artifact(
                    [new_text_part(f"chunk {i}")],
                    artifact_id="chunks",
                    append=i > 0,
                    last_chunk=i == count - 1,
                )
                await asyncio.sleep(0.05)
            await updater.complete()
        elif word == "wait":
            await updater.start_work()
            while True:
                await asyncio.sleep(0.2)
                await updater.update_status(
                    TaskState.TASK_STATE_WORKING,
                    new_text_message("still working", context_id=task.context_id, task_id=task.id),
                )
        elif word == "ask":
            await updater.requires_input(
                new_text_message("what else?", context_id=task.context_id, task_id=task.id)
            )
        elif word == "die":
            await updater.start_work()
            await asyncio.sleep(0.3)
            os._exit(3)
        else:
            await updater.complete(
                new_text_message(
                    f"{self.name} did: {text}", context_id=task.context_id, task_id=task.id
                )
            )

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        assert task is not None
        await TaskUpdater(event_queue, task.id, task.context_id).cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", default="1.0")
    parser.add_argument("--name", default="agent")
    parser.add_argument("--skill", action="append", default=[])
    parser.add_argument("--no-streaming", action="store_true")
    parser.add_argument("--binding", choices=["jsonrpc", "rest", "both"], default="jsonrpc")
    parser.add_argument("--sign")
    parser.add_argument("--jwks")
    parser.add_argument("--tamper", action="store_true")
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    skills = []
    for spec in args.skill or ["general:misc"]:
        skill_id, _, tags = spec.partition(":")
        skills.append(
            AgentSkill(
                id=skill_id,
                name=skill_id,
                description=f"{skill_id} skill",
                tags=[t for t in tags.split(",") if t],
            )
        )
    card = AgentCard(
        name=args.name,
        description=f"test agent {args.name}",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"{base}/", protocol_binding=binding, protocol_version=args.version)
            for binding in {"jsonrpc": ["JSONRPC"], "rest": ["HTTP+JSON"]}.get(
                args.binding, ["JSONRPC", "HTTP+JSON"]
            )
        ],
        capabilities=AgentCapabilities(streaming=not args.no_streaming, push_notifications=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=skills,
    )
    if args.sign:
        from a2a.utils.signing import create_agent_card_signer

        pem, kid, jku = [*args.sign.split(":", 2), ""][:3]
        header = {"alg": "ES256", "typ": "JOSE", "kid": kid}
        if jku:
            header["jku"] = f"{base}/jwks.json" if jku == "self" else jku
        with open(pem) as file:
            create_agent_card_signer(file.read(), header)(card)  # type: ignore[arg-type]
        if args.tamper:
            card.description = "changed after signing"
    handler = DefaultRequestHandler(
        agent_executor=Executor(args.name), task_store=InMemoryTaskStore(), agent_card=card
    )
    legacy = args.version == "0.3"
    routes = create_agent_card_routes(card)
    if args.binding != "rest":
        routes += create_jsonrpc_routes(handler, "/", enable_v0_3_compat=legacy)
    if args.binding != "jsonrpc":
        routes += create_rest_routes(handler, enable_v0_3_compat=legacy)

    async def garbage(request: Request) -> Response:
        async def body():  # type: ignore[no-untyped-def]
            yield b'data: {"jsonrpc": "2.0", "id": 1, "result": {"task": {"id": "t1", "contextId": "c1", "status": {"state": "TASK_STATE_WORKING"}}}}\n\n'
            await asyncio.sleep(0.05)
            yield b"data: this is not json\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    async def silent(request: Request) -> Response:
        await asyncio.sleep(3600)
        return JSONResponse({})

    key_set = open(args.jwks).read() if args.jwks else "{}"  # noqa: SIM115 (read once)

    async def jwks(request: Request) -> Response:
        return Response(key_set, media_type="application/json")

    routes += [
        Route("/jwks.json", jwks, methods=["GET"]),
        Route("/garbage", garbage, methods=["POST"]),
        Route("/silent", silent, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    strict = args.version == "0.3"

    async def guard(scope, receive, send):  # type: ignore[no-untyped-def]
        if strict and scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope["headers"])
            if headers.get(b"a2a-version", b"0.3") not in (b"", b"0.3", b"0.3.0"):
                response = JSONResponse(
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": {"code": -32009, "message": "this agent speaks 0.3 only"},
                    }
                )
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    config = uvicorn.Config(
        guard, host="127.0.0.1", port=args.port, log_level="warning", lifespan="off"
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
