"""Composition root: configuration, CLI, the HTTP application, observability, and the library API.

from junction import Junction
junction = Junction.from_config_file("junction.yaml")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from junction.config import ConfigError, JunctionConfig
    from junction.reload import ReloadResult
    from junction.server import Junction

__all__ = ["ConfigError", "Junction", "JunctionConfig", "ReloadResult"]


def __getattr__(name: str) -> Any:
    # `import junction` stays cheap for the CLI; the library API loads on first use.
    if name == "Junction":
        from junction.server import Junction

        return Junction
    if name in ("ConfigError", "JunctionConfig"):
        from junction import config

        return getattr(config, name)
    if name == "ReloadResult":
        from junction.reload import ReloadResult

        return ReloadResult
    raise AttributeError(f"module 'junction' has no attribute {name!r}")
