"""The OpenAI-compatible surface served by uvicorn on loopback, in front of fake OpenAI, Ollama
and Anthropic servers: pass-through and translation, streaming and not, tools, headers,
`/v1/models`, `/admin/backends`, and every bad input the router_core issue lists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette

from router_core import (
    BackendSpec,
    BreakerSettings,
    RetrySettings,
    Router,
    RouterSettings,
)
from router_core.http import close_session
from router_core.routes import openai_routes
from tests.router_core.llm_servers import (
    SERVERS,
    Call,
    Fault,
    Reply,
    openai_server,
)
from tests.router_core.test_router import NO_HEALTH, spec
from tests.transports.servers import serve_app


@pytest.fixture(autouse=True)
async def _shared_session() -> AsyncIterator[None]:
    yield
    await close_session()


@asynccontextmanager
async def junction(
    specs: Sequence[BackendSpec], **options: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Router]]:
    """The router's routes under uvicorn; yields an HTTP client for it and the router."""
    options.setdefault("health", NO_HEALTH)
    options.setdefault("retries", RetrySettings(attempts=2, backoff_base=0.0))
    router = Router(specs, RouterSettings(**options))
    async with router:
        async with serve_app(Starlette(routes=openai_routes(router))) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                yield client, router


@asynccontextmanager
async def upstreams(*kinds: str) -> AsyncIterator[list[Any]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(SERVERS[k](["m1"])) for k in kinds]


def body(model: str = "m1", **options: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **options}


def sse_data(text: str) -> list[str]:
    """The data fields of an SSE body, in order."""
    return [
        line.removeprefix("data:").strip()
        for line in text.replace("\r\n", "\n").split("\n")
        if line.startswith("data:")
    ]


def assert_error(response: httpx.Response, status: int, *needles: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    assert response.headers["content-type"].startswith("application/json")
    if response.url.path == "/v1/chat/completions":
        assert float(response.headers["x-junction-overhead-ms"]) >= 0
        assert response.headers["x-junction-backend"]
    error = response.json()["error"]
    for needle in needles:
        assert needle in error["message"], error
    return dict(error)


TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "what time is it",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
    },
}


# --------------------------------------------------------------------------- happy paths


async def test_non_streaming_is_passed_through_from_openai_backends() -> None:
    async with openai_server(["m1"]) as upstream, junction([spec("a", upstream)]) as (client, _):
        upstream.script([Reply(text="hello there")])
        response = await client.post("/v1/chat/completions", json=body(seed=3))
        assert response.status_code == 200
        assert response.headers["x-junction-backend"] == "a"
        assert float(response.headers["x-junction-overhead-ms"]) >= 0
        doc = response.json()
        assert doc["id"] == "chatcmpl_1"  # the upstream's own answer, not a re-encoding
        assert doc["choices"][0]["message"]["content"] == "hello there"
        assert upstream.chat_requests[0].body["seed"] == 3  # unknown keys reach OpenAI as-is


async def test_streaming_is_passed_through_with_tool_call_deltas() -> None:
    async with openai_server(["m1"]) as upstream, junction([spec("a", upstream)]) as (client, _):
        upstream.script([Reply(text="checking", tool_calls=[Call("get_time", {"tz": "UTC"})])])
        response = await client.post("/v1/chat/completions", json=body(stream=True, tools=[TOOL]))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-junction-backend"] == "a"
        data = sse_data(response.text)
        assert data[-1] == "[DONE]"
        chunks = [orjson.loads(d) for d in data[:-1]]
        assert all(c["id"].startswith("chatcmpl_") for c in chunks)
        arguments = "".join(
            call["function"].get("arguments", "")
            for c in chunks
            for choice in c["choices"]
            for call in choice["delta"].get("tool_calls", [])
        )
        assert orjson.loads(arguments) == {"tz": "UTC"}


