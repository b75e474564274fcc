"""A small A2A 1.0 agent over the JSON-RPC binding, written with plain Starlette.

`planner` turns a request into a short numbered plan. It is deliberately small but shaped like
the spec, so Junction's hub and client talk to it as to any A2A agent:

- `GET /.well-known/agent-card.json`: the agent card (1.0: `supportedInterfaces`, skills);
- `POST /` with JSON-RPC 2.0: `SendMessage`, `SendStreamingMessage` (SSE: the task, a
  `working` status, artifact chunks, a `completed` status), `GetTask`, `CancelTask`.

Tasks live in memory. It does not use the `a2a-sdk` package on purpose: that SDK's import name
`a2a` is also Junction's own package. Run it alone and register it with Junction:

    python examples/a2a_agent.py --port 9999
    # a2a_agents: {planner: {url: "http://127.0.0.1:9999"}}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PROTOCOL_VERSION = "1.0"
TERMINAL = {
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_REJECTED",
}

# JSON-RPC and A2A error codes.
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
TASK_NOT_FOUND, TASK_NOT_CANCELABLE, UNSUPPORTED_OPERATION = -32001, -32002, -32004
VERSION_NOT_SUPPORTED = -32009

Json = dict[str, Any]


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _agent_message(text: str, task: Json) -> Json:
    return {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_AGENT",
        "parts": [{"text": text}],
        "taskId": task["id"],
        "contextId": task["contextId"],
    }


def plan_for(request: str) -> list[str]:
    """The agent's "skill": a fixed-shape plan around the request (deterministic, no model)."""
    goal = " ".join(request.split()).rstrip(".") or "the task"
    return [
        f"Plan for: {goal}\n",
        "1. Agree on what done looks like and write it down as a test.\n",
        "2. Find the smallest change that gets there; list the files it touches.\n",
        "3. Make the change in small steps, running the tests after each one.\n",
        "4. Note what changed and why, then ask for a review.\n",
    ]


