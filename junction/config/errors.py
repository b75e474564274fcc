"""`ConfigError`, and the one way a pydantic error becomes `<file>: <key.path>: <message>`.

Pydantic's own text names union members, links to its docs and spans lines; a user needs the key
to fix and what is wrong with it, so every error is rewritten here, never shown raw.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

__all__ = ["ConfigError", "format_validation_error", "unknown_key", "user_keys"]

_MSG_PREFIXES = ("Value error, ", "Assertion failed, ")


class ConfigError(Exception):
    """Everything wrong with a configuration, one `<file>: <key.path>: <message>` line each."""

    def __init__(self, lines: str | list[str]) -> None:
        self.lines: list[str] = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))


def user_keys(model: type[BaseModel]) -> list[str]:
    """The keys a user may write in a section (a field filled in by Junction is not one)."""
    return [name for name, field in model.model_fields.items() if not field.exclude]


def unknown_key(key: str, allowed: Iterable[str]) -> str:
    """The message for a key the section does not have: the closest known key, else them all."""
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    if allowed:
        return f"unknown key (expected one of: {', '.join(allowed)})"
    return "unknown key"


def _tagged_member(union: Any, tag: str) -> Any:
    """The member of a discriminated union carrying `Tag(tag)`, or None."""
    for member in get_args(union):
        if get_origin(member) is Annotated and any(
            isinstance(meta, Tag) and meta.tag == tag for meta in member.__metadata__
        ):
            return get_args(member)[0]
    return None


def _describe_loc(
    loc: tuple[str | int, ...], root: Any
) -> tuple[list[str], type[BaseModel] | None]:
    """Key path for a pydantic loc under `root` (union tags dropped) and the model owning the
    last key."""
    parts: list[str] = []
    expected: Any = root
    owner: type[BaseModel] | None = None
    for part in loc:
        while get_origin(expected) is Annotated:
            expected = get_args(expected)[0]
        if get_origin(expected) is Union and isinstance(part, str):
            member = _tagged_member(expected, part)
            if member is not None:
                expected = member  # a discriminator tag, not a key the user wrote
                continue
        if part == "[key]":  # pydantic's marker for "the key itself is invalid"
            continue
        parts.append(str(part))
        if isinstance(expected, type) and issubclass(expected, BaseModel):
            owner = expected
            field = expected.model_fields.get(str(part))
            expected = field.annotation if field is not None else None
        else:
            owner = None
            origin, args = get_origin(expected), get_args(expected)
            if origin is dict and len(args) == 2:
                expected = args[1]
            elif origin is list and args:
                expected = args[0]
            else:
                expected = None
    return parts, owner


def _message(error: Any, owner: type[BaseModel] | None, key: str) -> str:
    if error["type"] == "extra_forbidden":
        return unknown_key(key, user_keys(owner) if owner is not None else [])
    if error["type"] == "missing":
        return "required"
    msg: str = error["msg"]
    for prefix in _MSG_PREFIXES:
        msg = msg.removeprefix(prefix)
    return msg


def format_validation_error(
    exc: ValidationError, source: str, root: Any, prefix: tuple[str, ...] = ()
) -> list[str]:
    """One `<source>: <key.path>: <message>` line per error of validating `root` (a model or an
    annotation); `prefix` is the key path of `root` in the file."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        parts, owner = _describe_loc(loc, root)
        path = ".".join((*prefix, *parts)) or "(top level)"
        key = str(loc[-1]) if loc else (prefix[-1] if prefix else "")
        lines.append(f"{source}: {path}: {_message(error, owner, key)}")
    return lines
