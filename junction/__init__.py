"""Composition root: configuration, CLI, the HTTP application, observability, and the library API.

    from junction import Junction
    junction = Junction.from_config_file("junction.yaml")

Where things are: `config/` (the YAML, validated), `build.py` (configuration -> each package's
objects), `root.py` (`Junction`: builds them once, starts them, applies a changed
configuration), `reload.py` (which keys apply while running; the file watcher), `bridges/` (the
adapters between protocols), `http/` (the app, the access guard, metrics, the uvicorn server),
`modes/` (stdio ACP, stdio MCP, serve, bridge), `cli/` (the commands and their tables).

Decisions:
- Only this package knows every other one; the rest import down the layout table
  (docs/architecture.md), which `tests/test_structure.py` checks together with "no import loop".
- Imports stay lazy where a mode does not need them (`junction --mode stdio` answers
  `initialize` before router_core's aiohttp or the `mcp` SDK load; docs/performance.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from junction.config import ConfigError, JunctionConfig
    from junction.reload import ReloadResult
    from junction.root import Junction

# `import junction` stays cheap for the CLI; the library API loads on first use.
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "config": ["ConfigError", "JunctionConfig"],
        "reload": ["ReloadResult"],
        "root": ["Junction"],
    },
)

__all__ = ["ConfigError", "Junction", "JunctionConfig", "ReloadResult"]
