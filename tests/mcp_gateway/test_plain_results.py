"""`plain_call_result` writes the same bytes as the SDK's per-version serialiser, or declines."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from mcp_types import SERVER_INFO_META_KEY
from mcp_types import methods as _methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from pydantic_core import to_json

from mcp_gateway._plain_results import plain_call_result

VERSIONS = (*HANDSHAKE_PROTOCOL_VERSIONS, "2026-07-28")

BLOCKS: list[Any] = [
    {"type": "text", "text": "hi"},
    {"text": 'é\u2028"quoted"\n', "type": "text"},
    {"type": "text", "text": ""},
    {"type": "text", "text": "x", "annotations": None},
    {"type": "text", "text": "x", "_meta": {"a": 1}},
    {"type": "text", "text": 3},
    {"type": "image", "data": "aGk=", "mimeType": "image/png"},
    {"type": "text"},
    "text",
    None,
]
METAS: list[Any] = [
    {},
    {"k": "v", "n": 1, "f": 1.5, "b": True},
    {"none": None, "nested": {"x": None, "y": [None, 1, "s", {"z": False}]}},
    {SERVER_INFO_META_KEY: {"name": "up", "version": "1"}, "k": 1},
    {"big": 10**30, "neg": -0.0},
    {"inf": float("inf")},
    {"deep": {"a": {"b": {"c": {"d": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}}}},
    None,
    [],
]
OTHERS: list[dict[str, Any]] = [
    {},
    {"isError": False},
    {"isError": True},
    {"isError": None},
    {"isError": 1},
    {"structuredContent": {"a": 1}},
    {"extra": 1},
]


def results() -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for blocks in ([], *([b] for b in BLOCKS), BLOCKS[:2], BLOCKS[:3] + BLOCKS[5:6]):
        for meta, other in itertools.product([*METAS, "absent"], OTHERS):
            result: dict[str, Any] = {"content": list(blocks), **other}
            if meta != "absent":
                result["_meta"] = meta
            made.append({**result, "resultType": "complete"})
    rng = random.Random(14)
    for result in rng.sample(made, 40):  # other result types, key orders, no content
        made.append({**result, "resultType": rng.choice(["input_required", None, 1, "x"])})
        made.append(dict(reversed(list(result.items()))))
        made.append({k: v for k, v in result.items() if k != "content"})
    return made


@pytest.mark.parametrize("version", VERSIONS)
def test_same_bytes_as_the_sdk_serialiser_or_none(version: str) -> None:
    taken = 0
    for result in results():
        fast = plain_call_result(result, version)
        if fast is None:
            continue
        taken += 1
        sdk = _methods.serialize_server_result("tools/call", version, result)
        assert to_json(fast) == to_json(sdk), result
    assert taken > 50  # it serves the plain shapes at every version


def test_it_serves_what_an_sdk_server_sends() -> None:
    result = {"content": [{"type": "text", "text": "hi"}], "isError": False, "_meta": {}}
    for version in VERSIONS:
        assert plain_call_result({**result, "resultType": "complete"}, version) is not None


def test_declines_shapes_the_model_changes() -> None:
    declined = [
        {"content": [{"type": "text", "text": "x", "annotations": None}]},
        {"content": [{"type": "image", "data": "aGk=", "mimeType": "image/png"}]},
        {"content": [], "isError": None},
        {"content": [], "structuredContent": {}},
        {"content": [], "_meta": {"inf": float("inf")}},
        {"content": [], "_meta": {SERVER_INFO_META_KEY: {}}},
    ]
    for result in declined:
        assert plain_call_result({**result, "resultType": "complete"}, "2026-07-28") is None
    assert plain_call_result({"content": [], "resultType": "complete"}, "1999-01-01") is None
    with pytest.raises(ValidationError):  # what the SDK path would have raised, left to it
        _methods.serialize_server_result("tools/call", "2026-07-28", {"content": [{"x": 1}]})
