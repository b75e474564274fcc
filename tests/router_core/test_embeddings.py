"""`POST /v1/embeddings` routed like chat, as OpenAI's official SDK calls it: an OpenAI-compatible
backend gets the request as is, Ollama's are translated both ways, a backend type with no
embeddings (Anthropic) is passed over, and a malformed body is a 400 in OpenAI's shape."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from router_core import Router, RouterSettings
from router_core.routes import openai_routes
from tests.router_core.llm_servers import (
    anthropic_server,
    fake_vector,
    ollama_server,
    openai_server,
)
from tests.router_core.test_router import spec
from tests.transports.servers import serve_app

pytestmark = pytest.mark.asyncio


@contextlib.asynccontextmanager
async def surface(*specs: Any, strategy: str = "priority") -> AsyncIterator[str]:
    from starlette.applications import Starlette

    router = Router(list(specs), RouterSettings(strategy=strategy))  # type: ignore[arg-type]
    async with router, serve_app(Starlette(routes=openai_routes(router))) as base:
        yield base


async def test_the_sdk_embeds_through_an_openai_backend() -> None:
    async with (
        openai_server(models=["emb"]) as backend,
        surface(spec("o", backend, ["emb"])) as base,
    ):
        client = openai.AsyncOpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
        answer = await client.embeddings.create(model="emb", input=["hello", "hi"])
    assert [d.embedding for d in answer.data] == [fake_vector("hello"), fake_vector("hi")]
    assert answer.model == "emb" and answer.usage.total_tokens == 2
    forwarded = backend.requests[-1].body
    assert forwarded["model"] == "emb" and forwarded["input"] == ["hello", "hi"]


async def test_ollama_is_translated_and_anthropic_passed_over() -> None:
    async with (
        anthropic_server(models=["emb"]) as claude,
        ollama_server(models=["emb"]) as ollama,
        surface(spec("a", claude, ["emb"]), spec("l", ollama, ["emb"])) as base,
        httpx.AsyncClient() as http,
    ):
        reply = await http.post(f"{base}/v1/embeddings", json={"model": "emb", "input": "hey"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-junction-backend"] == "l"
    doc = reply.json()
    assert doc["data"] == [{"object": "embedding", "index": 0, "embedding": fake_vector("hey")}]
    assert doc["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert ollama.requests[-1].body == {"model": "emb", "input": ["hey"]}
    assert not any(r.path.endswith("embeddings") for r in claude.requests)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "emb"},
        {"model": "emb", "input": []},
        {"model": "emb", "input": [1.5]},
        {"model": "emb", "input": "x", "dimensions": "8"},
        {"input": "x"},
        ["not", "an", "object"],
    ],
)
async def test_malformed_bodies_are_refused_before_any_backend(body: Any) -> None:
    async with (
        openai_server(models=["emb"]) as backend,
        surface(spec("o", backend, ["emb"])) as base,
    ):
        async with httpx.AsyncClient() as http:
            reply = await http.post(f"{base}/v1/embeddings", json=body)
    assert reply.status_code == 400
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
    assert not any(r.path.endswith("embeddings") for r in backend.requests)
