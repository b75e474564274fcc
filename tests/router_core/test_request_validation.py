"""`/v1/chat/completions` refuses malformed bodies itself (400, OpenAI's error shape) before any
backend is chosen, and a backend's answer that blames the request (400, 404, 413, 422) is
relayed without counting against the backend's health, over real HTTP to the fake model server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from router_core import BreakerSettings, RetrySettings
from router_core.http import close_session
from tests.router_core.llm_servers import Fault, Reply, openai_server
from tests.router_core.test_openai_api import TOOL, assert_error, body, junction
from tests.router_core.test_router import spec


@pytest.fixture(autouse=True)
async def _shared_session() -> AsyncIterator[None]:
    yield
    await close_session()


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


BAD: list[tuple[dict[str, Any], str, str]] = [
    # the case: a body some upstreams answer with a 5xx
    (body(tools=[1, 2]), "tools[0]", "invalid_type"),
    (body(tools={"get_time": {}}), "tools", "invalid_type"),
    (body(tools=[{"type": "function"}]), "tools[0].function", "missing_required_parameter"),
    (
        body(tools=[{"type": "function", "function": {"name": 3}}]),
        "tools[0].function.name",
        "invalid_type",
    ),
    (
        body(tools=[{"type": "function", "function": {}}]),
        "tools[0].function.name",
        "missing_required_parameter",
    ),
    (
        body(tools=[{"type": "function", "function": {"name": "f", "parameters": "{}"}}]),
        "tools[0].function.parameters",
        "invalid_type",
    ),
    (body(tools=[{"type": "retrieval"}]), "tools[0].type", "invalid_value"),
    (body(tool_choice="always"), "tool_choice", "invalid_value"),
    (body(tool_choice=3), "tool_choice", "invalid_type"),
    (
        body(tool_choice={"type": "function", "function": {}}),
        "tool_choice.function.name",
        "missing_required_parameter",
    ),
    (body(stream="yes"), "stream", "invalid_type"),
    (body(stream=1), "stream", "invalid_type"),
    (body(stream_options={"include_usage": "yes"}), "stream_options.include_usage", "invalid_type"),
    (body(n="2"), "n", "invalid_type"),
    (body(n=0), "n", "invalid_value"),
    (body(n=True), "n", "invalid_type"),
    (body(temperature="hot"), "temperature", "invalid_type"),
    (body(temperature=7), "temperature", "invalid_value"),
    (body(top_p=1.5), "top_p", "invalid_value"),
    (body(max_tokens=1.5), "max_tokens", "invalid_type"),
    (body(max_tokens=0), "max_tokens", "invalid_value"),
    (body(max_completion_tokens="many"), "max_completion_tokens", "invalid_type"),
    (body(stop=[1]), "stop", "invalid_type"),
    (body(seed="s"), "seed", "invalid_type"),
    (body(user=5), "user", "invalid_type"),
    (body(response_format="json"), "response_format", "invalid_type"),
    ({"model": "m1", "messages": []}, "messages", "empty_array"),
    ({"model": "m1", "messages": {"role": "user"}}, "messages", "invalid_type"),
    ({"model": 5, "messages": [user("hi")]}, "model", "invalid_type"),
    ({"model": "m1", "messages": ["hi"]}, "messages[0]", "invalid_type"),
    (
        {"model": "m1", "messages": [{"content": "hi"}]},
        "messages[0].role",
        "missing_required_parameter",
    ),
    (
        {"model": "m1", "messages": [{"role": "robot", "content": "hi"}]},
        "messages[0].role",
        "invalid_value",
    ),
    (
        {"model": "m1", "messages": [{"role": ["user"], "content": "hi"}]},
        "messages[0].role",
        "invalid_value",
    ),
    (
        {"model": "m1", "messages": [{"role": "user"}]},
        "messages[0].content",
        "missing_required_parameter",
    ),
    ({"model": "m1", "messages": [user(42)]}, "messages[0].content", "invalid_type"),
    ({"model": "m1", "messages": [user([1])]}, "messages[0].content[0]", "invalid_type"),
    (
        {"model": "m1", "messages": [user([{"text": "hi"}])]},
        "messages[0].content[0].type",
        "missing_required_parameter",
    ),
    (
        {"model": "m1", "messages": [user([{"type": "text", "text": 1}])]},
        "messages[0].content[0].text",
        "invalid_type",
    ),
    (
        {"model": "m1", "messages": [user([{"type": "image_url", "image_url": {"url": 1}}])]},
        "messages[0].content[0].image_url.url",
        "invalid_type",
    ),
    (
        {
            "model": "m1",
            "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": "x"}]}],
        },
        "messages[0].content[0].type",
        "invalid_value",
    ),
    (
        {
            "model": "m1",
            "messages": [user("hi"), {"role": "assistant", "tool_calls": [{"id": "c"}]}],
        },
        "messages[1].tool_calls[0].function",
        "invalid_type",
    ),
    (
        {
            "model": "m1",
            "messages": [
                user("hi"),
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 3}}],
                },
            ],
        },
        "messages[1].tool_calls[0].function.arguments",
        "invalid_type",
    ),
    (
        {"model": "m1", "messages": [{"role": "tool", "content": "12:00"}]},
        "messages[0].tool_call_id",
        "missing_required_parameter",
    ),
    (
        {"model": "m1", "messages": [user("hi"), {"role": "user", "content": "x", "name": 1}]},
        "messages[1].name",
        "invalid_type",
    ),
]


async def test_malformed_bodies_are_refused_before_any_backend() -> None:
    async with openai_server(["m1"]) as upstream:
        breaker = BreakerSettings(consecutive_failures=1)
        async with junction([spec("a", upstream)], breaker=breaker) as (client, router):
            for doc, param, code in BAD:
                response = await client.post("/v1/chat/completions", json=doc)
                error = assert_error(response, 400, f"'{param}'")
                assert error == {
                    "message": error["message"],
                    "type": "invalid_request_error",
                    "param": param,
                    "code": code,
                }, doc
                assert response.headers["x-junction-backend"] == "none"
            assert upstream.chat_requests == []
            entry = router.registry.get("a")
            assert entry is not None
            assert entry.stats.selections == 0 and entry.breaker.state == "closed"


GOOD: list[dict[str, Any]] = [
    body(),
    body(stream=None, temperature=None, tools=None, tool_choice=None, n=None),
    body(tools=[TOOL], tool_choice="auto", parallel_tool_calls=False),
    body(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_time"}}),
    body(tools=[{"type": "function", "function": {"name": "f", "strict": True}}]),
    body(tools=[{"type": "custom", "custom": {"name": "grammar"}}]),
    body(temperature=0, top_p=1, max_tokens=5, n=1, seed=3, stop="\n", user="u", logprobs=True),
    body(
        temperature=1.5, presence_penalty=-1, stop=["a", "b"], top_logprobs=2, metadata={"k": "v"}
    ),
    body(stream=True, stream_options={"include_usage": True}),
    body(response_format={"type": "json_object"}, logit_bias={"50256": -100}),
    body(reasoning_effort="low", vendor_option={"anything": [1, 2]}),  # unknown keys pass
    {
        "model": "m1",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "system", "content": [{"type": "text", "text": "really"}]},
            user(
                [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "video_url", "video_url": {"url": "http://x/v.mp4"}},  # vLLM's
                ]
            ),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": '{"tz": "UTC"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
            {"role": "user", "content": "thanks", "name": "ann"},
        ],
    },
]


async def test_valid_bodies_still_reach_the_backend() -> None:
    async with openai_server(["m1"]) as upstream, junction([spec("a", upstream)]) as (client, _):
        for doc in GOOD:
            response = await client.post("/v1/chat/completions", json=doc)
            assert response.status_code == 200, (doc, response.text)
        assert len(upstream.chat_requests) == len(GOOD)
        assert [r.body for r in upstream.chat_requests] == GOOD  # relayed unchanged


@pytest.mark.parametrize("stream", [False, True])
async def test_client_faults_from_a_backend_are_relayed_and_not_counted(stream: bool) -> None:
    """Answers that blame the request (400, 404, 413, 422) leave the breaker closed even when
    one failure would open it; 429 and 5xx open it."""
    async with openai_server(["m1"]) as upstream:
        options: dict[str, Any] = {
            "breaker": BreakerSettings(consecutive_failures=1),
            "retries": RetrySettings(attempts=1),
        }
        async with junction([spec("a", upstream)], **options) as (client, router):
            entry = router.registry.get("a")
            assert entry is not None
            for status in (400, 404, 413, 422):
                upstream.script([Reply(fault=Fault.http(status))])
                response = await client.post("/v1/chat/completions", json=body(stream=stream))
                assert_error(response, status, "injected fault")
                assert entry.breaker.state == "closed" and entry.stats.failures == 0
                assert entry.available()
            upstream.script([Reply(text="still here", chunk_size=100)])
            response = await client.post("/v1/chat/completions", json=body(stream=stream))
            assert response.status_code == 200 and "still" in response.text

            for status in (429, 500):
                entry.breaker.reset()
                upstream.script([Reply(fault=Fault.http(status))])
                response = await client.post("/v1/chat/completions", json=body(stream=stream))
                assert response.status_code in (429, 502)
                assert entry.breaker.state == "open", status
            assert entry.stats.failures == 2
