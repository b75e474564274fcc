"""Catalog mode: three tools (search, describe, call) in place of hundreds.

A client whose context would drown in a large aggregate (every tool's schema in every
prompt) sees only these; it finds a tool by words, reads its schema, and calls it by name,
with the same access checks, relays and results as a direct call. Off by default
(`GatewayOptions.catalog_mode`, config `mcp.catalog_mode`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

SEARCH, DESCRIBE, CALL = "search_tools", "describe_tool", "call_tool"
DEFAULT_LIMIT = 10

TOOLS: list[dict[str, Any]] = [
    {
        "name": SEARCH,
        "description": "Find tools by words (in their names and descriptions); returns each "
        "match's name and description, best first. Then describe_tool, then call_tool.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Words the tool is about."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50},
            },
            "required": ["query"],
        },
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": DESCRIBE,
        "description": "A tool's whole definition: its description and the JSON Schema of "
        "its arguments (and of its result, if it has one).",
        "inputSchema": {
            "type": "object",
            "properties": {"name": {"type": "string", "description": "As search_tools gave it."}},
            "required": ["name"],
        },
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": CALL,
        "description": "Call a tool by name with its arguments; returns that tool's result.",
        "inputSchema": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "arguments": {"type": "object", "description": "As describe_tool's schema."},
            },
            "required": ["name"],
        },
    },
]

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def search(tools: Iterable[dict[str, Any]], query: str, limit: int) -> list[dict[str, Any]]:
    """Tools whose name or description holds the query's words, scored by how many (a word
    in the name counts three times), ties in catalog order."""
    wanted = set(_words(query))
    scored: list[tuple[int, int, dict[str, Any]]] = []
    for index, tool in enumerate(tools):
        name = set(_words(str(tool.get("name", ""))))
        text = _words(f"{tool.get('title') or ''} {tool.get('description') or ''}")
        score = sum(3 for w in wanted if w in name) + sum(1 for w in text if w in wanted)
        if score:
            scored.append((-score, index, tool))
    scored.sort(key=lambda entry: entry[:2])
    return [
        {"name": tool["name"], "description": str(tool.get("description") or "")[:300]}
        for _, _, tool in scored[:limit]
    ]


def _result(value: Any, is_error: bool = False) -> dict[str, Any]:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": is_error}
    if isinstance(value, dict):
        result["structuredContent"] = value
    return result


def answer(
    name: str,
    arguments: dict[str, Any],
    tools: list[dict[str, Any]],
    may_use: Callable[[str], bool],
) -> dict[str, Any]:
    """The result of `search_tools` or `describe_tool` over the tools the caller may use."""
    visible = [t for t in tools if may_use(t["name"])]
    if name == SEARCH:
        limit = arguments.get("limit")
        count = limit if isinstance(limit, int) and 0 < limit <= 50 else DEFAULT_LIMIT
        return _result({"tools": search(visible, str(arguments.get("query") or ""), count)})
    wanted = arguments.get("name")
    for tool in visible:
        if tool["name"] == wanted:
            return _result(dict(tool))
    return _result(f"No tool named {wanted!r}; search_tools finds tools by words.", True)


def unwrap(arguments: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """`call_tool`'s target and its arguments, or None when they are malformed."""
    args = arguments or {}
    name, inner = args.get("name"), args.get("arguments", {})
    if not isinstance(name, str) or not isinstance(inner, dict):
        return None
    return name, inner
