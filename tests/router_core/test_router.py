"""The Router over real HTTP against fake OpenAI/Ollama/Anthropic servers: each strategy's
distribution, breaker transitions from real failures, retry/failover rules, Retry-After,
fallback chains, deadlines, discovery, aliases, health checks, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from typing import Any

import pytest

from router_core import (
    BackendFailed,
    BackendSpec,
    BreakerSettings,
    ChatRequest,
    DeadlineExceeded,
    Finish,
    HealthCheckSettings,
    Message,
    ModelNotFound,
    NoBackendAvailable,
    RetrySettings,
    Router,
    RouterSettings,
    StreamError,
    TextDelta,
    TimeoutSettings,
)
from router_core.http import close_session
from router_core.router import adapt_request
from tests.router_core.llm_servers import (
    SERVERS,
    FakeLLMServer,
    Fault,
    Reply,
    openai_server,
)

FAST = TimeoutSettings(connect=2, read=2, probe=1)
NO_HEALTH = HealthCheckSettings(enabled=False)


@pytest.fixture(autouse=True)
async def _shared_session() -> AsyncIterator[None]:
    yield
    await close_session()


def spec(
    name: str, server: FakeLLMServer, models: Sequence[str] | None = ("m1",), **options: Any
) -> BackendSpec:
    """A backend spec for a fake server (static models unless `models` is None)."""
    return BackendSpec.model_validate(
        {
            "name": name,
            "type": server.kind,
            "url": server.url,
            "models": list(models or []),
            "timeouts": FAST,
            **options,
        }
    )


def settings(**options: Any) -> RouterSettings:
    """Test defaults: no background probes (they would add requests), no backoff waits."""
    options.setdefault("health", NO_HEALTH)
    options.setdefault("retries", RetrySettings(attempts=3, backoff_base=0.0))
    return RouterSettings(**options)


def chat(model: str = "m1", text: str = "hello", **options: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content=text)], **options)


@asynccontextmanager
async def servers(count: int, kind: str = "openai", **options: Any) -> AsyncIterator[list[Any]]:
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(SERVERS[kind](**options)) for _ in range(count)]


def counts(fleet: Sequence[FakeLLMServer]) -> list[int]:
    return [len(s.chat_requests) for s in fleet]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `condition()` holds (polling; a state change, not a time, is asserted)."""
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


def in_flight(router: Router) -> dict[str, int]:
    return {e.name: e.stats.in_flight for e in router.registry.entries()}


# --------------------------------------------------------------------------- strategies


async def test_round_robin_spreads_evenly() -> None:
    async with servers(3) as fleet:
        names = ["a", "b", "c"]
        router = Router(
            [spec(n, s) for n, s in zip(names, fleet, strict=True)],
            settings(strategy="round_robin"),
        )
        picked = [(await router.complete(chat())).backend for _ in range(30)]
        assert counts(fleet) == [10, 10, 10]
        assert picked[:6] == ["a", "b", "c", "a", "b", "c"]


async def test_weighted_follows_weights() -> None:
    async with servers(3) as fleet:
        router = Router(
            [spec(f"w{w}", s, weight=w) for w, s in zip([1, 2, 3], fleet, strict=True)],
            settings(strategy="weighted"),
        )
        for _ in range(60):
            await router.complete(chat())
        assert counts(fleet) == [10, 20, 30]


async def test_least_outstanding_avoids_the_busy_backend() -> None:
    async with servers(2) as fleet:
        router = Router(
            [spec("a", fleet[0]), spec("b", fleet[1])], settings(strategy="least_outstanding")
        )
        held = router.stream(chat(stream=True))
        await held.open()  # in flight until closed
        busy = held.backend
        assert busy is not None
        picked = {(await router.complete(chat())).backend for _ in range(6)}
        assert picked == {"b" if busy == "a" else "a"}
        await held.aclose()
        assert in_flight(router) == {"a": 0, "b": 0}


