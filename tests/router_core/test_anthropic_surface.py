"""`POST /v1/messages` as Anthropic's official Python SDK calls it: a plain answer, a streamed
one, a tool-use round trip, all routed to an OpenAI-compatible and an Ollama backend (neither
speaks Anthropic's API), and errors in Anthropic's shape."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from router_core import Router, RouterSettings
from router_core.routes import openai_routes
from tests.router_core.llm_servers import Call, Reply, ollama_server, openai_server
from tests.router_core.test_router import spec
from tests.transports.servers import serve_app

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@contextlib.asynccontextmanager
async def surface(backend: Any) -> AsyncIterator[anthropic.AsyncAnthropic]:
    from starlette.applications import Starlette

    router = Router([spec("b", backend)], RouterSettings())
    async with router, serve_app(Starlette(routes=openai_routes(router))) as base:
        yield anthropic.AsyncAnthropic(base_url=base, api_key="x", max_retries=0)


@pytest.mark.parametrize("server", [openai_server, ollama_server])
async def test_a_message_and_a_stream(server: Any) -> None:
    async with server(models=["m1"]) as backend:
        backend.script([Reply(text="Hello there."), Reply(text="Streamed hello.")])
        async with surface(backend) as client:
            message = await client.messages.create(
                model="m1",
                max_tokens=64,
                system="Be brief.",
                messages=[{"role": "user", "content": "hi"}],
            )
            async with client.messages.stream(
                model="m1", max_tokens=64, messages=[{"role": "user", "content": "again"}]
            ) as stream:
                texts = [text async for text in stream.text_stream]
                final = await stream.get_final_message()
    assert [block.text for block in message.content if block.type == "text"] == ["Hello there."]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == 5
    assert "".join(texts) == "Streamed hello." and final.stop_reason == "end_turn"
    first = backend.chat_requests[0].body
    assert first["messages"][0]["role"] == "system"


async def test_a_tool_use_round_trip() -> None:
    async with openai_server(models=["m1"]) as backend:
        backend.script(
            [
                Reply(tool_calls=[Call("get_weather", {"city": "Paris"})]),
                Reply(text="It is sunny in Paris."),
            ]
        )
        async with surface(backend) as client:
            first = await client.messages.create(
                model="m1",
                max_tokens=64,
                tools=TOOLS,
                messages=[{"role": "user", "content": "weather in Paris?"}],
            )
            assert first.stop_reason == "tool_use"
            use = next(block for block in first.content if block.type == "tool_use")
            assert use.name == "get_weather" and use.input == {"city": "Paris"}
            second = await client.messages.create(
                model="m1",
                max_tokens=64,
                tools=TOOLS,
                messages=[
                    {"role": "user", "content": "weather in Paris?"},
                    {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
                        ],
                    },
                ],
            )
    assert [b.text for b in second.content if b.type == "text"] == ["It is sunny in Paris."]
    sent = backend.chat_requests[1].body["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}
    assert backend.chat_requests[0].body["tools"][0]["function"]["name"] == "get_weather"


async def test_errors_are_anthropics() -> None:
    async with openai_server(models=["m1"]) as backend, surface(backend) as client:
        with pytest.raises(anthropic.BadRequestError) as bad:
            await client.messages.create(
                model="m1",
                max_tokens=0,
                messages=[{"role": "user", "content": "hi"}],
            )
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.create(
                model="no-such-model", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "max_tokens" in bad.value.body["error"]["message"]  # type: ignore[index]


async def test_a_body_over_the_limit_is_refused_in_anthropics_shape() -> None:
    import httpx
    from starlette.applications import Starlette

    async with openai_server(models=["m1"]) as backend:
        router = Router([spec("b", backend)], RouterSettings(max_body_bytes=1024))
        async with router, serve_app(Starlette(routes=openai_routes(router))) as base:
            async with httpx.AsyncClient() as http:
                reply = await http.post(
                    f"{base}/v1/messages",
                    json={
                        "model": "m1",
                        "max_tokens": 8,
                        "messages": [{"role": "user", "content": "x" * 4096}],
                    },
                )
    assert reply.status_code == 413
    assert reply.json()["error"]["type"] == "request_too_large"
    assert backend.chat_requests == []