@pytest.mark.parametrize("kind", ["ollama", "anthropic"])
async def test_other_backends_are_translated(kind: str) -> None:
    async with upstreams(kind) as (upstream,), junction([spec("x", upstream)]) as (client, _):
        upstream.script(
            [
                Reply(text="it is", tool_calls=[Call("get_time", {"tz": "UTC"})]),
                Reply(text="streamed", tool_calls=[Call("get_time", {"tz": "CET"})]),
            ]
        )
        response = await client.post("/v1/chat/completions", json=body(tools=[TOOL], user="u"))
        assert response.status_code == 200, response.text
        assert response.headers["x-junction-backend"] == "x"
        doc = response.json()
        assert doc["object"] == "chat.completion" and doc["model"] == "m1"
        choice = doc["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        assert choice["message"]["content"] == "it is"
        call = choice["message"]["tool_calls"][0]
        assert call["function"]["name"] == "get_time"
        assert orjson.loads(call["function"]["arguments"]) == {"tz": "UTC"}
        assert doc["usage"]["total_tokens"] == 15
        assert "user" not in upstream.chat_requests[0].body  # OpenAI-only key dropped

        options: dict[str, Any] = {"stream_options": {"include_usage": True}}
        response = await client.post(
            "/v1/chat/completions", json=body(stream=True, tools=[TOOL], **options)
        )
        assert response.status_code == 200
        data = sse_data(response.text)
        assert data[-1] == "[DONE]"
        chunks = [orjson.loads(d) for d in data[:-1]]
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text == "streamed"
        calls = [
            call
            for c in chunks
            if c["choices"]
            for call in c["choices"][0]["delta"].get("tool_calls", [])
        ]
        assert [orjson.loads(c["function"]["arguments"]) for c in calls] == [{"tz": "CET"}]
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finishes[-1] == "tool_calls"
        assert any(c.get("usage") for c in chunks)


async def test_models_are_aggregated_and_health_aware() -> None:
    breaker = BreakerSettings(consecutive_failures=1, cooldown=60, max_cooldown=60)
    async with upstreams("openai", "ollama") as (a, b):
        specs = [spec("a", a, ["m1", "m2"], breaker=breaker), spec("b", b, ["m1", "m3"])]
        async with junction(specs, aliases={"fast": "m2"}) as (client, _):
            response = await client.get("/v1/models")
            models = {m["id"]: m["backends"] for m in response.json()["data"]}
            assert models == {"fast": ["a"], "m1": ["a", "b"], "m2": ["a"], "m3": ["b"]}
            a.fault(Fault.http(500))
            response = await client.post("/v1/chat/completions", json=body("m2"))
            assert response.status_code == 502  # and a's circuit is now open
            response = await client.get("/v1/models")
            models = {m["id"]: m["backends"] for m in response.json()["data"]}
            assert models == {"m1": ["b"], "m3": ["b"]}


# --------------------------------------------------------------------------- bad input


async def test_bad_requests() -> None:
    async with openai_server(["m1", "m2"]) as upstream:
        async with junction([spec("a", upstream, ["m1", "m2"])]) as (client, _):
            post = client.post
            response = await post("/v1/chat/completions", content=b"{not json")
            assert_error(response, 400, "not valid JSON")
            response = await post("/v1/chat/completions", json=[1, 2])
            assert_error(response, 400, "JSON object")
            response = await post("/v1/chat/completions", json={"model": "m1"})
            assert_error(response, 400, "'messages' is missing")
            response = await post("/v1/chat/completions", json={"model": "m1", "messages": 3})
            assert_error(response, 400, "'messages'")
            response = await post("/v1/chat/completions", json={"messages": body()["messages"]})
            assert_error(response, 400, "'model'")
            response = await post("/v1/chat/completions", json=body("gpt-nope"))
            error = assert_error(response, 404, "'gpt-nope'", "m1, m2")
            assert error["code"] == "model_not_found"
            assert response.headers["x-junction-backend"] == "none"
            response = await client.get("/v1/chat/completions")
            assert response.status_code == 405
            assert upstream.chat_requests == []


async def test_oversized_bodies_get_413() -> None:
    async with openai_server(["m1"]) as upstream, junction([spec("a", upstream)]) as (client, _):
        huge = orjson.dumps(body(padding="x" * (20 * 1024 * 1024)))
        response = await client.post("/v1/chat/completions", content=huge)
        assert_error(response, 413, "limit")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(40):
            yield b" " * 1024

    async with openai_server(["m1"]) as upstream:
        async with junction([spec("a", upstream)], max_body_bytes=16 * 1024) as (client, _):
            response = await client.post("/v1/chat/completions", content=chunks())
            assert_error(response, 413, "16384-byte limit")
            assert upstream.chat_requests == []


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        (Fault.malformed(), "not valid JSON"),
        (Fault.wrong_content_type(), "text/html"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_backend_garbage_is_a_clear_502(fault: Fault, needle: str, stream: bool) -> None:
    async with openai_server(["m1"]) as upstream, junction([spec("a", upstream)]) as (client, _):
        upstream.fault(fault if not stream or fault.kind != "malformed" else Fault.malformed(0))
        response = await client.post("/v1/chat/completions", json=body(stream=stream))
        # in a stream the garbage is the first event: still before the first byte, so a 502
        assert_error(response, 502, "backend 'a'", needle)
        assert response.headers["x-junction-backend"] == "a"


async def test_backend_errors_map_to_statuses() -> None:
    async with openai_server(["m1"]) as upstream, junction([spec("a", upstream)]) as (client, _):
        upstream.fault(Fault.http(500))
        response = await client.post("/v1/chat/completions", json=body())
        assert_error(response, 502, "HTTP 500")
        upstream.fault(Fault.http(400))
        response = await client.post("/v1/chat/completions", json=body())
        assert_error(response, 400, "injected fault")  # the upstream's own error, relayed
        upstream.fault(Fault.rate_limit(retry_after="45"))
        response = await client.post("/v1/chat/completions", json=body())
        assert_error(response, 429)
        assert response.headers["retry-after"] == "45"


async def test_hanging_backend_hits_the_deadline() -> None:
    async with openai_server(["m1"]) as upstream:
        async with junction([spec("a", upstream)], deadline=0.3) as (client, router):
            upstream.fault(Fault.hang())
            for stream in (False, True):
                response = await client.post("/v1/chat/completions", json=body(stream=stream))
                assert_error(response, 504, "deadline")
            entry = router.registry.get("a")
            assert entry is not None and entry.stats.in_flight == 0


@pytest.mark.parametrize("kind", ["openai", "ollama", "anthropic"])
async def test_stream_broken_after_the_first_byte_ends_with_an_error_event(kind: str) -> None:
    async with upstreams(kind, "openai") as (a, b):
        specs = [spec("a", a), spec("b", b)]
        async with junction(specs, strategy="priority") as (client, router):
            # after=5: past Anthropic's preamble events, so some text has gone out
            a.script([Reply(text="partial answer here", fault=Fault.reset(after=5))])
            response = await client.post("/v1/chat/completions", json=body(stream=True))
            assert response.status_code == 200
            data = sse_data(response.text)
            assert "[DONE]" not in data
            error = orjson.loads(data[-1])["error"]
            assert "backend 'a'" in error["message"] and error["code"] == 502
            assert all(orjson.loads(d).get("choices") is not None for d in data[:-1])
            assert b.chat_requests == []
            entry = router.registry.get("a")
            assert entry is not None and entry.stats.in_flight == 0


@pytest.mark.parametrize("kind", ["openai", "ollama", "anthropic"])
async def test_client_disconnect_cancels_the_upstream(kind: str) -> None:
    async with upstreams(kind) as (upstream,), junction([spec("a", upstream)]) as (client, _):
        upstream.script([Reply(text="z" * 400, chunk_size=1, chunk_delay=0.02)])
        async with client.stream(
            "POST", "/v1/chat/completions", json=body(stream=True)
        ) as response:
            assert response.status_code == 200
            async for _ in response.aiter_raw():
                break  # got the first bytes; hang up
        await upstream.wait_disconnect(timeout=5)
        for _ in range(100):
            state = (await client.get("/admin/backends")).json()["backends"][0]
            if state["in_flight"] == 0:
                break
            await asyncio.sleep(0.02)
        assert state["in_flight"] == 0
        assert state["failures"] == 0  # the client left; the backend did nothing wrong


# --------------------------------------------------------------------------- admin


async def test_admin_backends_state() -> None:
    async with openai_server(["m1"]) as upstream, junction([spec("a", upstream)]) as (client, _):
        await client.post("/v1/chat/completions", json=body())
        (state,) = (await client.get("/admin/backends")).json()["backends"]
        assert state["name"] == "a" and state["type"] == "openai"
        assert state["circuit"]["state"] == "closed" and state["available"] is True
        assert state["in_flight"] == 0 and state["successes"] == 1
        assert state["latency_ewma_ms"] > 0 and state["models"] == ["m1"]


async def test_runtime_registration_with_heartbeat_ttl() -> None:
    async with upstreams("openai", "openai") as (fixed, extra):
        async with junction([spec("fixed", fixed)]) as (client, _):
            registration = {"name": "dyn", "type": "openai", "url": extra.url, "models": ["m9"]}
            response = await client.post("/admin/backends", json={**registration, "ttl": 30})
            assert response.status_code == 201, response.text
            assert response.json()["heartbeat"] == "/admin/backends/dyn/heartbeat"
            response = await client.post("/v1/chat/completions", json=body("m9"))
            assert response.headers["x-junction-backend"] == "dyn"
            assert (await client.post("/admin/backends/dyn/heartbeat")).status_code == 200
            response = await client.post("/admin/backends", json={**registration, "ttl": 30})
            assert response.status_code == 200  # re-registering is a heartbeat
            assert (await client.delete("/admin/backends/dyn")).status_code == 204
            response = await client.post("/v1/chat/completions", json=body("m9"))
            assert_error(response, 404, "'m9'")

            # one that stops heartbeating is removed
            response = await client.post("/admin/backends", json={**registration, "ttl": 0.2})
            assert response.status_code == 201
            names = ["dyn"]
            for _ in range(100):
                await asyncio.sleep(0.05)
                state = (await client.get("/admin/backends")).json()["backends"]
                names = [s["name"] for s in state]
                if "dyn" not in names:
                    break
            assert names == ["fixed"]
            assert (await client.post("/admin/backends/dyn/heartbeat")).status_code == 404

            # refusals
            clash = {**registration, "name": "fixed"}
            assert (await client.post("/admin/backends", json=clash)).status_code == 409
            assert (await client.delete("/admin/backends/fixed")).status_code == 409
            assert (await client.delete("/admin/backends/ghost")).status_code == 404
            response = await client.post("/admin/backends", json={**registration, "type": "x"})
            assert_error(response, 400, "type")
            response = await client.post("/admin/backends", json={**registration, "bogus": 1})
            assert_error(response, 400, "bogus")
            response = await client.post("/admin/backends", content=b"nope")
            assert_error(response, 400, "not valid JSON")


async def test_affinity_header_keeps_a_session_on_one_backend() -> None:
    async with upstreams("openai", "openai", "openai") as fleet:
        specs = [spec(n, s) for n, s in zip("abc", fleet, strict=True)]
        async with junction(specs, strategy="consistent_hash") as (client, _):
            seen: dict[str, set[str]] = {}
            for i in range(30):
                key = f"session-{i % 6}"
                response = await client.post(
                    "/v1/chat/completions", json=body(), headers={"x-junction-affinity": key}
                )
                seen.setdefault(key, set()).add(response.headers["x-junction-backend"])
            assert all(len(backends) == 1 for backends in seen.values())
            assert len(set().union(*seen.values())) > 1


async def test_junction_glue_builds_the_router_and_reports_backends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from junction.build import build_router
    from junction.cli.inspect import backends_command
    from junction.config import JunctionConfig

    async with openai_server(["m1", "m2"]) as upstream:
        config = JunctionConfig.model_validate(
            {
                "backends": {
                    "local": {"type": "openai", "url": upstream.url, "weight": 2},
                    "dead": {"type": "ollama", "url": "http://127.0.0.1:9", "models": ["x"]},
                },
                "routing": {"strategy": "round_robin"},
            }
        )
        router = build_router(config)
        assert router.settings.strategy == "round_robin"
        local = router.registry.get("local")
        assert local is not None and local.weight == 2 and local.static_models is None
        status = await asyncio.to_thread(backends_command, config, as_json=True)
        assert status == 1  # "dead" does not answer
        report = orjson.loads(capsys.readouterr().out)
        rows = {row["name"]: row for row in report["backends"]}
        assert rows["local"]["healthy"] is True and rows["local"]["models"] == ["m1", "m2"]
        assert rows["dead"]["healthy"] is False and "cannot connect" in rows["dead"]["probe_error"]


async def test_runtime_registration_body_is_read_under_the_limit() -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        yield b'{"name": "dyn", "type": "openai", "url": "http://127.0.0.1:9", "models": ["'
        for _ in range(40):
            yield b"x" * 1024
        yield b'"]}'

    async with upstreams("openai") as (fixed,):
        async with junction([spec("fixed", fixed)], max_body_bytes=16 * 1024) as (client, _):
            response = await client.post("/admin/backends", content=chunks())
            assert_error(response, 413, "16384-byte limit")
            names = [s["name"] for s in (await client.get("/admin/backends")).json()["backends"]]
            assert names == ["fixed"]