async def test_consistent_hash_is_sticky_and_moves_only_the_removed_share() -> None:
    async with servers(3) as fleet:
        router = Router([], settings(strategy="consistent_hash"))
        for name, server in zip("abc", fleet, strict=True):
            router.register(spec(name, server), ttl=60)
        keys = [f"session-{i}" for i in range(40)]
        first = {k: (await router.complete(chat(), key=k)).backend for k in keys}
        again = {k: (await router.complete(chat(), key=k)).backend for k in keys}
        assert first == again
        assert len(set(first.values())) == 3
        router.deregister("c")
        after = {k: (await router.complete(chat(), key=k)).backend for k in keys}
        for key in keys:
            if first[key] != "c":
                assert after[key] == first[key], key
            else:
                assert after[key] in ("a", "b")


async def test_cache_aware_keeps_a_prefix_on_one_backend() -> None:
    async with servers(3) as fleet:
        router = Router(
            [spec(n, s) for n, s in zip("abc", fleet, strict=True)],
            settings(strategy="cache_aware", strategy_options={"prefix_chars": 256}),
        )
        prompts = [f"system prompt {i} " * 20 for i in range(12)]
        first = [(await router.complete(chat(text=p + "q1"))).backend for p in prompts]
        second = [(await router.complete(chat(text=p + "q2"))).backend for p in prompts]
        assert first == second
        assert len(set(first)) > 1


async def test_priority_uses_the_first_and_fails_over_in_order() -> None:
    async with servers(3) as fleet:
        router = Router(
            [spec(n, s) for n, s in zip("abc", fleet, strict=True)],
            settings(strategy="priority", strategy_options={"order": ["b", "c", "a"]}),
        )
        assert (await router.complete(chat())).backend == "b"
        fleet[1].fault(Fault.http(500))
        result = await router.complete(chat())
        assert result.backend == "c"
        assert [a.backend for a in result.attempts] == ["b", "c"]


async def test_per_model_strategy_override() -> None:
    async with servers(2) as fleet:
        router = Router(
            [spec("a", fleet[0], ["m1", "m2"]), spec("b", fleet[1], ["m1", "m2"])],
            settings(
                strategy="round_robin",
                models={"m2": {"strategy": "priority", "options": {"order": ["b", "a"]}}},
            ),
        )
        assert {(await router.complete(chat("m2"))).backend for _ in range(4)} == {"b"}
        assert {(await router.complete(chat("m1"))).backend for _ in range(4)} == {"a", "b"}


# --------------------------------------------------------------------------- circuit breaker


async def test_breaker_opens_half_opens_and_closes_on_real_failures() -> None:
    breaker = BreakerSettings(consecutive_failures=2, cooldown=0.2, max_cooldown=1.0)
    async with openai_server(["m1"]) as server:
        router = Router(
            [spec("a", server)],
            settings(breaker=breaker, retries=RetrySettings(attempts=1)),
        )
        entry = router.registry.get("a")
        assert entry is not None
        server.fault(Fault.http(500))
        for _ in range(2):
            with pytest.raises(BackendFailed):
                await router.complete(chat())
        assert entry.breaker.state == "open"
        with pytest.raises(NoBackendAvailable) as caught:
            await router.complete(chat())
        assert "circuit open" in str(caught.value) and "'m1'" in str(caught.value)
        assert len(server.chat_requests) == 2  # the open circuit sent nothing
        # half-open after the cool-down: a failed probe re-opens it
        await until(lambda: entry.breaker.state == "half_open")
        with pytest.raises(BackendFailed):
            await router.complete(chat())
        assert entry.breaker.state == "open"
        # the next probe succeeds: closed again
        server.fault(None)
        await until(lambda: entry.breaker.state == "half_open")
        assert (await router.complete(chat())).backend == "a"
        assert entry.breaker.state == "closed"


async def test_breaker_opens_on_failure_rate() -> None:
    breaker = BreakerSettings(consecutive_failures=0, failure_rate=0.5, min_requests=4)
    async with openai_server(["m1"]) as server:
        router = Router(
            [spec("a", server)], settings(breaker=breaker, retries=RetrySettings(attempts=1))
        )
        server.script(
            [Reply(), Reply(fault=Fault.http(503)), Reply(), Reply(fault=Fault.http(502))]
        )
        outcomes = []
        for _ in range(4):
            try:
                outcomes.append((await router.complete(chat())).backend)
            except BackendFailed:
                outcomes.append("failed")
        assert outcomes == ["a", "failed", "a", "failed"]
        entry = router.registry.get("a")
        assert entry is not None and entry.breaker.state == "open"


