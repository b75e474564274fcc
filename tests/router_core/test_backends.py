"""LLM backends against fake OpenAI, Ollama and Anthropic servers over real HTTP on loopback:
normalised streams, tool-call assembly, usage and finish reasons, every fault mapped to the
right error, timeouts, cancellation; plus the SSE/NDJSON framing and the normalised types."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import socket
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from typing import Any

import orjson
import pytest

from router_core.backends import (
    AnthropicBackend,
    Backend,
    OllamaBackend,
    OpenAIBackend,
    SseEvent,
    SseParser,
    Timeouts,
    chat_request_from_openai,
    create_backend,
)
from router_core.backends.base import LineSplitter
from router_core.backends.openai import openai_body
from router_core.http import close_session, get_session
from router_core.types import (
    BackendConnectError,
    BackendDisconnected,
    BackendError,
    BackendHTTPError,
    BackendMalformedResponse,
    BackendTimeout,
    BackendUnsupported,
    ChatRequest,
    Finish,
    ImagePart,
    Message,
    NamedToolChoice,
    ReasoningDelta,
    StreamAccumulator,
    StreamError,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDone,
    ToolDefinition,
    Usage,
    accumulate,
    parse_retry_after,
)
from tests.router_core.llm_servers import (
    SERVERS,
    Call,
    FakeLLMServer,
    Fault,
    Reply,
    anthropic_server,
    ollama_server,
    openai_server,
)

KINDS = ["openai", "ollama", "anthropic"]
FAST = Timeouts(connect=2, read=2, probe=2)


@pytest.fixture(autouse=True)
async def _shared_session() -> AsyncIterator[None]:
    """Each test runs in its own loop; close the pooled session made in it."""
    yield
    await close_session()


@asynccontextmanager
async def serving(
    kind: str, *, timeouts: Timeouts = FAST, api_key: str | None = None
) -> AsyncIterator[tuple[Any, Backend]]:
    async with SERVERS[kind](("fake-model", "other-model"), api_key=api_key) as server:
        yield server, create_backend(kind, kind, server.url, api_key=api_key, timeouts=timeouts)


@pytest.fixture(params=KINDS)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Any, Backend]]:
    async with serving(request.param) as served:
        yield served


def chat(**options: Any) -> ChatRequest:
    return ChatRequest(
        model="fake-model", messages=[Message(role="user", content="hello")], **options
    )


async def collect(backend: Backend, request: ChatRequest | None = None) -> list[StreamEvent]:
    return [event async for event in backend.stream(request or chat())]


async def collect_until_error(
    backend: Backend, request: ChatRequest | None = None
) -> tuple[list[StreamEvent], BaseException]:
    events: list[StreamEvent] = []
    with pytest.raises(BackendError) as info:
        async for event in backend.stream(request or chat()):
            events.append(event)
    return events, info.value


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def reasoning_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, ReasoningDelta))


def calls_of(events: list[StreamEvent]) -> list[ToolCall]:
    return [e.call for e in events if isinstance(e, ToolCallDone)]


# -- SSE and NDJSON framing ---------------------------------------------------------------------


def parse_all(chunks: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_sse_multiline_data_fields_and_comments() -> None:
    stream = (
        b": a comment, ignored\n"
        b"event: delta\n"
        b"id: 7\n"
        b"data: first line\n"
        b"data:second line\n"
        b"data\n"
        b"retry: 1000\n"
        b"\n"
        b'data: {"x": 1}\n\n'
        b"event: only-an-event\n\n"
    )
    events = parse_all([stream])
    assert events == [
        SseEvent(b"first line\nsecond line\n", "delta", "7"),
        SseEvent(b'{"x": 1}', "", "7"),
    ]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_sse_line_endings(newline: bytes) -> None:
    stream = b"data: a\n\ndata: b\ndata: c\n\n".replace(b"\n", newline)
    assert [e.data for e in parse_all([stream])] == [b"a", b"b\nc"]


def test_sse_every_chunk_boundary_gives_the_same_events() -> None:
    stream = b"\xef\xbb\xbfdata: one\r\n\r\n: keep-alive\r\nevent: e\r\ndata: two\r\ndata: 2\r\n\r\ndata: [DONE]\r\n\r\n"
    expected = [SseEvent(b"one"), SseEvent(b"two\n2", "e"), SseEvent(b"[DONE]")]
    assert parse_all([stream]) == expected
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == expected
    for cut in range(1, len(stream)):
        assert parse_all([stream[:cut], stream[cut:]]) == expected, cut


def test_sse_unfinished_event_is_pending() -> None:
    parser = SseParser()
    assert parser.feed(b"data: complete\n\ndata: cut sho") == [SseEvent(b"complete")]
    assert parser.pending
    parser = SseParser()
    parser.feed(b"data: no blank line yet\n")
    assert parser.pending


def test_ndjson_lines_split_anywhere() -> None:
    stream = b'{"a": 1}\r\n\n{"b": 2}\n{"c"'
    splitter = LineSplitter()
    lines = [line for i in range(len(stream)) for line in splitter.feed(stream[i : i + 1])]
    assert lines == [b'{"a": 1}', b'{"b": 2}']
    assert splitter.close() == b'{"c"'


# -- normalised types ---------------------------------------------------------------------------


def test_tool_call_parse_reports_bad_arguments() -> None:
    good = ToolCall.parse("c1", "f", '{"a": [1, 2]}')
    assert good.arguments == {"a": [1, 2]} and good.error is None
    assert ToolCall.parse("c1", "f", "").arguments == {}
    bad = ToolCall.parse("c2", "f", '{"a": 1,')
    assert bad.arguments == {} and bad.raw_arguments == '{"a": 1,'
    assert bad.error is not None and "not valid JSON" in bad.error
    not_object = ToolCall.parse("c3", "f", "[1]")
    assert not_object.error is not None and "JSON object" in not_object.error


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=now) == 30.0
    assert parse_retry_after({"retry-after": email.utils.formatdate(now - 30)}, now=now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "nan"}) is None
    assert parse_retry_after({}) is None


def test_http_error_retryable_by_status() -> None:
    assert BackendHTTPError(408, "x").retryable
    assert BackendHTTPError(429, "x").retryable
    assert BackendHTTPError(500, "x").retryable
    assert BackendHTTPError(529, "x").retryable
    for status in (400, 401, 403, 404, 413, 422):
        assert not BackendHTTPError(status, "x").retryable


async def test_accumulate_and_stream_error() -> None:
    call = ToolCall.parse("c", "f", '{"q": 1}')

    async def events(*items: StreamEvent) -> AsyncIterator[StreamEvent]:
        for item in items:
            yield item

    result = await accumulate(
        events(
            ReasoningDelta("think"),
            ReasoningDelta("", signature="sig"),
            TextDelta("a"),
            TextDelta("b"),
            ToolCallDone(call),
            Usage.of(3, 4),
            Finish("tool_calls"),
        )
    )
    assert (result.text, result.reasoning, result.reasoning_signature) == ("ab", "think", "sig")
    assert result.tool_calls == [call] and result.usage == Usage(3, 4, 7)
    assert result.to_message().tool_calls == [call]
    with pytest.raises(BackendDisconnected):
        await accumulate(events(TextDelta("cut")))
    acc = StreamAccumulator()
    broken = BackendDisconnected("lost", backend="b")
    with pytest.raises(BackendDisconnected):
        acc.add(StreamError.from_exception(broken))


# -- streaming over real HTTP -------------------------------------------------------------------


async def test_stream_text_usage_finish(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(text="Hello, streaming world!", usage=(12, 34))])
    events = await collect(backend)
    assert text_of(events) == "Hello, streaming world!"
    assert sum(isinstance(e, TextDelta) for e in events) > 1, "expected several deltas"
    assert events[-1] == Finish("stop")
    assert events[-2] == Usage(12, 34, 46)
    assert not any(isinstance(e, TextDelta) and not e.text for e in events)


async def test_stream_reasoning(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(reasoning="Let me think about it.", text="42")])
    events = await collect(backend)
    assert reasoning_of(events) == "Let me think about it."
    assert text_of(events) == "42"
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
    assert all(isinstance(e, ReasoningDelta) for e in events[:first_text])
    if server.kind == "anthropic":
        signatures = [e.signature for e in events if isinstance(e, ReasoningDelta) and e.signature]
        assert signatures == ["fake-signature"]


async def test_stream_tool_calls_assembled(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    weather = {"city": "Paris", "units": "metric", "days": [1, 2, 3], "extra": {"x": "ü"}}
    server.script(
        [
            Reply(
                text="Checking.",
                tool_calls=[
                    Call("get_weather", weather, id="call_a"),
                    Call("get_time", {"tz": "UTC"}, id="call_b"),
                ],
                chunk_size=3,
            )
        ]
    )
    events = await collect(backend)
    calls = calls_of(events)
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_a", "get_weather", weather),
        ("call_b", "get_time", {"tz": "UTC"}),
    ]
    assert all(c.error is None for c in calls)
    assert orjson.loads(calls[0].raw_arguments) == weather
    assert events[-1] == Finish("tool_calls")
    last_call = max(i for i, e in enumerate(events) if isinstance(e, ToolCallDone))
    assert all(isinstance(e, Usage | Finish) for e in events[last_call + 1 :])


async def test_stream_invalid_tool_arguments_reported(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(tool_calls=[Call("write", '{"path": "a.txt", "text": ')])])
    events = await collect(backend)
    (call,) = calls_of(events)
    assert call.name == "write" and call.arguments == {}
    assert call.error is not None and "JSON" in call.error
    assert call.raw_arguments == '{"path": "a.txt", "text": '
    assert events[-1] == Finish("tool_calls")


async def test_stream_tool_call_ids_generated_when_missing(
    pair: tuple[FakeLLMServer, Backend],
) -> None:
    server, backend = pair
    server.script([Reply(tool_calls=[Call("a"), Call("b", {"k": 1})])])
    calls = calls_of(await collect(backend))
    assert [c.name for c in calls] == ["a", "b"]
    assert all(c.id for c in calls) and calls[0].id != calls[1].id
    assert calls[0].arguments == {}


FINISH_CASES = [
    ("openai", "stop", "stop"),
    ("openai", "length", "length"),
    ("openai", "tool_calls", "tool_calls"),
    ("openai", "function_call", "tool_calls"),
    ("openai", "content_filter", "content_filter"),
    ("openai", "something_new", "stop"),
    ("ollama", "stop", "stop"),
    ("ollama", "length", "length"),
    ("ollama", "load", "stop"),
    ("anthropic", "end_turn", "stop"),
    ("anthropic", "stop_sequence", "stop"),
    ("anthropic", "max_tokens", "length"),
    ("anthropic", "tool_use", "tool_calls"),
    ("anthropic", "refusal", "content_filter"),
    ("anthropic", "model_context_window_exceeded", "length"),
]


@pytest.mark.parametrize(("kind", "native", "expected"), FINISH_CASES)
async def test_finish_reason_mapping(kind: str, native: str, expected: str) -> None:
    async with serving(kind) as (server, backend):
        server.script([Reply(text="t", native_finish_reason=native)] * 2)
        events = await collect(backend)
        assert events[-1] == Finish(expected)  # type: ignore[arg-type]
        assert (await backend.complete(chat())).finish_reason == expected


async def test_tool_calls_with_stop_finish_normalised(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    native = {"openai": "stop", "ollama": "stop", "anthropic": "end_turn"}[server.kind]
    server.script([Reply(tool_calls=[Call("f", {})], native_finish_reason=native)])
    assert (await collect(backend))[-1] == Finish("tool_calls")


async def test_stream_without_usage(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(text="x", usage=None)])
    events = await collect(backend)
    assert events[-1] == Finish("stop")
    if server.kind != "anthropic":  # Anthropic always reports input tokens in message_start
        assert not any(isinstance(e, Usage) for e in events)


async def test_crlf_framing_and_keepalive_comments() -> None:
    for kind in ("openai", "anthropic"):
        async with serving(kind) as (server, backend):
            server.crlf = True
            server.comments = True
            server.script([Reply(text="over CRLF", tool_calls=[Call("f", {"a": 1})])])
            events = await collect(backend)
            assert text_of(events) == "over CRLF"
            assert calls_of(events)[0].arguments == {"a": 1}


# -- non-streaming ------------------------------------------------------------------------------


async def test_complete(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script(
        [
            Reply(
                text="The answer.",
                reasoning="Because.",
                tool_calls=[Call("lookup", {"q": "x"}, id="c1")],
                usage=(5, 6),
            )
        ]
    )
    result = await backend.complete(chat())
    assert result.text == "The answer."
    assert result.reasoning == "Because."
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("c1", "lookup", {"q": "x"})
    ]
    assert result.usage == Usage(5, 6, 11)
    assert result.finish_reason == "tool_calls"
    assert server.chat_requests[0].body.get("stream", False) is False


async def test_complete_invalid_tool_arguments_reported(
    pair: tuple[FakeLLMServer, Backend],
) -> None:
    server, backend = pair
    server.script([Reply(tool_calls=[Call("f", "{not json")])])
    (call,) = (await backend.complete(chat())).tool_calls
    assert call.error is not None and call.arguments == {}


async def test_accumulated_stream_equals_complete(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    reply = Reply(text="same", reasoning="r", tool_calls=[Call("f", {"a": 1}, id="c")])
    server.script([reply, reply])
    streamed = await accumulate(backend.stream(chat()))
    completed = await backend.complete(chat())
    assert streamed.text == completed.text and streamed.reasoning == completed.reasoning
    assert [(c.id, c.name, c.arguments) for c in streamed.tool_calls] == [
        (c.id, c.name, c.arguments) for c in completed.tool_calls
    ]
    assert streamed.finish_reason == completed.finish_reason
    assert streamed.usage == completed.usage


# -- discovery and probes -----------------------------------------------------------------------


async def test_list_models_and_probe(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    assert await backend.list_models() == ["fake-model", "other-model"]
    await backend.probe()
    server.fault(Fault.http(503))
    with pytest.raises(BackendHTTPError) as info:
        await backend.probe()
    assert info.value.status == 503 and info.value.retryable
    server.fault(Fault.wrong_content_type())
    with pytest.raises(BackendMalformedResponse):
        await backend.list_models()
    server.fault(None)
    await backend.probe()


async def test_anthropic_models_paginated() -> None:
    async with anthropic_server([f"m{i}" for i in range(2500)]) as server:
        backend = AnthropicBackend("a", server.url, timeouts=FAST)
        models = await backend.list_models()
        assert models == [f"m{i}" for i in range(2500)]
        assert len(server.requests) == 3


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 529, 408])
async def test_retryable_status(pair: tuple[FakeLLMServer, Backend], status: int) -> None:
    server, backend = pair
    server.script([Reply(fault=Fault.http(status)), Reply(fault=Fault.http(status))])
    events, error = await collect_until_error(backend)
    assert events == []
    assert isinstance(error, BackendHTTPError)
    assert error.status == status and error.retryable and error.retry_after is None
    assert "injected fault" in str(error) and server.kind in str(error)
    with pytest.raises(BackendHTTPError):
        await backend.complete(chat())


async def test_rate_limit_retry_after(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(fault=Fault.rate_limit("7")), Reply(fault=Fault.rate_limit("2"))])
    _, error = await collect_until_error(backend)
    assert isinstance(error, BackendHTTPError)
    assert (error.status, error.retryable, error.retry_after) == (429, True, 7.0)
    with pytest.raises(BackendHTTPError) as info:
        await backend.complete(chat())
    assert info.value.retry_after == 2.0


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_client_errors_not_retryable(
    pair: tuple[FakeLLMServer, Backend], status: int
) -> None:
    server, backend = pair
    server.script([Reply(fault=Fault.http(status))])
    _, error = await collect_until_error(backend)
    assert isinstance(error, BackendHTTPError) and error.status == status
    assert not error.retryable
    assert error.body  # kept, so a relay can pass the upstream's error on


async def test_wrong_api_key(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, _ = pair
    async with serving(server.kind, api_key="right") as (keyed, good):
        bad = create_backend(keyed.kind, "bad", keyed.url, api_key="wrong", timeouts=FAST)
        with pytest.raises(BackendHTTPError) as info:
            await bad.complete(chat())
        assert info.value.status == 401 and not info.value.retryable
        keyed.script([Reply(text="ok")])
        assert (await good.complete(chat())).text == "ok"


async def test_hang_cut_by_read_timeout(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, _ = pair
    async with serving(server.kind, timeouts=Timeouts(connect=2, read=0.3)) as (hung, backend):
        hung.script([Reply(fault=Fault.hang()), Reply(fault=Fault.hang())])
        _, error = await collect_until_error(backend)
        assert isinstance(error, BackendTimeout) and error.retryable
        await hung.wait_disconnect()  # the client closed the connection it gave up on
        with pytest.raises(BackendTimeout):
            await backend.complete(chat())


async def test_stall_mid_stream_cut_by_read_timeout() -> None:
    async with serving("openai", timeouts=Timeouts(connect=2, read=0.3)) as (server, backend):
        server.script([Reply(text="slow stream", chunk_size=1, chunk_delay=1.0)])
        events, error = await collect_until_error(backend)
        assert isinstance(error, BackendTimeout)
        assert events == []  # the role chunk carries no text; the first text never came
        await server.wait_disconnect()


async def test_probe_timeout() -> None:
    async with serving("ollama", timeouts=Timeouts(probe=0.3)) as (server, backend):
        server.fault(Fault.hang())
        with pytest.raises(BackendTimeout):
            await backend.probe()


async def test_reset_mid_stream_raises_after_partial_output(
    pair: tuple[FakeLLMServer, Backend],
) -> None:
    server, backend = pair
    server.script([Reply(text="a long answer that gets cut", fault=Fault.reset(after=4))])
    events, error = await collect_until_error(backend)
    assert text_of(events), "some text should have arrived before the reset"
    assert not any(isinstance(e, Finish) for e in events)
    assert isinstance(error, BackendDisconnected) and error.retryable


async def test_reset_before_response(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(fault=Fault.reset()), Reply(fault=Fault.reset(after=0))])
    with pytest.raises(BackendDisconnected):
        await backend.complete(chat())
    events, error = await collect_until_error(backend)
    assert events == [] and isinstance(error, BackendDisconnected)


async def test_truncated_stream_is_not_silent(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(text="the middle of a sentence", fault=Fault.truncate(after=3))])
    events, error = await collect_until_error(backend)
    assert not any(isinstance(e, Finish) for e in events)
    assert isinstance(error, BackendDisconnected)
    assert "ended" in str(error)


async def test_malformed_stream(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(text="fine so far", fault=Fault.malformed(after=3))])
    _, error = await collect_until_error(backend)
    assert isinstance(error, BackendMalformedResponse) and not error.retryable
    assert "not valid JSON" in str(error)


async def test_malformed_body(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(fault=Fault.malformed())])
    with pytest.raises(BackendMalformedResponse) as info:
        await backend.complete(chat())
    assert "not valid JSON" in str(info.value)


async def test_error_reported_inside_stream(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(text="partial answer", fault=Fault.stream_error(after=3, status=529))])
    _, error = await collect_until_error(backend)
    assert isinstance(error, BackendHTTPError) and error.retryable
    assert error.status == (500 if server.kind == "ollama" else 529)
    assert "upstream failed" in str(error)


async def test_wrong_content_type(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    server.script([Reply(fault=Fault.wrong_content_type())] * 2)
    _, error = await collect_until_error(backend)
    assert isinstance(error, BackendMalformedResponse) and not error.retryable
    assert "content type" in str(error) and "text/html" in str(error)
    with pytest.raises(BackendMalformedResponse, match="content type"):
        await backend.complete(chat())


async def test_connect_error() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    for kind in KINDS:
        backend = create_backend(kind, "gone", f"http://127.0.0.1:{port}", timeouts=FAST)
        with pytest.raises(BackendConnectError) as info:
            await collect(backend)
        assert info.value.retryable and "cannot connect" in str(info.value)
        with pytest.raises(BackendConnectError):
            await backend.probe()


# -- cancellation -------------------------------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_upstream(
    pair: tuple[FakeLLMServer, Backend],
) -> None:
    server, backend = pair
    server.script([Reply(text="x" * 500, chunk_size=1, chunk_delay=0.01)])
    first = asyncio.Event()

    async def consume() -> None:
        async for event in backend.stream(chat()):
            if isinstance(event, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_disconnect()
    assert server.disconnects == 1


async def test_closing_the_stream_early_closes_the_upstream(
    pair: tuple[FakeLLMServer, Backend],
) -> None:
    server, backend = pair
    server.script([Reply(text="y" * 500, chunk_size=1, chunk_delay=0.01)])
    async with aclosing(backend.stream(chat())) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                break
    await server.wait_disconnect()


async def test_connections_are_reused(pair: tuple[FakeLLMServer, Backend]) -> None:
    server, backend = pair
    for _ in range(3):
        server.script([Reply(text="again")])
        assert text_of(await collect(backend)) == "again"
        await backend.complete(chat())
    ports = {r.client_port for r in server.requests}
    assert len(server.requests) == 6 and len(ports) == 1, ports


# -- request translation (what the upstream received) ------------------------------------------

IMAGE = ImagePart.from_base64(base64.b64encode(b"\x89PNG fake").decode(), "image/png")
TOOLS = [
    ToolDefinition(
        name="get_weather",
        description="Weather for a city",
        parameters={"type": "object", "properties": {"city": {"type": "string"}}},
    )
]


def conversation() -> list[Message]:
    call = ToolCall.parse("call_1", "get_weather", '{"city": "Paris"}')
    return [
        Message(role="system", content="Be brief."),
        Message(role="user", content=[TextPart(text="What is this?"), IMAGE]),
        Message(role="assistant", content="Let me check.", tool_calls=[call]),
        Message(role="tool", tool_call_id="call_1", content="Sunny, 21 C"),
        Message(role="user", content="Thanks"),
    ]


async def test_openai_request_shape() -> None:
    async with openai_server(api_key="k") as server:
        backend = OpenAIBackend("o", server.url + "/v1", api_key="k", headers={"X-Extra": "1"})
        request = ChatRequest(
            model="fake-model",
            messages=conversation(),
            tools=TOOLS,
            tool_choice=NamedToolChoice(name="get_weather"),
            temperature=0.2,
            max_tokens=64,
            extra={"seed": 7},
        )
        await collect(backend, request)
        (received,) = server.chat_requests
        body = received.body
        assert received.headers["authorization"] == "Bearer k"
        assert received.headers["x-extra"] == "1"
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 64, 7)
        assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert body["tools"][0]["function"]["name"] == "get_weather"
        assert body["tools"][0]["function"]["parameters"]["properties"]["city"]
        messages = body["messages"]
        assert messages[0] == {"role": "system", "content": "Be brief."}
        assert messages[1]["content"][1] == {"type": "image_url", "image_url": {"url": IMAGE.url}}
        assert messages[2]["tool_calls"][0]["function"] == {
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        }
        assert messages[3] == {"role": "tool", "content": "Sunny, 21 C", "tool_call_id": "call_1"}


async def test_openai_url_forms_and_reasoning_field() -> None:
    async with openai_server() as server:
        server.reasoning_field = "reasoning"
        for url in (server.url, server.url + "/", server.url + "/v1", server.url + "/v1/"):
            server.script([Reply(reasoning="hmm", text="ok")])
            events = await collect(OpenAIBackend("o", url, timeouts=FAST))
            assert (reasoning_of(events), text_of(events)) == ("hmm", "ok")


async def test_ollama_request_shape() -> None:
    async with ollama_server() as server:
        backend = OllamaBackend("l", server.url + "/api", timeouts=FAST)
        request = ChatRequest(
            model="fake-model",
            messages=conversation(),
            tools=TOOLS,
            temperature=0.5,
            max_tokens=32,
            extra={"options": {"num_ctx": 8192}, "keep_alive": "5m"},
        )
        await collect(backend, request)
        body = server.chat_requests[0].body
        assert body["stream"] is True
        assert body["options"] == {"temperature": 0.5, "num_predict": 32, "num_ctx": 8192}
        assert body["keep_alive"] == "5m"
        assert body["tools"][0]["function"]["name"] == "get_weather"
        messages = body["messages"]
        assert messages[1]["images"] == [IMAGE.url.split(",", 1)[1]]
        assert messages[1]["content"] == "What is this?"
        assert messages[2]["tool_calls"] == [
            {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ]
        assert messages[3] == {"role": "tool", "content": "Sunny, 21 C", "tool_name": "get_weather"}
        await backend.complete(chat(tools=TOOLS, tool_choice="none"))
        assert "tools" not in server.chat_requests[1].body


async def test_ollama_refuses_remote_images_before_sending() -> None:
    async with ollama_server() as server:
        backend = OllamaBackend("l", server.url, timeouts=FAST)
        request = ChatRequest(
            model="fake-model",
            messages=[Message(role="user", content=[ImagePart(url="https://example.com/a.png")])],
        )
        with pytest.raises(BackendUnsupported) as info:
            await collect(backend, request)
        assert not info.value.retryable
        assert server.requests == []


async def test_anthropic_request_shape() -> None:
    async with anthropic_server(api_key="secret") as server:
        backend = AnthropicBackend("a", server.url, api_key="secret", timeouts=FAST)
        messages = conversation()
        messages[2] = messages[2].model_copy(
            update={"reasoning": "I should look.", "reasoning_signature": "sig"}
        )
        messages.insert(4, Message(role="tool", tool_call_id="call_2", content="second result"))
        request = ChatRequest(
            model="fake-model",
            messages=messages,
            tools=TOOLS,
            tool_choice="required",
            extra={"thinking": {"type": "enabled", "budget_tokens": 1024}},
        )
        await collect(backend, request)
        (received,) = server.chat_requests
        assert received.headers["x-api-key"] == "secret"
        assert received.headers["anthropic-version"] == "2023-06-01"
        assert "authorization" not in received.headers
        body = received.body
        assert body["system"] == "Be brief."
        assert body["max_tokens"] == 4096 and body["stream"] is True
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        assert body["tool_choice"] == {"type": "any"}
        assert body["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}
        user, assistant, results = body["messages"]
        assert [b["type"] for b in user["content"]] == ["text", "image"]
        assert user["content"][1]["source"] == {
            "type": "base64",
            "media_type": "image/png",
            "data": IMAGE.url.split(",", 1)[1],
        }
        assert assistant["role"] == "assistant"
        assert [b["type"] for b in assistant["content"]] == ["thinking", "text", "tool_use"]
        assert assistant["content"][0]["signature"] == "sig"
        assert assistant["content"][2]["input"] == {"city": "Paris"}
        assert results["role"] == "user"
        assert [b["type"] for b in results["content"]] == ["tool_result", "tool_result", "text"]
        assert results["content"][0]["tool_use_id"] == "call_1"
        assert results["content"][0]["content"] == [{"type": "text", "text": "Sunny, 21 C"}]


# -- the OpenAI pass-through --------------------------------------------------------------------


def openai_request_bytes(stream: bool) -> bytes:
    return orjson.dumps(openai_body(chat(), stream=stream))


async def test_forward_stream_relays_bytes() -> None:
    async with openai_server() as server:
        backend = OpenAIBackend("o", server.url, timeouts=FAST)
        server.script([Reply(text="raw bytes", tool_calls=[Call("f", {"a": 1})])])
        body = b'{"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": true}'
        response = await backend.forward(body, stream=True)
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-length" not in response.headers
        data = await response.read()
        await response.aclose()
        assert server.chat_requests[0].raw == body  # forwarded untouched
        assert data.endswith(b"data: [DONE]\n\n")
        events = parse_all([data])
        deltas = [orjson.loads(e.data) for e in events[:-1]]
        text = "".join(d["choices"][0]["delta"].get("content") or "" for d in deltas)
        assert text == "raw bytes"


async def test_forward_non_stream() -> None:
    async with openai_server() as server:
        backend = OpenAIBackend("o", server.url, timeouts=FAST)
        server.script([Reply(text="whole")])
        response = await backend.forward(openai_request_bytes(False), stream=False)
        assert response.body is not None
        assert orjson.loads(response.body)["choices"][0]["message"]["content"] == "whole"
        assert await response.read() == response.body
        await response.aclose()


async def test_forward_errors_before_the_first_byte() -> None:
    async with openai_server() as server:
        backend = OpenAIBackend("o", server.url, timeouts=FAST)
        server.script(
            [
                Reply(fault=Fault.rate_limit("3")),
                Reply(fault=Fault.http(400)),
                Reply(fault=Fault.wrong_content_type()),
                Reply(fault=Fault.malformed()),
            ]
        )
        with pytest.raises(BackendHTTPError) as info:
            await backend.forward(openai_request_bytes(True), stream=True)
        assert (info.value.status, info.value.retry_after, info.value.retryable) == (429, 3, True)
        with pytest.raises(BackendHTTPError) as info:
            await backend.forward(openai_request_bytes(False), stream=False)
        assert info.value.status == 400 and orjson.loads(info.value.body)["error"]["message"]
        assert info.value.content_type.startswith("application/json")
        with pytest.raises(BackendMalformedResponse):
            await backend.forward(openai_request_bytes(True), stream=True)
        with pytest.raises(BackendMalformedResponse):
            await backend.forward(openai_request_bytes(False), stream=False)


async def test_forward_broken_streams_raise() -> None:
    async with openai_server() as server:
        backend = OpenAIBackend("o", server.url, timeouts=FAST)
        for fault in (Fault.reset(after=3), Fault.truncate(after=3)):
            server.script([Reply(text="this will break", fault=fault)])
            response = await backend.forward(openai_request_bytes(True), stream=True)
            received = b""
            with pytest.raises(BackendDisconnected):
                async for chunk in response.chunks:
                    received += chunk
            await response.aclose()
            assert b"[DONE]" not in received


async def test_forward_aclose_closes_the_upstream() -> None:
    async with openai_server() as server:
        backend = OpenAIBackend("o", server.url, timeouts=FAST)
        server.script([Reply(text="z" * 300, chunk_size=1, chunk_delay=0.01)])
        response = await backend.forward(openai_request_bytes(True), stream=True)
        async for _ in response.chunks:
            break
        await response.aclose()
        await server.wait_disconnect()


def test_chat_request_from_openai() -> None:
    body = {
        "model": "m",
        "messages": [
            {"role": "developer", "content": "sys"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "done"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "max_completion_tokens": 9,
        "stream": True,
        "top_p": 0.9,
    }
    request = chat_request_from_openai(body)
    assert request.messages[0].role == "system"
    assert isinstance(request.messages[1].content, list)
    assert request.messages[1].content[1] == ImagePart(url="https://x/y.png")
    assert request.messages[2].tool_calls[0].name == "f"
    assert request.tool_choice == NamedToolChoice(name="f")
    assert (request.max_tokens, request.stream, request.extra) == (9, True, {"top_p": 0.9})
    again = openai_body(request, stream=True)
    assert again["messages"][2]["tool_calls"] == body["messages"][2]["tool_calls"]  # type: ignore[index]
    bad_bodies: list[dict[str, Any]] = [
        {"model": "m"},
        {"model": "m", "messages": [{"role": "wizard"}]},
        {"messages": []},
    ]
    for bad in bad_bodies:
        with pytest.raises(ValueError):
            chat_request_from_openai(bad)


# -- the shared session -------------------------------------------------------------------------


async def test_one_session_per_loop() -> None:
    session = get_session()
    assert get_session() is session
    await close_session()
    assert session.closed
    replacement = get_session()
    assert replacement is not session and not replacement.closed


def test_create_backend_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown backend type 'nope'"):
        create_backend("nope", "n", "http://127.0.0.1:1")
