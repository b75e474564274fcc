"""`junction --mode bridge` for the tests, with reconnect knobs small enough to keep them fast.

Loads configuration and logging the way the CLI does, then runs `run_bridge`. Run it as
`python -m tests.bridge_launcher --connect URL [--token T] [--config F] [--attempts N] [--delay S]`.
"""

from __future__ import annotations

import argparse
import os

from junction.config import find_config_path, load_config
from junction.logs import configure_logging
from junction.modes.bridge import RECONNECT_ATTEMPTS, RECONNECT_DELAY, run_bridge


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connect", required=True)
    parser.add_argument("--token")
    parser.add_argument("--config")
    parser.add_argument("--attempts", type=int, default=RECONNECT_ATTEMPTS)
    parser.add_argument("--delay", type=float, default=RECONNECT_DELAY)
    args = parser.parse_args()
    config = load_config(find_config_path(args.config, os.environ), os.environ)
    configure_logging(config.logging.level, config.logging.format)
    return run_bridge(
        config,
        args.connect,
        args.token,
        reconnect_attempts=args.attempts,
        reconnect_delay=args.delay,
    )


if __name__ == "__main__":
    raise SystemExit(main())