async def test_caller_errors_do_not_count_against_the_backend() -> None:
    breaker = BreakerSettings(consecutive_failures=1)
    async with servers(2) as fleet:
        router = Router(
            [spec("a", fleet[0]), spec("b", fleet[1])],
            settings(breaker=breaker, strategy="priority"),
        )
        fleet[0].fault(Fault.http(400))
        with pytest.raises(BackendFailed) as caught:
            await router.complete(chat())
        assert caught.value.status == 400
        assert counts(fleet) == [1, 0]  # not retried elsewhere: the request is at fault
        entry = router.registry.get("a")
        assert entry is not None
        assert entry.breaker.state == "closed" and entry.stats.failures == 0


# --------------------------------------------------------------------------- retries and failover


async def test_retry_on_the_same_backend_when_it_is_the_only_one() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings())
        server.script([Reply(fault=Fault.http(502)), Reply(fault=Fault.http(503)), Reply("ok")])
        result = await router.complete(chat())
        assert result.result.text == "ok"
        assert [a.error is None for a in result.attempts] == [False, False, True]


async def test_attempts_are_bounded() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings(retries=RetrySettings(attempts=2)))
        server.fault(Fault.http(500))
        with pytest.raises(BackendFailed) as caught:
            await router.complete(chat())
        assert len(server.chat_requests) == 2
        assert caught.value.status == 502 and "HTTP 500" in str(caught.value)


@pytest.mark.parametrize("fault", [Fault.http(500), Fault.reset(), Fault.malformed()])
async def test_failover_to_another_backend(fault: Fault) -> None:
    async with servers(2) as fleet:
        router = Router([spec("a", fleet[0]), spec("b", fleet[1])], settings(strategy="priority"))
        fleet[0].fault(fault)
        result = await router.complete(chat())
        assert result.backend == "b"
        assert counts(fleet) == [1, 1]


async def test_malformed_answers_are_not_retried_on_the_same_backend() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings())
        server.fault(Fault.malformed())
        with pytest.raises(BackendFailed) as caught:
            await router.complete(chat())
        assert len(server.chat_requests) == 1
        assert caught.value.status == 502


async def test_stream_fails_over_before_the_first_event() -> None:
    async with servers(2) as fleet:
        router = Router([spec("a", fleet[0]), spec("b", fleet[1])], settings(strategy="priority"))
        fleet[0].fault(Fault.reset(after=0))
        async with aclosing(router.stream(chat(stream=True))) as stream:
            events = [event async for event in stream]
            assert stream.backend == "b"
        assert isinstance(events[-1], Finish)
        assert counts(fleet) == [1, 1]


async def test_no_failover_after_the_first_event() -> None:
    async with servers(2) as fleet:
        router = Router([spec("a", fleet[0]), spec("b", fleet[1])], settings(strategy="priority"))
        fleet[0].script([Reply(text="a long answer that breaks", fault=Fault.reset(after=3))])
        async with aclosing(router.stream(chat(stream=True))) as stream:
            events = [event async for event in stream]
        assert stream.backend == "a"
        assert any(isinstance(e, TextDelta) for e in events)
        assert isinstance(events[-1], StreamError)
        assert "backend 'a'" in events[-1].message
        assert counts(fleet) == [1, 0]
        entry = router.registry.get("a")
        assert entry is not None and entry.stats.failures == 1 and entry.stats.in_flight == 0


async def test_rate_limit_moves_to_another_backend_and_honours_retry_after() -> None:
    async with servers(2) as fleet:
        router = Router([spec("a", fleet[0]), spec("b", fleet[1])], settings(strategy="priority"))
        fleet[0].fault(Fault.rate_limit(retry_after="30"))
        for _ in range(4):
            assert (await router.complete(chat())).backend == "b"
        assert counts(fleet) == [1, 4]  # "a" is left alone while its Retry-After runs
        snapshot = {s["name"]: s for s in router.snapshot()}
        assert "rate limited" in snapshot["a"]["reason"]


