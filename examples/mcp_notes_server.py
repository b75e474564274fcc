"""A small MCP server over stdio, written with the official `mcp` SDK: notes, word count, time.

It is what `junction demo` aggregates, and a template for your own server. To use it with
your own configuration, add it under `mcp_servers:` and list what Junction now offers:

    mcp_servers:
      notes: {command: python, args: [examples/mcp_notes_server.py]}

    junction tools          # notes__word_count, notes__add_note, ...

Notes live in memory for as long as the process runs (set NOTES_FILE to keep them in a JSON
file instead).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from mcp.server import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer(
    "notes",
    title="Notes (Junction example)",
    instructions="Keep short notes, count words, tell the time.",
    version="1.0.0",
)

_NOTES_FILE = os.environ.get("NOTES_FILE")
_notes: dict[str, str] = {}
if _NOTES_FILE and Path(_NOTES_FILE).is_file():
    _notes = dict(json.loads(Path(_NOTES_FILE).read_text(encoding="utf-8")))


def _save() -> None:
    if _NOTES_FILE:
        Path(_NOTES_FILE).write_text(json.dumps(_notes, indent=2), encoding="utf-8")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def word_count(text: str) -> str:
    """Count the words, characters and lines of a text."""
    words = len(text.split())
    lines = text.count("\n") + 1 if text else 0
    return f"{words} words, {len(text)} characters, {lines} line{'s' if lines != 1 else ''}"


@server.tool()
def add_note(title: str, body: str) -> str:
    """Save a note under a title (replacing a note of the same title)."""
    replaced = title in _notes
    _notes[title] = body
    _save()
    return f"{'Replaced' if replaced else 'Saved'} note {title!r} ({len(_notes)} notes in total)"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def list_notes() -> str:
    """List every note, one per line as `title: body`."""
    if not _notes:
        return "No notes yet."
    return "\n".join(f"{title}: {body}" for title, body in _notes.items())


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def current_time() -> str:
    """The current time in UTC, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


if __name__ == "__main__":
    server.run()  # stdio: stdout carries MCP messages only
