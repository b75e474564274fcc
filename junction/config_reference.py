"""Renders docs/configuration.md from the configuration models, so the reference cannot drift,
and the JSON Schema editors validate and complete configuration files with.

    python -m junction.config_reference > docs/configuration.md
    python -m junction.config_reference --schema > docs/junction.schema.json

A test renders it again and compares, so a key added to a model without regenerating fails CI.
Descriptions are the attribute docstrings under each field (the convention in every settings
model), read from the source with `ast`.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import textwrap
import types
import typing
from functools import cache
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from junction.config import JunctionConfig
from junction.reload import APPLY, RESTART, reload_mode

HEADER = """# Configuration reference

Generated from the configuration models by `python -m junction.config_reference`; a test keeps
it in sync. Junction reads YAML from `--config FILE`, else `$JUNCTION_CONFIG`, else
`./junction.yaml`, else runs on embedded defaults (backends from `OPENAI_API_KEY` /
`OPENAI_BASE_URL`, `ANTHROPIC_API_KEY`, `OLLAMA_HOST`). Every string may use `${VAR}` and
`${VAR:-default}`; `$${` is a literal `${`. Unknown keys are errors that name their key path.
`NAME` stands for a key you choose (a backend's, a server's, an agent's name).

In `junction --mode serve` a change to the file is applied while Junction runs (it looks at the
file once a second while `server.watch_config` is on, and on SIGHUP), without dropping work in
flight; so is `Junction.replace_config` in the library. The "reload" column says which keys
that covers: `hot` applies at once, `restart` is logged as needing a restart and keeps its
running value. An invalid file is rejected with its errors and the running configuration stays.

"""

TABLE_HEAD = """
| key | type | default | reload | what it is |
|---|---|---|---|---|
"""


@cache
def _attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the docstring written under it, for a model and its bases."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(annotation))
    if origin is typing.Literal:
        return " or ".join(f"`{arg}`" for arg in get_args(annotation))
    if origin in (list, tuple):
        return f"list of {', '.join(_type_name(arg) for arg in get_args(annotation) if arg is not Ellipsis)}"
    if origin is dict:
        _, value = get_args(annotation)
        return f"map of {_type_name(value)}"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    if value in ({}, []):
        return "empty"
    text = repr(value)
    return f"`{text}`" if len(text) <= 40 else "(see the model)"


def _reload(key: str) -> str:
    """`hot` or `restart`; a section whose keys differ says so, and its keys say which."""
    try:
        return reload_mode(key)
    except KeyError:
        if any(listed.startswith(f"{key}.") for listed in (*RESTART, *APPLY)):
            return "per key"
        raise


def _rows(model: type[BaseModel], prefix: str, seen: tuple[type[BaseModel], ...]) -> list[str]:
    rows: list[str] = []
    docs = _attribute_docs(model)
    for name, field in model.model_fields.items():
        if field.exclude:
            continue  # filled in by Junction (a backend's name is its key), not written
        key = f"{prefix}{name}"
        annotation = field.annotation
        sections = _models_in(annotation)
        description = docs.get(name) or field.description or ""
        if not description and sections:
            description = " ".join((sections[0].__doc__ or "").split())
        rows.append(
            f"| `{key}` | {_type_name(annotation)} | {_default(field)} | {_reload(key)} "
            f"| {description} |".replace("\n", " ")
        )
        origin = get_origin(annotation)
        child_prefix = f"{key}.NAME." if origin is dict else f"{key}."
        for child in sections:
            if child not in seen:
                rows.extend(_rows(child, child_prefix, (*seen, child)))
    return rows


def _restart_notes() -> str:
    lines = [f"- `{key}`: {why}." for key, why in RESTART.items()]
    return "Why some keys need a restart:\n\n" + "\n".join(lines) + "\n"


def render() -> str:
    """The whole reference page."""
    rows = "\n".join(_rows(JunctionConfig, "", (JunctionConfig,)))
    return HEADER + _restart_notes() + TABLE_HEAD + rows + "\n"


def json_schema() -> str:
    """The configuration's JSON Schema (draft 2020-12), for editors (YAML language servers read
    `# yaml-language-server: $schema=...`). Values written as `${VAR}` are strings to an editor;
    Junction substitutes them before it validates."""
    import json

    from junction.config.backends import NAME_FROM_KEY

    schema = JunctionConfig.model_json_schema(mode="validation")
    for definition in schema.get("$defs", {}).values():
        # Filled from the entry's key in its map, never written in the file.
        definition.get("properties", {}).pop(NAME_FROM_KEY, None)
        required = definition.get("required")
        if required and NAME_FROM_KEY in required:
            required.remove(NAME_FROM_KEY)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Junction configuration (junction.yaml)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    import sys

    print(json_schema() if "--schema" in sys.argv[1:] else render(), end="")
