"""Launch the ACP agent on stdio from a config file: what `junction --mode stdio` will run.

    python -m tests.acp.run_agent CONFIG.yaml [OVERRIDES.json]

Used by the SDK-client tests and the benchmark until the lead wires `junction.acp_mode`
into `junction --mode stdio`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    from junction.acp_mode import run_acp_stdio
    from junction.config import load_config
    from junction.logs import configure_logging

    config = load_config(Path(sys.argv[1]))
    overrides = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else None
    configure_logging(config.logging.level, config.logging.format)
    return run_acp_stdio(config, overrides)


if __name__ == "__main__":
    sys.exit(main())
