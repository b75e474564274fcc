"""A SCRIPTED demo model behind an OpenAI-compatible API. It is not an LLM.

`junction demo` needs a model that works with no network and no API key, so this server reads
the conversation and follows a fixed script: keywords in the last user message choose a tool
(an MCP tool, an A2A agent tool, or `write_text_file`), and once a tool result is present it
answers with a short summary of that result. Every reply says that it comes from this script.

Endpoints: `GET /v1/models`, `POST /v1/chat/completions` (JSON, or SSE when `stream` is true,
with streamed tool calls). Run it alone and point Junction's `backends:` at it:

    python examples/demo_model.py --port 8000
    # backends: {demo: {type: openai, url: "http://127.0.0.1:8000/v1", models: [junction-demo-model]}}
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MODEL_ID = "junction-demo-model"
LABEL = "[scripted demo model]"
"""Starts every reply, so nobody mistakes the script for a language model."""

_ids = itertools.count(1)


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_demo_{next(_ids)}")


@dataclass
class Reply:
    """What the script decided: some text, and maybe one tool call."""

    text: str
    call: ToolCall | None = None


# -- reading the conversation ---------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """A message's content as plain text (a string, or a list of OpenAI content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def _call_names(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """tool_call_id -> tool name, from every assistant message that made calls."""
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            names[str(call.get("id"))] = str(function.get("name", "?"))
    return names


def _quoted(text: str) -> str | None:
    """The first quoted passage of the prompt ("...", '...' or “...”), if any."""
    match = re.search(r"\"([^\"]+)\"|“([^”]+)”|'([^']{3,})'", text)
    if match is None:
        return None
    return next(group for group in match.groups() if group is not None)


def _find(tools: Sequence[str], *, suffix: str = "", prefix: str = "") -> str | None:
    for name in tools:
        if name.endswith(suffix) and name.startswith(prefix):
            return name
    return None


# -- the script -----------------------------------------------------------------------------------


def decide(body: Mapping[str, Any]) -> Reply:
    """The whole "intelligence": keywords in, one tool call or one summary out."""
    messages: list[Mapping[str, Any]] = [
        m for m in body.get("messages") or [] if isinstance(m, Mapping)
    ]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
    if results:
        return _summarise(results[-1], _call_names(messages))
    prompt = _text_of(messages[last_user].get("content")) if last_user >= 0 else ""
    return _choose(prompt, _tool_names(body), messages)


def _summarise(result: Mapping[str, Any], names: Mapping[str, str]) -> Reply:
    tool = names.get(str(result.get("tool_call_id")), "the tool")
    output = _text_of(result.get("content")).strip() or "(no output)"
    if tool.startswith("a2a__"):
        lead = f"The A2A agent `{tool.removeprefix('a2a__')}` answered through Junction"
    elif tool == "write_text_file":
        lead = "The file was written through the editor (after you allowed it)"
    elif "__" in tool:
        server, _, name = tool.partition("__")
        lead = f"The MCP server `{server}` ran `{name}` through Junction's gateway"
    else:
        lead = f"`{tool}` returned"
    if output.lower().startswith(("permission denied", "error")):
        lead = f"`{tool}` did not run"
    shown = output if len(output) <= 600 else output[:600] + " …"
    return Reply(f"{LABEL} {lead}:\n\n{shown}\n")


def _choose(prompt: str, tools: Sequence[str], history: Sequence[Mapping[str, Any]]) -> Reply:
    lowered = prompt.lower()
    if re.search(r"\b(write|save|create)\b.*\bfile\b|\.(md|txt)\b", lowered):
        return _write_file(prompt, tools, history)
    if re.search(r"\b(agent|delegate|plan)\b", lowered):
        agent = _find(tools, prefix="a2a__")
        if agent is not None:
            task = _quoted(prompt) or prompt
            return Reply(
                f"{LABEL} Delegating to the A2A agent `{agent.removeprefix('a2a__')}`.\n",
                ToolCall(agent, {"message": task}),
            )
    if re.search(r"\b(count|words?)\b", lowered):
        counter = _find(tools, suffix="word_count")
        if counter is not None:
            return Reply(
                f"{LABEL} Calling the MCP tool `{counter}`.\n",
                ToolCall(counter, {"text": _quoted(prompt) or prompt}),
            )
    if "note" in lowered:
        if re.search(r"\b(list|show)\b", lowered) and (name := _find(tools, suffix="list_notes")):
            return Reply(f"{LABEL} Listing notes with `{name}`.\n", ToolCall(name, {}))
        if name := _find(tools, suffix="add_note"):
            body = _quoted(prompt) or prompt
            return Reply(
                f"{LABEL} Saving a note with `{name}`.\n",
                ToolCall(name, {"title": body[:40], "body": body}),
            )
    if "time" in lowered and (name := _find(tools, suffix="current_time")):
        return Reply(f"{LABEL} Asking `{name}` for the time.\n", ToolCall(name, {}))
    offered = ", ".join(f"`{t}`" for t in tools) or "none"
    return Reply(
        f"{LABEL} I only follow a script: ask me to count words, plan something with an agent, "
        f"keep notes, tell the time, or write a file. Tools Junction offers me: {offered}.\n"
    )


