"""`router_core`'s public names all resolve (lazily: `import router_core` loads no aiohttp, no
Starlette), and names that moved out of `router_core.router` are the same objects under both."""

from __future__ import annotations

import subprocess
import sys

import router_core
import router_core.router


def test_every_public_name_resolves() -> None:
    missing = [name for name in router_core.__all__ if not hasattr(router_core, name)]
    assert missing == []
    for name in router_core.router.__all__:
        if name in router_core.__all__:
            assert getattr(router_core, name) is getattr(router_core.router, name), name


def test_import_is_cheap() -> None:
    code = (
        "import sys, router_core; router_core.RouterSettings;"
        "loaded = {'aiohttp', 'starlette'} & set(sys.modules); assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
