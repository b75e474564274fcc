"""The ACP registry entry stays in the registry's shape, and names this version of Junction."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from junction.version import __version__

ENTRY = Path(__file__).resolve().parents[2] / "registry" / "junction" / "agent.json"

# The registry's rules for an entry (FORMAT.md: required fields, id and version patterns, a
# package distribution with package/cmd/args/env and nothing else), written out here.
SHAPE = {
    "type": "object",
    "required": ["id", "name", "version", "description", "distribution"],
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
        "name": {"type": "string", "minLength": 1},
        "version": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+"},
        "description": {"type": "string", "minLength": 1},
        "authors": {"type": "array", "items": {"type": "string"}},
        "license": {"type": "string"},
        "distribution": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": False,
            "properties": {
                "uvx": {
                    "type": "object",
                    "required": ["package"],
                    "additionalProperties": False,
                    "properties": {
                        "package": {"type": "string", "minLength": 1},
                        "cmd": {"type": "string"},
                        "args": {"type": "array", "items": {"type": "string"}},
                        "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                }
            },
        },
    },
}


def test_the_registry_entry_has_the_registrys_shape_and_this_version() -> None:
    entry = json.loads(ENTRY.read_text())
    jsonschema.validate(entry, SHAPE)
    assert entry["version"] == __version__
    uvx = entry["distribution"]["uvx"]
    # A source install of this distribution, running the agent as an editor launches it.
    assert uvx["package"].startswith("junction-hub @ git+")
    assert [uvx["cmd"], *uvx["args"]] == ["junction", "--mode", "stdio"]
    icon = ENTRY.with_name("icon.svg").read_text()
    assert 'width="16"' in icon and 'height="16"' in icon  # the registry's preferred size