async def test_short_retry_after_is_waited_for() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings())
        server.script([Reply(fault=Fault.rate_limit(retry_after="0.1")), Reply("ok")])
        result = await router.complete(chat())
        assert result.result.text == "ok" and len(server.chat_requests) == 2


async def test_long_retry_after_fails_at_once_with_it() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings())
        server.fault(Fault.rate_limit(retry_after="60"))
        with pytest.raises(BackendFailed) as caught:
            await router.complete(chat())
        assert caught.value.status == 429
        assert caught.value.retry_after == 60
        assert len(server.chat_requests) == 1
        with pytest.raises(NoBackendAvailable) as again:
            await router.complete(chat())
        assert again.value.retry_after is not None and again.value.retry_after > 50
        assert len(server.chat_requests) == 1


# --------------------------------------------------------------------------- models


async def test_fallback_chain() -> None:
    async with servers(3) as fleet:
        router = Router(
            [spec("a", fleet[0], ["m1"]), spec("b", fleet[1], ["m2"]), spec("c", fleet[2], ["m3"])],
            settings(fallbacks={"m1": ["m2", "m3"]}, retries=RetrySettings(attempts=1)),
        )
        fleet[0].fault(Fault.http(500))
        fleet[1].fault(Fault.http(503))
        result = await router.complete(chat("m1"))
        assert (result.backend, result.model) == ("c", "m3")
        assert fleet[2].chat_requests[0].body["model"] == "m3"
        assert [a.model for a in result.attempts] == ["m1", "m2", "m3"]


async def test_nothing_can_serve_names_the_model_and_each_reason() -> None:
    breaker = BreakerSettings(consecutive_failures=1, cooldown=30, max_cooldown=30)
    async with servers(2) as fleet:
        health = HealthCheckSettings(interval=60, unhealthy_threshold=1)
        router = Router(
            [spec("a", fleet[0], breaker=breaker), spec("b", fleet[1], health=health)],
            settings(fallbacks={"m1": ["ghost"]}, strategy="priority"),
        )
        fleet[0].fault(Fault.http(500))
        fleet[1].fault(Fault.http(500))
        b = router.registry.get("b")
        assert b is not None and b.health is not None
        await b.health.check_once()  # one failed probe: unhealthy
        fleet[1].requests.clear()
        with contextlib.suppress(BackendFailed):
            await router.complete(chat())  # opens a's circuit
        with pytest.raises(NoBackendAvailable) as caught:
            await router.complete(chat())
        message = str(caught.value)
        assert "'m1'" in message and "'ghost'" in message
        assert "a: circuit open" in message
        assert "b: unhealthy" in message
        assert "no backend serves it" in message
        assert caught.value.reasons["ghost"] == {}
        assert fleet[1].chat_requests == []


async def test_unknown_model_lists_the_known_ones() -> None:
    async with openai_server(["m1", "m2"]) as server:
        router = Router([spec("a", server, ["m1", "m2"])], settings(aliases={"fast": "m1"}))
        with pytest.raises(ModelNotFound) as caught:
            await router.complete(chat("nope"))
        assert caught.value.status == 404
        assert caught.value.known == ["fast", "m1", "m2"]
        assert "'nope'" in str(caught.value)


async def test_alias_resolves_to_the_real_model() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings(aliases={"fast": "m1"}))
        result = await router.complete(chat("fast"))
        assert result.model == "m1"
        assert server.chat_requests[0].body["model"] == "m1"


async def test_discovery_is_cached_and_static_models_override_it() -> None:
    async with servers(2) as fleet:
        fleet[0].models = ["d1", "d2"]
        fleet[1].models = ["d1"]
        router = Router(
            [spec("disc", fleet[0], None), spec("static", fleet[1], ["s1"])],
            settings(discovery_ttl=60),
        )
        assert (await router.complete(chat("d2"))).backend == "disc"
        assert (await router.complete(chat("d1"))).backend == "disc"  # static lists win
        assert (await router.complete(chat("s1"))).backend == "static"
        model_lists = [r for s in fleet for r in s.requests if r.path == "/v1/models"]
        assert len(model_lists) == 1  # one discovery, cached; none for the static backend
        await router.refresh_models(force=True)
        model_lists = [r for s in fleet for r in s.requests if r.path == "/v1/models"]
        assert len(model_lists) == 2


