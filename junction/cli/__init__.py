"""The `junction` command: parse arguments, load configuration, run one mode or one subcommand.

Exit codes: 0 success, 1 a check failed, 2 usage or configuration error (one line on stderr, never
a traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from junction.config import ConfigError, JunctionConfig, find_config_path
from junction.logs import configure_logging, register_secret
from junction.reload import ConfigSource

MODES = ("stdio", "mcp", "serve", "bridge")
COMMANDS = ("check", "tools", "agents", "backends", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="junction",
        description="ACP agent, MCP aggregator and A2A hub over one backend-selection core.",
    )
    parser.add_argument("command", nargs="?", choices=COMMANDS, help="inspect instead of serving")
    parser.add_argument("--mode", choices=MODES, help="what to serve")
    parser.add_argument(
        "--config", metavar="FILE", help="YAML config (else $JUNCTION_CONFIG, else ./junction.yaml)"
    )
    parser.add_argument(
        "--mcp-config", metavar="FILE", help='MCP servers in the common "mcpServers" JSON format'
    )
    parser.add_argument("--log-level", default=None, help="debug, info, warning or error")
    parser.add_argument("--host", help="listen address for --mode serve")
    parser.add_argument("--port", type=int, help="listen port for --mode serve")
    parser.add_argument("--uds", metavar="PATH", help="listen on a Unix socket (removed on exit)")
    parser.add_argument("--connect", metavar="URL", help="remote Junction for --mode bridge")
    parser.add_argument(
        "--token", help="bearer token for --mode bridge (or $JUNCTION_TOKEN, which ps cannot show)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.mode is None) == (args.command is None):
        parser.print_usage(sys.stderr)
        print("junction: give exactly one of --mode or a command", file=sys.stderr)
        return 2
    if args.command == "demo":  # self-contained: it writes its own config, so none is read
        from junction.cli.demo import run_demo

        configure_logging(args.log_level or "warning")
        return run_demo(JunctionConfig())
    serve = args.mode == "serve"
    try:
        # Kept by serve mode, to read the same files the same way on a reload.
        source = ConfigSource(
            find_config_path(args.config, os.environ),
            mcp_config=Path(args.mcp_config) if args.mcp_config else None,
            host=args.host if serve else None,
            port=args.port if serve else None,
        )
        config = source.load()
    except ConfigError as exc:
        print(f"junction: invalid configuration\n{exc}", file=sys.stderr)
        return 2
    configure_logging(
        args.log_level or config.logging.level,
        config.logging.format,
        access_log=config.logging.access_log,
    )
    for secret in config.secret_values():
        register_secret(secret)

    what = args.mode or args.command
    try:
        if what == "stdio":
            from junction.modes.acp_stdio import run_acp_stdio

            return run_acp_stdio(config)
        if what == "mcp":
            from junction.modes.mcp_stdio import run_mcp_stdio

            return run_mcp_stdio(config)
        if what == "tools":
            from junction.cli.inspect import tools_command

            return tools_command(config, as_json=args.json)
        if what == "bridge":
            if not args.connect:
                print("junction: --mode bridge needs --connect ws(s)://HOST/acp", file=sys.stderr)
                return 2
            from junction.modes.bridge import run_bridge

            return run_bridge(config, args.connect, args.token or os.environ.get("JUNCTION_TOKEN"))
        if what == "backends":
            from junction.cli.inspect import backends_command

            return backends_command(config, as_json=args.json)
        if what == "agents":
            from junction.cli.inspect import agents_command

            return agents_command(config, as_json=args.json)
        if what == "serve":
            from junction.modes.serve import run_serve

            return run_serve(config, uds=args.uds, source=source, log_level=args.log_level)
        from junction.cli.check import check_command

        return check_command(config, as_json=args.json)
    except KeyboardInterrupt:
        return 130
