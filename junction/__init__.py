"""Composition root: configuration, CLI, the HTTP application, observability, and the library API.

from junction import Junction
junction = Junction.from_config_file("junction.yaml")
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