async def test_failed_discovery_is_reported() -> None:
    async with openai_server(["m1"]) as server:
        server.fault(Fault.http(500))
        router = Router([spec("a", server, None)], settings())
        with pytest.raises(ModelNotFound):
            await router.complete(chat())
        (snapshot,) = router.snapshot()
        assert "HTTP 500" in snapshot["discovery_error"]


# --------------------------------------------------------------------------- deadline, health, cancel


async def test_deadline_cuts_a_hanging_backend() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings(deadline=0.3))
        server.fault(Fault.hang())
        with pytest.raises(DeadlineExceeded) as caught:
            await router.complete(chat())
        assert caught.value.status == 504 and "deadline" in str(caught.value)
        entry = router.registry.get("a")
        assert entry is not None
        assert (entry.stats.in_flight, entry.stats.failures) == (0, 1)
        await server.wait_disconnect()


async def test_deadline_during_a_stream_ends_it_with_an_error() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings(deadline=0.3))
        server.script([Reply(text="x" * 40, chunk_size=1, chunk_delay=0.05)])
        async with aclosing(router.stream(chat(stream=True))) as stream:
            events = [event async for event in stream]
        assert isinstance(events[-1], StreamError) and "deadline" in events[-1].message
        assert in_flight(router) == {"a": 0}


async def test_active_health_checks_take_a_backend_out_and_back() -> None:
    health = HealthCheckSettings(interval=0.05, unhealthy_threshold=1, healthy_threshold=1)
    async with servers(2) as fleet:
        router = Router(
            [spec("a", fleet[0]), spec("b", fleet[1])],
            settings(health=health, strategy="round_robin"),
        )
        async with router:
            fleet[0].fault(Fault.http(500))
            entry = router.registry.get("a")
            assert entry is not None and entry.health is not None
            checker = entry.health
            await until(lambda: not checker.healthy)
            assert {(await router.complete(chat())).backend for _ in range(4)} == {"b"}
            fleet[0].fault(None)
            entry.breaker.reset()
            await until(lambda: checker.healthy)
            assert {(await router.complete(chat())).backend for _ in range(4)} == {"a", "b"}
        assert entry.health.running is False


async def test_cancelling_a_stream_releases_the_backend() -> None:
    async with openai_server(["m1"]) as server:
        router = Router([spec("a", server)], settings())
        server.script([Reply(text="y" * 200, chunk_size=1, chunk_delay=0.02)])
        got_first = asyncio.Event()

        async def consume() -> None:
            async with aclosing(router.stream(chat(stream=True))) as stream:
                async for _ in stream:
                    got_first.set()

        task = asyncio.create_task(consume())
        await got_first.wait()
        assert in_flight(router) == {"a": 1}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert in_flight(router) == {"a": 0}
        await server.wait_disconnect()
        entry = router.registry.get("a")
        assert entry is not None and entry.stats.failures == 0


# --------------------------------------------------------------------------- translation


@pytest.mark.parametrize("kind", ["ollama", "anthropic"])
async def test_openai_only_options_are_dropped_or_mapped(kind: str) -> None:
    async with SERVERS[kind](["m1"]) as server:
        router = Router([spec("x", server)], settings())
        request = chat(extra={"user": "u1", "seed": 7, "stop": "END", "logprobs": True})
        result = await router.complete(request)
        assert result.result.text
        body = server.chat_requests[0].body
        assert "user" not in body and "logprobs" not in body and "seed" not in body
        if kind == "ollama":
            assert body["options"]["seed"] == 7 and body["options"]["stop"] == "END"
        else:
            assert body["stop_sequences"] == ["END"]


def test_adapt_request_copies_only_when_needed() -> None:
    request = chat()
    assert adapt_request(request, "openai", "m1") is request
    assert adapt_request(request, "anthropic", "m1") is request
    assert adapt_request(request, "openai", "m2").model == "m2"