def _write_file(prompt: str, tools: Sequence[str], history: Sequence[Mapping[str, Any]]) -> Reply:
    if "write_text_file" not in tools:
        return Reply(f"{LABEL} I would write a file, but the editor offers no file tools.\n")
    match = re.search(r"[\w./-]+\.(?:md|txt|json|py)\b", prompt)
    path = match.group(0) if match else "DEMO.md"
    names = _call_names(history)
    # Write the most recent agent answer if there is one, so the three steps tell one story.
    earlier = [
        _text_of(m.get("content"))
        for m in history
        if m.get("role") == "tool" and names.get(str(m.get("tool_call_id")), "").startswith("a2a__")
    ]
    content = earlier[-1].strip() if earlier else "Hello from Junction's demo."
    text = f"# {path}\n\nWritten by the scripted demo model through Junction.\n\n{content}\n"
    return Reply(
        f"{LABEL} Writing `{path}`; Junction will ask the editor for permission first.\n",
        ToolCall("write_text_file", {"path": path, "content": text}),
    )


# -- the OpenAI wire format -----------------------------------------------------------------------


def _usage(body: Mapping[str, Any], reply: Reply) -> dict[str, int]:
    prompt = sum(len(_text_of(m.get("content")).split()) for m in body.get("messages") or [])
    completion = len(reply.text.split()) + (5 if reply.call else 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _pieces(text: str) -> list[str]:
    """Word-sized pieces (spaces kept), so the editor shows the text arriving."""
    return re.findall(r"\S+\s*|\s+", text)


class DemoModel:
    """The Starlette app plus the knobs a caller may turn (delay between streamed pieces)."""

    def __init__(self, chunk_delay: float = 0.015) -> None:
        self.chunk_delay = chunk_delay
        self.app = Starlette(
            routes=[
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
            ]
        )

    async def models(self, request: Request) -> Response:
        entry = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "junction-demo"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def chat(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "the request body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _error(400, "'messages' must be a list")
        reply = decide(body)
        model = str(body.get("model") or MODEL_ID)
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._stream(reply, model, _usage(body, reply) if usage else None)
            return EventSourceResponse(events, sep="\n")
        return JSONResponse(_completion(reply, model, _usage(body, reply)))

    async def _stream(
        self, reply: Reply, model: str, usage: dict[str, int] | None
    ) -> AsyncIterator[dict[str, str]]:
        base = {
            "id": f"chatcmpl-demo-{next(_ids)}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "scripted-demo",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, str]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return {"data": json.dumps({**base, "choices": [choice]})}

        yield chunk({"role": "assistant", "content": ""})
        for piece in _pieces(reply.text):
            yield chunk({"content": piece})
            await asyncio.sleep(self.chunk_delay)
        if reply.call is not None:
            head = {
                "index": 0,
                "id": reply.call.id,
                "type": "function",
                "function": {"name": reply.call.name, "arguments": ""},
            }
            yield chunk({"tool_calls": [head]})
            arguments = json.dumps(reply.call.arguments)
            for start in range(0, len(arguments), 24):
                piece = arguments[start : start + 24]
                yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if reply.call else "stop")
        if usage is not None:
            yield {"data": json.dumps({**base, "choices": [], "usage": usage})}
        yield {"data": "[DONE]"}


def _completion(reply: Reply, model: str, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.call is not None:
        message["tool_calls"] = [
            {
                "id": reply.call.id,
                "type": "function",
                "function": {
                    "name": reply.call.name,
                    "arguments": json.dumps(reply.call.arguments),
                },
            }
        ]
    return {
        "id": f"chatcmpl-demo-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.call else "stop",
            }
        ],
        "usage": usage,
    }


def _error(status: int, message: str) -> Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    return JSONResponse({"error": error}, status_code=status)


def create_app(chunk_delay: float = 0.015) -> Starlette:
    """The ASGI app (what `junction demo` serves in-process on a free loopback port)."""
    return DemoModel(chunk_delay).app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    print(f"{LABEL} serving {MODEL_ID} on http://{args.host}:{args.port}/v1 (not an LLM)")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
