"""The JSON-RPC peer under thousands of mutated messages, over each real framing.

A seeded mutator (no third-party fuzzer) bends valid ACP-like traffic: any member replaced by any
JSON type, members dropped or added, messages wrapped in batches, bytes flipped, cut, or made
invalid UTF-8. The oracle is JSON-RPC 2.0 itself: every message that carries a valid id is answered
with that id (a result or an error), a message that is not JSON gets -32700 with id null, an invalid
request without a usable id gets -32600 with id null, notifications and responses get nothing.
Whatever arrives, the peer must stay up and keep answering.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from tests.transports.conftest import FRAMINGS, SMALL_LIMIT, open_pair
from transports import JsonRpcPeer, MessageStream, RpcError

SEED = 20261201
COUNTS = {"stdio": 3000, "websocket": 3000}
"""Messages per framing."""
WINDOW = 100
NO_REPLY = object()
"""A message the peer must not answer (a notification or a response)."""

# JSON values of every type, including the ones that broke the peer (lists and objects as ids).
ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    1.5,
    -0.0,
    1e308,
    "",
    "x",
    "2.0",
    "$/cancel_request",
    "s" * 300,
    "ünï😀",
    [],
    [1, "a", None],
    [[[]]],
    {},
    {"sessionId": []},
    {"a": {"b": {"c": [1, {}]}}},
]
KEYS = ["jsonrpc", "id", "method", "params", "result", "error", "sessionId", "requestId", "code"]

SEEDS: list[Any] = [
    {"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"sessionId": "s1", "x": [1, 2]}},
    {"jsonrpc": "2.0", "id": "r-1", "method": "add", "params": {"a": 1, "b": 2}},
    {"jsonrpc": "2.0", "id": 2, "method": "echo", "params": [1, "two", None]},
    {"jsonrpc": "2.0", "id": 3, "method": "boom"},
    {"jsonrpc": "2.0", "id": 4, "method": "refuse", "params": {}},
    {"jsonrpc": "2.0", "id": 5, "method": "no/such/method", "params": {}},
    {"jsonrpc": "2.0", "method": "session/update", "params": {"sessionId": "s1", "n": 1}},
    {"jsonrpc": "2.0", "method": "note", "params": {"sessionId": "s2", "update": {"k": "v"}}},
    {"jsonrpc": "2.0", "method": "$/cancel_request", "params": {"requestId": 1}},
    {"jsonrpc": "2.0", "id": 99, "result": {"ok": True}},
    {"jsonrpc": "2.0", "id": 98, "error": {"code": -32000, "message": "no", "data": [1]}},
    [
        {"jsonrpc": "2.0", "id": 6, "method": "echo", "params": {"sessionId": "s3"}},
        {"jsonrpc": "2.0", "method": "note", "params": {"sessionId": "s3"}},
    ],
]
GARBAGE = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"{", b"}", b"]", b'"', b",", b":", b"\\"]


class AddParams(BaseModel):
    a: int
    b: int


class Mutator:
    """Seeded mutations of JSON-RPC messages, structural and byte-level."""

    def __init__(
        self, seed: int, seeds: list[Any] | None = None, keys: list[str] | None = None
    ) -> None:
        self.rng = random.Random(seed)
        self.seeds = seeds or SEEDS
        self.keys = keys or KEYS

    def message(self) -> bytes:
        rng = self.rng
        value = orjson.loads(orjson.dumps(rng.choice(self.seeds)))
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            value = self._mutate(value)
        raw = orjson.dumps(value)
        if rng.random() < 0.25:
            raw = self._mangle(raw)
        raw = raw.replace(b"\n", b" ")  # NDJSON: one message is one line
        return raw if raw.strip() else b"?"

    def _mutate(self, value: Any) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.08:
            return [value] if rng.random() < 0.8 else []
        if roll < 0.12:
            return rng.choice(ODD_VALUES)
        containers = list(_containers(value))
        if not containers:  # a scalar after an earlier mutation: wrap it again
            return [value]
        target = rng.choice(containers)
        if isinstance(target, list):
            if target and rng.random() < 0.7:
                target[rng.randrange(len(target))] = self._value()
            else:
                target.append(self._value())
            return value
        roll = rng.random()
        if target and roll < 0.55:
            target[rng.choice(list(target))] = self._value()
        elif target and roll < 0.75:
            del target[rng.choice(list(target))]
        else:
            target[rng.choice(self.keys)] = self._value()
        return value

    def _value(self) -> Any:
        return orjson.loads(orjson.dumps(self.rng.choice(ODD_VALUES)))

    def _mangle(self, raw: bytes) -> bytes:
        rng = self.rng
        at = rng.randrange(len(raw) + 1)
        roll = rng.random()
        if roll < 0.3:
            return raw[:at]
        if roll < 0.6:
            return raw[:at] + rng.choice(GARBAGE) + raw[at:]
        if roll < 0.8 and raw:
            at = min(at, len(raw) - 1)
            return raw[:at] + bytes([rng.randrange(256)]) + raw[at + 1 :]
        return raw[:at] + raw[at // 2 :]


def _containers(value: Any) -> Iterator[Any]:
    """Every list and object inside `value`, itself included."""
    if isinstance(value, dict | list):
        yield value
        for child in value.values() if isinstance(value, dict) else value:
            yield from _containers(child)


def _valid_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def _member_reply(message: Any) -> Any:
    """The id JSON-RPC 2.0 says the answer to one message carries, or NO_REPLY."""
    if not isinstance(message, dict):
        return None
    if "method" not in message:
        return NO_REPLY if "result" in message or "error" in message else None
    has_id = "id" in message
    usable_id = message["id"] if has_id and _valid_id(message["id"]) else None
    params = message.get("params")
    if (
        message.get("jsonrpc") != "2.0"
        or not isinstance(message["method"], str)
        or (has_id and usable_id is None)
        or (params is not None and not isinstance(params, dict | list))
    ):
        return usable_id
    return usable_id if has_id else NO_REPLY


def expected_replies(raw: bytes) -> tuple[list[Any], bool]:
    """The ids of the answers `raw` is owed, and whether they come as one batch reply."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [None], False
    if not isinstance(message, list):
        reply = _member_reply(message)
        return ([] if reply is NO_REPLY else [reply]), False
    if not message:
        return [None], False
    ids = [reply for reply in map(_member_reply, message) if reply is not NO_REPLY]
    return ids, bool(ids)


