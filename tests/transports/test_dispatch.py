"""One-shot JSON-RPC bodies (the HTTP binding A2A uses): same errors as the peer gives."""

from __future__ import annotations

from typing import Any

import orjson

from transports import INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR
from transports.dispatch import Methods


async def _echo(params: Any) -> Any:
    return params


async def handle(body: bytes) -> Any:
    methods = Methods()
    methods.on("echo", _echo)
    reply = await methods.handle(body)
    return None if reply is None else orjson.loads(reply)


async def test_request_gets_its_result() -> None:
    assert await handle(b'{"jsonrpc": "2.0", "id": "a", "method": "echo", "params": [1]}') == {
        "jsonrpc": "2.0",
        "result": [1],
        "id": "a",
    }


async def test_notification_gets_nothing() -> None:
    assert await handle(b'{"jsonrpc": "2.0", "method": "echo", "params": [1]}') is None


async def test_bad_bodies_get_errors() -> None:
    assert (await handle(b"{nope"))["error"]["code"] == PARSE_ERROR
    assert (await handle(b"[]"))["error"]["code"] == INVALID_REQUEST
    assert (await handle(b'{"jsonrpc": "2.0", "id": 1}'))["error"]["code"] == INVALID_REQUEST


async def test_batch_mixes_results_errors_and_skips_notifications() -> None:
    reply = await handle(
        b'[{"jsonrpc": "2.0", "id": 1, "method": "echo", "params": {"x": 1}},'
        b' {"jsonrpc": "2.0", "method": "echo"},'
        b' {"jsonrpc": "2.0", "id": 2, "method": "missing"}, 7]'
    )
    assert reply[0] == {"jsonrpc": "2.0", "result": {"x": 1}, "id": 1}
    assert reply[1]["error"]["code"] == METHOD_NOT_FOUND and reply[1]["id"] == 2
    assert reply[2]["error"]["code"] == INVALID_REQUEST and reply[2]["id"] is None
    assert len(reply) == 3