class Planner:
    """Task state and the JSON-RPC methods."""

    def __init__(self, step_delay: float = 0.12) -> None:
        self.step_delay = step_delay
        self.tasks: dict[str, Json] = {}
        self._events: dict[str, asyncio.Queue[Json | None]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self.app = Starlette(
            routes=[
                Route("/.well-known/agent-card.json", self.card, methods=["GET"]),
                Route("/", self.rpc, methods=["POST"]),
            ]
        )

    # -- the card ---------------------------------------------------------------------------------

    async def card(self, request: Request) -> Response:
        base = str(request.base_url)
        return JSONResponse(
            {
                "name": "planner",
                "description": "Turns a request into a short, numbered plan (Junction's example A2A agent).",
                "version": "1.0.0",
                "provider": {"organization": "Junction examples", "url": "https://example.invalid"},
                "supportedInterfaces": [
                    {"url": base, "protocolBinding": "JSONRPC", "protocolVersion": PROTOCOL_VERSION}
                ],
                "capabilities": {"streaming": True, "pushNotifications": False},
                "defaultInputModes": ["text/plain"],
                "defaultOutputModes": ["text/plain"],
                "skills": [
                    {
                        "id": "plan",
                        "name": "Plan",
                        "description": "Break a request into four concrete steps.",
                        "tags": ["planning"],
                        "examples": ["plan adding a dark mode to the settings page"],
                    }
                ],
            }
        )

    # -- JSON-RPC ---------------------------------------------------------------------------------

    async def rpc(self, request: Request) -> Response:
        version = request.headers.get("A2A-Version")
        try:
            message = json.loads(await request.body())
        except ValueError:
            return _error(None, PARSE_ERROR, "Parse error")
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _error(None, INVALID_REQUEST, "not a JSON-RPC 2.0 request")
        request_id, method = message.get("id"), message.get("method")
        params = message.get("params") or {}
        try:
            if version is not None and not version.startswith("1."):
                raise RpcError(VERSION_NOT_SUPPORTED, f"A2A version {version} is not supported")
            if not isinstance(params, dict):
                raise RpcError(INVALID_PARAMS, "params must be an object")
            if method == "SendStreamingMessage":
                task = self._start(params)
                submitted = json.loads(json.dumps(task))  # as created, before any work
                return EventSourceResponse(self._stream(request_id, submitted), sep="\n")
            if method == "SendMessage":
                task = self._start(params)
                configuration = params.get("configuration") or {}
                if not configuration.get("returnImmediately"):
                    await self._running[task["id"]]
                return _result(request_id, {"task": self._view(task, params)})
            if method == "GetTask":
                return _result(request_id, self._view(self._task(params), params))
            if method == "CancelTask":
                return _result(request_id, await self._cancel(self._task(params)))
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
        except RpcError as exc:
            return _error(request_id, exc.code, exc.message)

    def _task(self, params: Json) -> Json:
        task = self.tasks.get(str(params.get("id", "")))
        if task is None:
            raise RpcError(TASK_NOT_FOUND, "Task not found")
        return task

    def _view(self, task: Json, params: Json) -> Json:
        limit = params.get("historyLength")
        if limit is None:
            limit = (params.get("configuration") or {}).get("historyLength")
        if isinstance(limit, int) and limit >= 0:
            return {**task, "history": task["history"][-limit:] if limit else []}
        return dict(task)

    def _start(self, params: Json) -> Json:
        """Validate the message, create the task and start working on it."""
        message = params.get("message")
        if not isinstance(message, dict) or not message.get("messageId"):
            raise RpcError(INVALID_PARAMS, "params.message with a messageId is required")
        parts = message.get("parts")
        if not isinstance(parts, list) or not parts:
            raise RpcError(INVALID_PARAMS, "params.message.parts must be a non-empty list")
        if message.get("taskId"):
            self._task({"id": message["taskId"]})
            raise RpcError(UNSUPPORTED_OPERATION, "planner tasks never wait for more input")
        text = "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
        task: Json = {
            "id": str(uuid.uuid4()),
            "contextId": str(message.get("contextId") or uuid.uuid4()),
            "status": {"state": "TASK_STATE_SUBMITTED", "timestamp": _now()},
            "artifacts": [],
            "history": [message],
        }
        self.tasks[task["id"]] = task
        self._events[task["id"]] = asyncio.Queue()
        self._running[task["id"]] = asyncio.create_task(self._work(task, text))
        return task

    async def _work(self, task: Json, text: str) -> None:
        """Advance the task and publish every change as a 1.0 StreamResponse."""
        events = self._events[task["id"]]
        try:
            self._set_state(task, "TASK_STATE_WORKING", "Reading the request and drafting a plan…")
            artifact_id = str(uuid.uuid4())
            lines = plan_for(text)
            for index, line in enumerate(lines):
                await asyncio.sleep(self.step_delay)
                part = {"text": line}
                if index == 0:
                    task["artifacts"] = [{"artifactId": artifact_id, "name": "plan", "parts": []}]
                task["artifacts"][0]["parts"].append(part)
                update = {
                    "taskId": task["id"],
                    "contextId": task["contextId"],
                    "artifact": {"artifactId": artifact_id, "name": "plan", "parts": [part]},
                    "append": index > 0,
                    "lastChunk": index == len(lines) - 1,
                }
                events.put_nowait({"artifactUpdate": update})
            self._set_state(task, "TASK_STATE_COMPLETED", "Plan ready.")
        except asyncio.CancelledError:
            self._set_state(task, "TASK_STATE_CANCELED", "Cancelled on request.")
        finally:
            events.put_nowait(None)
            self._running.pop(task["id"], None)

    def _set_state(self, task: Json, state: str, note: str) -> None:
        status = {"state": state, "message": _agent_message(note, task), "timestamp": _now()}
        task["status"] = status
        update = {"taskId": task["id"], "contextId": task["contextId"], "status": status}
        self._events[task["id"]].put_nowait({"statusUpdate": update})

    async def _cancel(self, task: Json) -> Json:
        if task["status"]["state"] in TERMINAL:
            raise RpcError(TASK_NOT_CANCELABLE, f"Task is already {task['status']['state']}")
        running = self._running.get(task["id"])
        if running is not None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        return dict(task)

    async def _stream(self, request_id: Any, task: Json) -> AsyncIterator[dict[str, str]]:
        """The SSE stream: the task as submitted first, then its updates until a terminal state."""
        first = {"task": task}
        yield {"data": json.dumps({"jsonrpc": "2.0", "id": request_id, "result": first})}
        events = self._events[task["id"]]
        while (event := await events.get()) is not None:
            yield {"data": json.dumps({"jsonrpc": "2.0", "id": request_id, "result": event})}


def _result(request_id: Any, result: Json) -> Response:
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "result": result})


def _error(request_id: Any, code: int, message: str) -> Response:
    body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
    return JSONResponse(body)


def create_app(step_delay: float = 0.12) -> Starlette:
    """The ASGI app (what `junction demo` serves in-process on a free loopback port)."""
    return Planner(step_delay).app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9999)
    args = parser.parse_args()
    print(f"planner (example A2A agent) on http://{args.host}:{args.port}")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