def id_key(value: Any) -> tuple[str, Any]:
    return type(value).__name__, value


def check_response(reply: Any) -> Any:
    """A well-formed JSON-RPC response; returns its id."""
    assert isinstance(reply, dict), reply
    assert reply.get("jsonrpc") == "2.0", reply
    assert "id" in reply, reply
    assert ("result" in reply) != ("error" in reply), reply
    if "error" in reply:
        error = reply["error"]
        assert isinstance(error["code"], int) and isinstance(error["message"], str), reply
    return reply["id"]


def serve_fuzz_methods(peer: JsonRpcPeer) -> None:
    async def echo(params: Any) -> Any:
        return params

    async def add(params: AddParams) -> int:
        return params.a + params.b

    async def boom(params: Any) -> None:
        raise RuntimeError("handler failure")

    async def refuse(params: Any) -> None:
        raise RpcError(-32001, "not allowed")

    async def note(params: Any) -> None:
        return None

    for name, handler in [
        ("echo", echo),
        ("boom", boom),
        ("refuse", refuse),
        ("note", note),
        ("session/update", note),
    ]:
        peer.on(name, handler)
    peer.on("add", add, AddParams)


async def receive_json(stream: MessageStream) -> Any:
    item = await asyncio.wait_for(stream.receive(), 10)
    assert isinstance(item, bytes), f"the connection ended or misbehaved: {item!r}"
    return orjson.loads(item)


async def fuzz_peer(server: MessageStream, client: MessageStream, count: int, seed: int) -> None:
    """Send `count` mutated messages in windows; each window's answers must be exactly owed."""
    peer = JsonRpcPeer(server)
    serve_fuzz_methods(peer)
    run = asyncio.create_task(peer.run())
    mutator = Mutator(seed)
    try:
        for start in range(0, count, WINDOW):
            owed: Counter[tuple[str, Any]] = Counter()
            batches = 0
            sent = []
            for _ in range(min(WINDOW, count - start)):
                raw = mutator.message()
                ids, batch = expected_replies(raw)
                owed.update(id_key(i) for i in ids)
                batches += batch
                sent.append(raw)
                await client.send(raw)
            while owed or batches:
                reply = await receive_json(client)
                if isinstance(reply, list):
                    assert reply and batches, f"unexpected batch reply {reply!r}"
                    batches -= 1
                members = reply if isinstance(reply, list) else [reply]
                for member in members:
                    key = id_key(check_response(member))
                    assert owed[key] > 0, f"unowed reply {member!r} to one of {sent!r}"
                    owed[key] -= 1
                    if not owed[key]:
                        del owed[key]
            assert not run.done(), "the peer stopped"
        await client.send(b'{"jsonrpc":"2.0","id":"alive","method":"echo","params":["still"]}')
        assert await receive_json(client) == {"jsonrpc": "2.0", "result": ["still"], "id": "alive"}
        assert not run.done()
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_peer_survives_and_answers_mutated_messages(framing: str) -> None:
    async with asyncio.timeout(60), open_pair(framing, SMALL_LIMIT) as (server, client):
        await fuzz_peer(server, client, COUNTS[framing], SEED)


@pytest.mark.parametrize("session_id", [[], ["s"], {}, {"a": 1}, [[{}]]])
async def test_notification_with_an_unhashable_session_id_keeps_the_peer_up(
    session_id: Any,
) -> None:
    """The bug that ended `--mode stdio` (TypeError: unhashable type) and closed /acp with 1011."""
    async with asyncio.timeout(20), open_pair("stdio", SMALL_LIMIT) as (server, client):
        peer = JsonRpcPeer(server)
        serve_fuzz_methods(peer)
        run = asyncio.create_task(peer.run())
        notification = {"jsonrpc": "2.0", "method": "note", "params": {"sessionId": session_id}}
        await client.send(orjson.dumps(notification))
        await client.send(b'{"jsonrpc":"2.0","id":7,"method":"echo","params":{"sessionId":[1]}}')
        assert await receive_json(client) == {
            "jsonrpc": "2.0",
            "result": {"sessionId": [1]},
            "id": 7,
        }
        assert not run.done()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)


async def test_error_reply_with_a_malformed_code_fails_only_that_call() -> None:
    """A response whose error code is not an integer fails the awaiting call, not the peer."""
    async with asyncio.timeout(20), open_pair("stdio", SMALL_LIMIT) as (ours, theirs):
        peer = JsonRpcPeer(ours)
        run = asyncio.create_task(peer.run())
        for code in ["bad", [1], {"c": 1}, None, 1.5, True]:
            call = asyncio.create_task(peer.request("ask"))
            request = await receive_json(theirs)
            reply = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": code}}
            await theirs.send(orjson.dumps(reply))
            with pytest.raises(RpcError) as info:
                await call
            assert info.value.code == -32603
        assert not run.done()
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
