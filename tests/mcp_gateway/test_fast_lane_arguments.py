"""The compiled argument check (mcp_gateway/_arguments.py) only ever certifies what jsonschema
accepts, covers the common schema shapes, and leaves every verdict against to jsonschema."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from jsonschema.validators import validator_for

from mcp_gateway._arguments import ArgumentCheck, compile_check

SCHEMAS: list[dict[str, Any]] = [
    {},
    {"type": "object"},
    {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "first"},
            "b": {"type": "number", "default": 1},
            "flag": {"type": "boolean"},
            "tags": {"type": "array"},
            "nothing": {"type": "null"},
            "inner": {
                "type": "object",
                "properties": {"x": {"type": "string", "format": "uri"}},
                "required": ["x"],
                "additionalProperties": False,
            },
        },
        "required": ["a"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    },
    {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
     "properties": {"n": {"type": "integer"}}},
]  # fmt: skip
VALUES: list[Any] = [
    None, True, False, 0, 1, -7, 2**70, 1.0, 1.5, "", "s", [], [1], {}, {"x": "u"}, {"y": 1},
]  # fmt: skip
KEYS = ["message", "a", "b", "flag", "tags", "nothing", "inner", "n", "extra"]


def argument_sets() -> list[dict[str, Any]]:
    """Objects of one or two of the keys, with every kind of value."""
    found: list[dict[str, Any]] = [{}]
    for key in KEYS:
        found += [{key: value} for value in VALUES]
    for first, second in itertools.combinations(KEYS[:5], 2):
        found += [{first: "s", second: value} for value in VALUES]
    return found


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_the_compiled_check_certifies_only_what_jsonschema_accepts(schema: dict[str, Any]) -> None:
    check = compile_check(schema)
    assert check is not None  # these shapes are the ones it exists for
    validator = validator_for(schema)(schema)
    certified = 0
    for args in argument_sets():
        valid = not list(validator.iter_errors(args))
        if check(args):
            assert valid, (schema, args)
            certified += 1
        assert (ArgumentCheck(schema).problem(args) is None) == valid, (schema, args)
    assert certified > 0


def test_other_keywords_are_left_to_jsonschema() -> None:
    for schema in (
        {"type": "object", "properties": {"s": {"type": "string", "minLength": 2}}},
        {"type": ["string", "null"]},
        {"type": "object", "properties": {"s": {"enum": ["a"]}}},
        {"type": "object", "patternProperties": {"^x": {"type": "string"}}},
        {"type": "object", "properties": {"s": True}},
        {"anyOf": [{"type": "string"}]},
        {"type": "object", "additionalProperties": {"type": "string"}},
    ):
        assert compile_check(schema) is None, schema
    too_short = ArgumentCheck(
        {"type": "object", "properties": {"s": {"type": "string", "minLength": 2}}}
    )
    assert too_short.problem({"s": "x"}) == "'x' is too short (at s)"


def test_the_error_says_what_and_where() -> None:
    check = ArgumentCheck(SCHEMAS[3])
    assert check.problem({"a": 1, "inner": {"x": 5}}) == "5 is not of type 'string' (at inner/x)"
    assert check.problem({}) == "'a' is a required property"
    assert ArgumentCheck({"type": "object", "required": "nope"}).problem({}) is None  # unusable
