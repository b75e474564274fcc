"""A tool's arguments checked against its input schema, so a wrong type is a clear error.

jsonschema judges, as it always did; a schema it cannot use (not a valid schema) is the
upstream's to enforce. Most tools' schemas are an object of typed properties, some required,
and most calls are valid: for those, a compiled check that can only say "certainly valid"
answers in a microsecond instead of jsonschema's walk (a tenth of Junction's CPU per call);
anything it does not certify, and every schema with any other keyword, goes to jsonschema.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]
"""True only when the schema certainly accepts the value (False: jsonschema decides)."""

_ANNOTATIONS = frozenset(
    {
        "description",
        "title",
        "default",
        "examples",
        "$schema",
        "$comment",
        "format",  # an annotation unless a format checker is given (none is)
        "deprecated",
        "readOnly",
        "writeOnly",
    }
)
_STRUCTURE = frozenset({"type", "properties", "required", "additionalProperties"})
_EXACT: dict[str, type] = {
    "object": dict,
    "string": str,
    "boolean": bool,
    "array": list,
    "null": type(None),
    "integer": int,  # `type(v) is int`: a bool is not one, a float (1.0) goes to jsonschema
}


def _of_type(kind: object) -> Check | None:
    if kind == "number":
        return lambda value: type(value) is int or type(value) is float
    exact = _EXACT.get(kind) if isinstance(kind, str) else None
    if exact is None:
        return None
    return lambda value: type(value) is exact


def compile_check(schema: object) -> Check | None:
    """A certain-validity check for `schema`, or None when it uses more than `type` (one
    name), `properties`, `required`, `additionalProperties` (true or false) and
    annotations."""
    if not isinstance(schema, dict) or schema.keys() - _ANNOTATIONS - _STRUCTURE:
        return None
    kind = schema.get("type")
    of_type = _of_type(kind) if kind is not None else (lambda value: True)
    if of_type is None:
        return None
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    if not (properties or required or additional is not True):
        return of_type
    if kind != "object" or not isinstance(properties, dict) or not isinstance(additional, bool):
        return None
    if not isinstance(required, list) or not all(isinstance(key, str) for key in required):
        return None
    checks: dict[str, Check] = {}
    for key, sub in properties.items():
        check = compile_check(sub)
        if check is None:
            return None
        checks[key] = check
    closed = additional is False

    def check_object(value: Any) -> bool:
        if type(value) is not dict:
            return False
        for key in required:
            if key not in value:
                return False
        for key, item in value.items():
            check = checks.get(key)
            if check is None:
                if closed:
                    return False
            elif not check(item):
                return False
        return True

    return check_object


class ArgumentCheck:
    """One tool's input schema, compiled once (the catalog keeps one per exposed name)."""

    def __init__(self, schema: object) -> None:
        # jsonschema comes with the SDK; imported on first use, untyped (no stubs installed).
        validators: Any = importlib.import_module("jsonschema.validators")
        try:
            cls = validators.validator_for(schema)
            cls.check_schema(schema)
            self._validator: Any = cls(schema)
        except Exception:
            self._validator = None  # an unusable schema is the upstream's to enforce
        self._certain = compile_check(schema) if self._validator is not None else None

    def problem(self, args: dict[str, Any]) -> str | None:
        """What is wrong with `args`, or None."""
        if self._validator is None or (self._certain is not None and self._certain(args)):
            return None
        error = next(iter(self._validator.iter_errors(args)), None)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path)
        return f"{error.message}" + (f" (at {where})" if where else "")
