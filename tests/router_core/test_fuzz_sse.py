"""Bounded fuzz of the SSE framing Junction reads from a hostile upstream: a model backend whose
streamed answers are seeded mutations of a well-formed stream (bytes flipped, lines cut or
doubled, CR/LF/NUL inserted, events truncated, a huge field, random bytes). Through real HTTP on
both sides, every request must end (a relayed stream, an SSE error event, or a JSON error),
none may take the router down, and a clean request afterwards still works.

The OpenAI-compatible backend's stream is parsed on `/v1/messages` (translated to Anthropic's
events) and on `/v1/chat/completions` (relayed, parsed for usage); the Anthropic backend's on
`/v1/chat/completions` (translated to OpenAI's chunks)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from starlette.applications import Starlette

from router_core import BackendSpec, Router, RouterSettings
from router_core.health import BreakerSettings
from router_core.http import close_session
from router_core.routes import openai_routes
from router_core.settings import RetrySettings
from tests.router_core.test_router import NO_HEALTH
from tests.transports.servers import serve_app

SEED = 20261202
ROUNDS = 40
"""Requests per (backend, surface) pair: bounded, so the test runs in seconds."""


def _openai_stream() -> bytes:
    chunks: list[dict[str, Any]] = [
        {"id": "c1", "object": "chat.completion.chunk", "model": "m1", "choices": [delta]}
        for delta in (
            {"index": 0, "delta": {"role": "assistant", "content": ""}},
            {"index": 0, "delta": {"content": "Hello "}},
            {"index": 0, "delta": {"content": "there."}},
            {"index": 0, "delta": {}, "finish_reason": "stop"},
        )
    ]
    chunks.append(
        {
            "id": "c1",
            "object": "chat.completion.chunk",
            "model": "m1",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    return body + b"data: [DONE]\n\n"


def _anthropic_stream() -> bytes:
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "m1",
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 3, "output_tokens": 0},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 1},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(doc) + b"\n\n"
        for name, doc in events
    )


def _mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four seeded mutations of a well-formed stream."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(out) + 1)
        choice = rng.randrange(8)
        if choice == 0 and out:  # flip a byte
            out[min(where, len(out) - 1)] = rng.randrange(256)
        elif choice == 1:  # insert framing characters
            out[where:where] = rng.choice([b"\r", b"\n", b"\r\n", b"\x00", b"\n\n", b":"])
        elif choice == 2:  # cut the stream here
            del out[where:]
        elif choice == 3:  # double a slice (repeated or interleaved events)
            end = min(len(out), where + rng.randrange(1, 200))
            out[where:where] = out[where:end]
        elif choice == 4:  # random bytes
            out[where:where] = rng.randbytes(rng.randrange(1, 64))
        elif choice == 5:  # a huge field with no line end for a while
            out[where:where] = b"data: " + b"x" * rng.choice([1 << 10, 1 << 16, 1 << 20])
        elif choice == 6:  # a field name only, or an unknown field
            out[where:where] = rng.choice([b"data\n", b"event\n", b"id: \x00\n", b"retry: -1\n"])
        else:  # delete a slice
            del out[where : where + rng.randrange(1, 40)]
    return bytes(out)


@asynccontextmanager
async def hostile_backend(kind: str, rng: random.Random) -> AsyncIterator[tuple[str, list[int]]]:
    """An aiohttp upstream that streams a mutated answer for every chat request; yields its base
    URL and the list of mutated stream lengths it sent."""
    good = _openai_stream() if kind == "openai" else _anthropic_stream()
    sent: list[int] = []

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        body = _mutate(rng, good)
        sent.append(len(body))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for start in range(0, len(body), 997):  # arbitrary chunk edges, across event borders
            await response.write(body[start : start + 997])
        await response.write_eof()
        return response

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m1", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", chat)
    app.router.add_get("/v1/models", models)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1", sent
    finally:
        await runner.cleanup()


def _request(surface: str, stream: bool) -> tuple[str, dict[str, object]]:
    if surface == "messages":
        return "/v1/messages", {
            "model": "m1",
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        }
    return "/v1/chat/completions", {
        "model": "m1",
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }


def _judge(response: httpx.Response, body: bytes) -> None:
    """An answer is a stream (200, event-stream) or a JSON error in the surface's shape."""
    if response.status_code == 200:
        kind = response.headers["content-type"]
        assert kind.startswith(("text/event-stream", "application/json")), kind
        return
    assert 400 <= response.status_code < 600, response.status_code
    doc = orjson.loads(body)
    assert isinstance(doc, dict) and ("error" in doc or doc.get("type") == "error"), doc


@pytest.mark.parametrize(
    ("kind", "surface"),
    [("openai", "messages"), ("openai", "chat"), ("anthropic", "chat")],
)
async def test_mutated_upstream_streams_end_cleanly(kind: str, surface: str) -> None:
    rng = random.Random(f"{SEED}-{kind}-{surface}")
    try:
        async with hostile_backend(kind, rng) as (url, sent):
            backend = BackendSpec.model_validate(
                {"name": "hostile", "type": kind, "url": url, "api_key": "k", "models": ["m1"]}
            )
            settings = RouterSettings(
                health=NO_HEALTH,
                retries=RetrySettings(attempts=1, backoff_base=0.0),
                breaker=BreakerSettings(enabled=False),  # every request reaches the upstream
            )
            router = Router([backend], settings)
            async with router, serve_app(Starlette(routes=openai_routes(router))) as base:
                async with httpx.AsyncClient(base_url=base, timeout=20) as client:
                    statuses: list[int] = []
                    errors = 0
                    for round_ in range(ROUNDS):
                        path, doc = _request(surface, stream=round_ % 4 != 0)
                        async with asyncio.timeout(20):  # never a hang
                            async with client.stream("POST", path, json=doc) as response:
                                body = await response.aread()
                        _judge(response, body)
                        statuses.append(response.status_code)
                        if response.status_code != 200 or b"error" in body:
                            errors += 1
                    assert len(sent) == ROUNDS  # every request reached the upstream
                    assert len(set(sent)) > ROUNDS // 4  # the mutator varied the streams
                    assert 0 < errors < ROUNDS, statuses  # garbage was seen, and not all of it
                    # still serving: the models list answers from the same process
                    models = await client.get("/v1/models")
                    assert models.status_code == 200 and "m1" in models.text
    finally:
        await close_session()
