"""The time-to-first-byte limit: a streamed attempt on a backend that hangs before its first
event is abandoned, counted against that backend, and retried on another one, whatever the
strategy (round_robin has no latency signal to route around a hung backend by itself). Real
HTTP to fake model servers that hang; the backends' read timeout is long on purpose, so only
the new limit can rescue a request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from router_core import (
    BreakerSettings,
    ChatRequest,
    Message,
    RouterSettings,
    TextDelta,
    TimeoutSettings,
)
from router_core.http import close_session
from tests.router_core.llm_servers import SERVERS, Fault, Reply, openai_server
from tests.router_core.test_openai_api import body, junction, sse_data
from tests.router_core.test_router import spec

SLOW_READ = TimeoutSettings(connect=2, read=60, probe=1)
"""Without the TTFB limit, a hung attempt would wait this long (past the request deadline)."""


@pytest.fixture(autouse=True)
async def _shared_session() -> AsyncIterator[None]:
    yield
    await close_session()


@pytest.mark.parametrize("kind", ["openai", "ollama", "anthropic"])
async def test_round_robin_streams_go_around_a_backend_that_hangs_before_its_first_byte(
    kind: str,
) -> None:
    async with AsyncExitStack() as stack:
        hung = await stack.enter_async_context(SERVERS[kind](["m1"]))
        good = await stack.enter_async_context(openai_server(["m1"]))
        hung.fault(Fault.hang())
        specs = [spec("hung", hung, timeouts=SLOW_READ), spec("good", good, timeouts=SLOW_READ)]
        options: dict[str, Any] = {
            "strategy": "round_robin",
            "ttfb_timeout": 1.0,  # the good one is held to it too: room for a busy machine
            "deadline": 10.0,
            "breaker": BreakerSettings(consecutive_failures=0),  # keep the hung one in rotation
        }
        async with junction(specs, **options) as (client, router):
            for _ in range(4):
                response = await client.post("/v1/chat/completions", json=body(stream=True))
                assert response.status_code == 200, response.text
                assert response.headers["x-junction-backend"] == "good"
                assert sse_data(response.text)[-1] == "[DONE]"
            entry = router.registry.get("hung")
            assert entry is not None
            assert entry.stats.failures >= 2 and entry.stats.in_flight == 0
            assert "time-to-first-byte" in (entry.stats.last_error or "")
            assert len(good.chat_requests) == 4


async def test_a_backend_can_set_its_own_limit_and_router_streams_obey_it() -> None:
    async with openai_server(["m1"]) as hung, openai_server(["m1"]) as good:
        hung.fault(Fault.hang())
        tight = SLOW_READ.model_copy(update={"ttfb": 0.2})
        specs = [spec("hung", hung, timeouts=tight), spec("good", good, timeouts=SLOW_READ)]
        options: dict[str, Any] = {"strategy": "priority", "ttfb_timeout": None, "deadline": 5.0}
        async with junction(specs, **options) as (_, router):
            request = ChatRequest(model="m1", messages=[Message(role="user", content="hi")])
            stream = router.stream(request)  # the path ACP turns take
            text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
            assert stream.backend == "good" and text == "Hello from the fake model."
            routed = stream.routed
            assert routed is not None
            assert [a.backend for a in routed.attempts] == ["hung", "good"]
            entry = router.registry.get("hung")
            assert entry is not None and entry.breaker.window_counts == (0, 1)


async def test_non_streaming_answers_are_not_cut_by_the_limit() -> None:
    """A non-streaming answer's first byte is the whole answer: a slow one is not a hang."""
    async with openai_server(["m1"]) as slow, openai_server(["m1"]) as other:
        slow.script([Reply(text="worth the wait", latency=0.5)])
        specs = [spec("slow", slow, timeouts=SLOW_READ), spec("other", other)]
        async with junction(specs, strategy="priority", ttfb_timeout=0.1) as (client, _):
            response = await client.post("/v1/chat/completions", json=body())
            assert response.status_code == 200
            assert response.headers["x-junction-backend"] == "slow"
            assert orjson.loads(response.content)["choices"][0]["message"]["content"] == (
                "worth the wait"
            )
            assert other.chat_requests == []


def test_the_limit_is_a_setting_with_a_default() -> None:
    assert RouterSettings().ttfb_timeout == 30.0
    assert RouterSettings(ttfb_timeout=None).ttfb_timeout is None
    assert TimeoutSettings().ttfb is None
    with pytest.raises(ValidationError, match="ttfb_timeout"):
        RouterSettings(ttfb_timeout=0)
    with pytest.raises(ValidationError, match="ttfb"):
        TimeoutSettings(ttfb=-1)
