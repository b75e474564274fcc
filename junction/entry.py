"""The `junction` console script: an editor's `initialize` is answered before the CLI loads.

`junction.cli` imports the configuration models (pydantic) at once, ~0.25 s before any mode
runs; `junction --mode stdio` answers `initialize` first (`junction.modes.acp_early`), then
hands over to the CLI as usual. Every other command goes straight to the CLI.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    from junction.modes.acp_early import answer_initialize

    answer_initialize(sys.argv[1:], os.environ)
    from junction.cli import main as cli_main

    return cli_main()


__all__ = ["main"]
