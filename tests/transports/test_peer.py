"""The JSON-RPC peer's scenarios, run over every framing (NDJSON pipes, WebSocket)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from tests.transports.conftest import SMALL_LIMIT, Raw
from transports import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    JsonRpcPeer,
    MessageStream,
    PeerClosedError,
    RpcError,
)


class AddParams(BaseModel):
    a: int
    b: int


@dataclass
class ServerState:
    notes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    slow_cancelled: asyncio.Event = field(default_factory=asyncio.Event)


def serve(stream: MessageStream, **options: Any) -> tuple[JsonRpcPeer, ServerState]:
    peer = JsonRpcPeer(stream, **options)
    state = ServerState()

    async def echo(params: Any) -> Any:
        return params

    async def add(params: AddParams) -> int:
        return params.a + params.b

    async def slow(params: Any) -> None:
        state.slow_started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            state.slow_cancelled.set()
            raise

    async def boom(params: Any) -> None:
        raise RuntimeError("secret detail /etc/shadow")

    async def refuse(params: Any) -> None:
        raise RpcError(-32001, "not allowed", {"why": "policy"})

    async def ask_client(params: Any) -> Any:
        return await peer.request("client/answer", params)

    async def note(params: Any) -> None:
        if params["seq"] % 7 == 0:
            await asyncio.sleep(random.random() / 1000)
        state.notes[params["sessionId"]].append(params["seq"])

    async def notes(params: Any) -> Any:
        return state.notes

    for name, handler in [
        ("echo", echo),
        ("slow", slow),
        ("boom", boom),
        ("refuse", refuse),
        ("ask_client", ask_client),
        ("note", note),
        ("notes", notes),
    ]:
        peer.on(name, handler)
    peer.on("add", add, AddParams)
    return peer, state


@dataclass
class Connected:
    server: JsonRpcPeer
    server_stream: MessageStream
    state: ServerState
    client_stream: MessageStream
    runs: list[asyncio.Task[None]]


@pytest.fixture
async def connected(streams: tuple[MessageStream, MessageStream]) -> AsyncIterator[Connected]:
    server_stream, client_stream = streams
    server, state = serve(server_stream)
    runs = [asyncio.create_task(server.run())]
    yield Connected(server, server_stream, state, client_stream, runs)
    for run in runs:
        run.cancel()
    await asyncio.gather(*runs, return_exceptions=True)


@pytest.fixture
async def client(connected: Connected) -> JsonRpcPeer:
    peer = JsonRpcPeer(connected.client_stream)

    async def answer(params: Any) -> Any:
        return {"answered": params}

    peer.on("client/answer", answer)
    connected.runs.append(asyncio.create_task(peer.run()))
    return peer


@pytest.fixture
def raw(connected: Connected) -> Raw:
    return Raw(connected.client_stream)


# -- both directions ----------------------------------------------------------------------------


async def test_request_response_with_validated_params(client: JsonRpcPeer) -> None:
    assert await client.request("add", {"a": 2, "b": 40}) == 42
    assert await client.request("echo", ["x", 1]) == ["x", 1]


async def test_server_calls_back_into_client_while_handling_a_request(client: JsonRpcPeer) -> None:
    assert await client.request("ask_client", {"q": 1}) == {"answered": {"q": 1}}


async def test_many_concurrent_requests_each_get_their_own_answer(client: JsonRpcPeer) -> None:
    results = await asyncio.gather(*(client.request("add", {"a": i, "b": i}) for i in range(300)))
    assert results == [2 * i for i in range(300)]


async def test_slow_handler_never_blocks_other_requests(
    client: JsonRpcPeer, connected: Connected
) -> None:
    slow = asyncio.create_task(client.request("slow"))
    await asyncio.wait_for(connected.state.slow_started.wait(), 5)
    assert await asyncio.wait_for(client.request("add", {"a": 1, "b": 1}), 5) == 2
    slow.cancel()


async def test_notifications_of_one_session_arrive_in_order(
    client: JsonRpcPeer, connected: Connected
) -> None:
    for seq in range(200):
        await client.notify("note", {"sessionId": f"s{seq % 3}", "seq": seq})
    # The lanes drain asynchronously; poll until every note has been handled.
    for _ in range(500):
        notes = await client.request("notes")
        if sum(len(v) for v in notes.values()) == 200:
            break
        await asyncio.sleep(0.01)
    for lane in range(3):
        assert notes[f"s{lane}"] == [seq for seq in range(200) if seq % 3 == lane]


# -- cancellation --------------------------------------------------------------------------------


async def test_incoming_cancel_request_answers_minus_32800(raw: Raw, connected: Connected) -> None:
    await raw.send({"jsonrpc": "2.0", "id": "s-1", "method": "slow"})
    await asyncio.wait_for(connected.state.slow_started.wait(), 5)
    await raw.send({"jsonrpc": "2.0", "method": "$/cancel_request", "params": {"requestId": "s-1"}})
    reply = await raw.recv()
    assert reply["id"] == "s-1"
    assert reply["error"]["code"] == REQUEST_CANCELLED
    assert connected.state.slow_cancelled.is_set()
    assert (await raw.call({"jsonrpc": "2.0", "id": 2, "method": "echo", "params": [1]}))[
        "result"
    ] == [1]


async def test_cancelling_an_outgoing_request_cancels_it_on_the_other_side(
    client: JsonRpcPeer, connected: Connected
) -> None:
    call = asyncio.create_task(client.request("slow"))
    await asyncio.wait_for(connected.state.slow_started.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(connected.state.slow_cancelled.wait(), 5)


async def test_outgoing_request_times_out_and_cancels_remotely(
    client: JsonRpcPeer, connected: Connected
) -> None:
    with pytest.raises(TimeoutError):
        await client.request("slow", timeout=0.2)
    await asyncio.wait_for(connected.state.slow_cancelled.wait(), 5)


async def test_cancel_for_unknown_request_is_ignored(raw: Raw) -> None:
    await raw.send({"jsonrpc": "2.0", "method": "$/cancel_request", "params": {"requestId": 999}})
    assert (await raw.call({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {}}))[
        "result"
    ] == {}


# -- errors --------------------------------------------------------------------------------------


async def test_error_replies_and_connection_survives(raw: Raw) -> None:
    parse = await raw.call(b'{"jsonrpc": "2.0", "id": 1, "method": "echo"')
    assert parse["error"]["code"] == PARSE_ERROR and parse["id"] is None

    unknown = await raw.call({"jsonrpc": "2.0", "id": 2, "method": "nope"})
    assert unknown["error"]["code"] == METHOD_NOT_FOUND and unknown["id"] == 2

    bad_params = await raw.call({"jsonrpc": "2.0", "id": 3, "method": "add", "params": {"a": "x"}})
    assert bad_params["error"]["code"] == INVALID_PARAMS
    assert {tuple(e["loc"]) for e in bad_params["error"]["data"]} == {("a",), ("b",)}

    crashed = await raw.call({"jsonrpc": "2.0", "id": 4, "method": "boom"})
    assert crashed["error"] == {"code": INTERNAL_ERROR, "message": "Internal error"}

    refused = await raw.call({"jsonrpc": "2.0", "id": 5, "method": "refuse"})
    assert refused["error"] == {"code": -32001, "message": "not allowed", "data": {"why": "policy"}}

    ok = await raw.call({"jsonrpc": "2.0", "id": 6, "method": "add", "params": {"a": 1, "b": 2}})
    assert ok == {"jsonrpc": "2.0", "result": 3, "id": 6}


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        (b"\xff\xfe\x00garbage", None),
        (b'"just a string"', None),
        (b"42", None),
        ({"jsonrpc": "1.0", "id": 7, "method": "echo"}, 7),
        ({"id": 8, "method": "echo"}, 8),
        ({"jsonrpc": "2.0", "id": 9, "method": 12}, 9),
        ({"jsonrpc": "2.0", "id": {"no": 1}, "method": "echo"}, None),
        ({"jsonrpc": "2.0", "id": True, "method": "echo"}, None),
        ({"jsonrpc": "2.0", "id": 10, "method": "echo", "params": "str"}, 10),
        ({"jsonrpc": "2.0", "id": 11}, None),
    ],
)
async def test_malformed_messages_get_well_formed_errors(
    raw: Raw, message: Any, expected_id: Any
) -> None:
    reply = await raw.call(message)
    assert reply["jsonrpc"] == "2.0"
    assert reply["id"] == expected_id
    assert reply["error"]["code"] in (PARSE_ERROR, INVALID_REQUEST)
    assert (await raw.call({"jsonrpc": "2.0", "id": 99, "method": "echo", "params": [0]}))[
        "result"
    ] == [0]


async def test_response_to_unknown_id_is_dropped(raw: Raw) -> None:
    await raw.send({"jsonrpc": "2.0", "id": 12345, "result": "nobody asked"})
    assert (await raw.call({"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [2]}))[
        "result"
    ] == [2]


async def test_duplicate_in_flight_id_is_refused(raw: Raw, connected: Connected) -> None:
    await raw.send({"jsonrpc": "2.0", "id": "dup", "method": "slow"})
    await asyncio.wait_for(connected.state.slow_started.wait(), 5)
    reply = await raw.call({"jsonrpc": "2.0", "id": "dup", "method": "echo"})
    assert reply["id"] == "dup" and reply["error"]["code"] == INVALID_REQUEST
    assert "in flight" in reply["error"]["message"]


# -- batches -------------------------------------------------------------------------------------


async def test_batch_answers_requests_and_skips_notifications(raw: Raw) -> None:
    reply = await raw.call(
        [
            {"jsonrpc": "2.0", "id": 1, "method": "add", "params": {"a": 1, "b": 1}},
            {"jsonrpc": "2.0", "method": "note", "params": {"sessionId": "b", "seq": 1}},
            {"jsonrpc": "2.0", "id": "two", "method": "nope"},
            5,
        ]
    )
    by_id = {r["id"]: r for r in reply if r["id"] is not None}
    assert len(reply) == 3
    assert by_id[1]["result"] == 2
    assert by_id["two"]["error"]["code"] == METHOD_NOT_FOUND
    assert [r["error"]["code"] for r in reply if r["id"] is None] == [INVALID_REQUEST]


async def test_empty_batch_is_one_invalid_request_error(raw: Raw) -> None:
    reply = await raw.call(b"[]")
    assert reply["id"] is None and reply["error"]["code"] == INVALID_REQUEST


async def test_batch_of_notifications_gets_no_reply(raw: Raw) -> None:
    await raw.send([{"jsonrpc": "2.0", "method": "note", "params": {"sessionId": "n", "seq": 0}}])
    reply = await raw.call({"jsonrpc": "2.0", "id": "after", "method": "notes"})
    assert reply["id"] == "after"


# -- sizes and disconnects -----------------------------------------------------------------------


async def test_large_message_round_trips(client: JsonRpcPeer) -> None:
    blob = "x" * (SMALL_LIMIT - 1024)
    assert await client.request("echo", {"blob": blob}) == {"blob": blob}


async def test_oversized_message_is_refused(raw: Raw, request: pytest.FixtureRequest) -> None:
    await raw.send(
        {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": ["y" * (2 * SMALL_LIMIT)]}
    )
    if "websocket" in request.node.callspec.id:
        # WebSocket framing cannot skip a frame: the connection closes with 1009.
        assert await asyncio.wait_for(raw.stream.receive(), 10) is None
        return
    reply = await raw.recv()
    # Never read whole, but its id shows in its first bytes: the error answers the request.
    assert reply["id"] == 1 and reply["error"]["code"] == INVALID_REQUEST
    assert "exceeds the limit" in reply["error"]["message"]
    assert (await raw.call({"jsonrpc": "2.0", "id": 2, "method": "echo", "params": [3]}))[
        "result"
    ] == [3]


async def test_peer_that_disconnects_mid_request_ends_the_server_cleanly(
    connected: Connected,
) -> None:
    raw = Raw(connected.client_stream)
    await raw.send({"jsonrpc": "2.0", "id": 1, "method": "slow"})
    await asyncio.wait_for(connected.state.slow_started.wait(), 5)
    await connected.client_stream.aclose()
    await asyncio.wait_for(connected.runs[0], 15)
    assert connected.state.slow_cancelled.is_set()
    assert connected.server.closed


async def test_closing_peer_answers_its_running_requests_with_minus_32800(
    client: JsonRpcPeer, connected: Connected
) -> None:
    call = asyncio.create_task(client.request("slow"))
    await asyncio.wait_for(connected.state.slow_started.wait(), 5)
    await connected.server.aclose()
    with pytest.raises(RpcError) as raised:
        await asyncio.wait_for(call, 15)
    assert raised.value.code == REQUEST_CANCELLED


async def test_pending_outgoing_request_fails_when_the_connection_drops(
    client: JsonRpcPeer, connected: Connected
) -> None:
    call = asyncio.create_task(client.request("slow"))
    await asyncio.wait_for(connected.state.slow_started.wait(), 5)
    await connected.server_stream.aclose()
    with pytest.raises(PeerClosedError):
        await asyncio.wait_for(call, 15)


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'{"jsonrpc": "2.0", "id": 7, "method": "session/prompt", "params": {"x": "', 7),
        (b'{"method": "m", "params": {"id": 5, "b": ""}, "id": "abc", "x": "', "abc"),
        (b'{"params": {"id": 5}, "x": "aaaa', None),  # only a nested id: not the request's
        (b'{"id": 123456789012345678901234, "x', None),  # not a whole integer we can trust
        (b'{"a": "\\"id\\": 3", "id": "q\\"w", "x', 'q"w'),  # an "id" inside a string is text
        (b'[{"id": 1, "x', None),  # a batch: its members are answered one by one
        (b'{"id": tru', None),
    ],
)
def test_the_id_of_a_cut_off_message(head: bytes, expected: object) -> None:
    from transports.stream import request_id_in

    assert request_id_in(head) == expected


async def test_an_oversized_request_is_answered_with_its_id_and_the_connection_stays() -> None:
    """A request over the limit is never read whole, but its error answers it (the client
    would otherwise wait forever), and the next request is served."""
    from tests.transports.conftest import pipe_pair
    from transports import JsonRpcPeer

    async with pipe_pair(1024) as (server_side, client_side):
        peer = JsonRpcPeer(server_side)

        async def echo(params: Any) -> Any:
            return params

        peer.on("echo", echo)
        runner = asyncio.create_task(peer.run())
        try:
            big = b'{"jsonrpc": "2.0", "id": 41, "method": "echo", "params": ["' + b"x" * 5000
            await client_side.send(big + b'"]}')
            reply = orjson.loads(await asyncio.wait_for(client_side.receive(), 10))  # type: ignore[arg-type]
            assert reply["id"] == 41 and reply["error"]["code"] == -32600
            assert "exceeds the limit of 1024 bytes" in reply["error"]["message"]
            await client_side.send(b'{"jsonrpc": "2.0", "id": 42, "method": "echo", "params": [1]}')
            reply = orjson.loads(await asyncio.wait_for(client_side.receive(), 10))  # type: ignore[arg-type]
            assert reply == {"jsonrpc": "2.0", "id": 42, "result": [1]}
        finally:
            runner.cancel()
