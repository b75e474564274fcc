"""The wire form of a plain `tools/call` result, without the SDK's per-version model round trip.

The fast lane answers with what the SDK's server would write: the result validated against
the client's protocol version's model and dumped from it (`serialize_server_result`), which
drops what that version does not know and every `None` field. For the result nearly every
call gets (text blocks, `isError`, JSON `_meta`, `resultType: complete`), that dump is the
input in the model's key order, so it is built here directly: a fifth of the lane's CPU per
call went to the model round trip. Anything else returns None and goes through the SDK's
serialiser. tests/mcp_gateway/test_plain_results.py holds the two to the same bytes.
"""

from __future__ import annotations

import math
from typing import Any

from mcp_types import SERVER_INFO_META_KEY
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

_LEGACY = frozenset(HANDSHAKE_PROTOCOL_VERSIONS)
_MODERN = frozenset({"2026-07-28"})
"""Versions whose `tools/call` result model was checked to dump a plain result as is (with
`resultType`); any other version takes the SDK's serialiser."""

_KEYS = frozenset({"content", "isError", "_meta", "resultType"})
_TEXT_KEYS = frozenset({"type", "text"})


def plain_call_result(result: dict[str, Any], version: str) -> dict[str, Any] | None:
    """What `serialize_server_result("tools/call", version, result)` returns, for a plain
    result (`resultType` "complete"); None for any other result or version."""
    if result.keys() - _KEYS or result.get("resultType") != "complete":
        return None
    modern = version in _MODERN
    if not modern and version not in _LEGACY:
        return None
    content = result.get("content")
    if type(content) is not list:
        return None
    blocks = []
    for block in content:
        if (
            type(block) is not dict
            or block.keys() != _TEXT_KEYS
            or block["type"] != "text"
            or type(block["text"]) is not str
        ):
            return None
        blocks.append({"text": block["text"], "type": "text"})
    wire: dict[str, Any] = {}
    if "_meta" in result:
        meta = result["_meta"]
        if type(meta) is not dict or not _json(meta):
            return None
        if modern:
            if SERVER_INFO_META_KEY in meta:  # a declared field of the model: dumped first
                return None
            if None in meta.values():  # the model drops its None entries
                meta = {k: v for k, v in meta.items() if v is not None}
        wire["_meta"] = meta
    wire["content"] = blocks
    if "isError" in result:
        is_error = result["isError"]
        if type(is_error) is not bool:
            return None
        wire["isError"] = is_error
    if modern:
        wire["resultType"] = "complete"
    return wire


def _json(value: Any, depth: int = 0) -> bool:
    """Whether `value` is plain JSON data (dumped as it is), not too deep to check."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if depth > 16:
        return False
    if kind is dict:
        return all(type(k) is str and _json(v, depth + 1) for k, v in value.items())
    if kind is list:
        return all(_json(v, depth + 1) for v in value)
    return False
