"""The `junction` command: parse arguments, load configuration, run one mode or one subcommand.

Exit codes: 0 success, 1 a check failed, 2 usage or configuration error, 3 serve mode cannot
listen (the port is taken, or the address is not this machine's); each with one line on stderr,
never a traceback.
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

MODES: dict[str, str] = {
    "stdio": "the ACP agent on stdin/stdout: what an editor launches",
    "mcp": "the aggregated MCP server on stdin/stdout, for MCP clients",
    "serve": "every HTTP surface (/mcp, /a2a, /acp, /v1, /admin, /health)",
    "bridge": "an editor's stdio relayed to a remote Junction (--connect URL)",
}
COMMANDS: dict[str, str] = {
    "check": "validate the config, reach every upstream once (1 if one is down)",
    "tools": "connect to every MCP server and list the tools clients will see",
    "agents": "fetch every A2A agent's card and show its skills and state",
    "backends": "probe every model backend and list its models",
    "demo": "an end-to-end run on bundled examples, no network or key needed",
    "init": "write a starting junction.yaml from this machine's editors and keys",
    "login": "sign in to an MCP server that needs OAuth (junction login NAME)",
    "logout": "forget the stored login to an MCP server (junction logout NAME)",
    "migrate": "bring the store's schema (SQLite or PostgreSQL) to this version's",
}
_OPTIONS_OF: dict[str, tuple[str, ...]] = {
    "check": ("config", "mcp-config", "log-level", "json"),
    "tools": ("config", "mcp-config", "log-level", "json"),
    "agents": ("config", "log-level", "json"),
    "backends": ("config", "log-level", "json"),
    "demo": ("log-level",),
    "init": ("config", "force"),
    "login": (
        *("config", "mcp-config", "log-level", "server", "as", "no-browser", "timeout"),
        *("confirm", "connect", "token"),
    ),
    "logout": ("config", "mcp-config", "log-level", "server", "as"),
    "migrate": ("config", "log-level"),
    "stdio": ("config", "mcp-config", "log-level"),
    "mcp": ("config", "mcp-config", "log-level"),
    "serve": ("config", "mcp-config", "log-level", "host", "port", "uds"),
    "bridge": ("config", "log-level", "connect", "token"),
}


def _add_options(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    if "config" in names:
        parser.add_argument(
            "--config",
            metavar="FILE",
            help="YAML config (else $JUNCTION_CONFIG, else ./junction.yaml)",
        )
    if "mcp-config" in names:
        parser.add_argument(
            "--mcp-config",
            metavar="FILE",
            help='MCP servers in the common "mcpServers" JSON format',
        )
    if "log-level" in names:
        parser.add_argument("--log-level", default=None, help="debug, info, warning or error")
    if "host" in names:
        parser.add_argument("--host", help="listen address for --mode serve")
    if "port" in names:
        parser.add_argument("--port", type=int, help="listen port for --mode serve")
    if "uds" in names:
        parser.add_argument(
            "--uds", metavar="PATH", help="listen on a Unix socket (removed on exit)"
        )
    if "connect" in names:
        parser.add_argument(
            "--connect",
            metavar="URL",
            help="remote Junction for --mode bridge (and login --confirm: http(s)://HOST)",
        )
    if "token" in names:
        parser.add_argument(
            "--token",
            help="bearer token for --mode bridge and login --confirm "
            "(or $JUNCTION_TOKEN, which ps cannot show)",
        )
    if "json" in names:
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    if "force" in names:
        parser.add_argument("--force", action="store_true", help="replace an existing file")
    if "server" in names:
        parser.add_argument("server", nargs="?", help="the MCP server (login, logout)")
    if "as" in names:
        parser.add_argument(
            "--as",
            dest="principal",
            metavar="CALLER",
            help="the caller (key name or token subject) whose login this is (per_user servers)",
        )
    if "no-browser" in names:
        parser.add_argument(
            "--no-browser", action="store_true", help="print the sign-in URL, open no browser"
        )
    if "confirm" in names:
        parser.add_argument(
            "--confirm",
            metavar="CODE",
            help="finish your own sign-in started over HTTP with the code its page showed",
        )
    if "timeout" in names:
        parser.add_argument(
            "--timeout", type=float, default=300, help="seconds to wait for the sign-in"
        )


def _config_in_effect() -> str:
    path = find_config_path(None, os.environ)
    return str(path) if path is not None else "none found: embedded defaults"


def build_parser() -> argparse.ArgumentParser:
    from junction.version import __version__

    modes = "\n".join(f"  --mode {name:<7} {text}" for name, text in MODES.items())
    commands = "\n".join(f"  {name:<9} {text}" for name, text in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="junction",
        description="ACP agent, MCP aggregator and A2A hub over one backend-selection core.",
        epilog=f"modes:\n{modes}\n\ncommands:\n{commands}\n\n"
        f"`junction COMMAND --help` or `junction --mode MODE --help` for one of them.\n"
        f"config in effect without --config: {_config_in_effect()}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"junction {__version__}")
    parser.add_argument(
        "command", nargs="?", choices=tuple(COMMANDS), help="inspect instead of serving"
    )
    parser.add_argument("--mode", choices=tuple(MODES), help="what to serve")
    _add_options(parser, sorted({name for names in _OPTIONS_OF.values() for name in names}))
    return parser


def _help_for(argv: Sequence[str]) -> str | None:
    """The help of one command or mode when `argv` asks for it (`check --help`, `--mode serve
    -h`), else None."""
    if not any(arg in ("-h", "--help") for arg in argv):
        return None
    chosen = next((arg for arg in argv if arg in COMMANDS), None)
    if chosen is None and "--mode" in argv:
        at = list(argv).index("--mode") + 1
        chosen = argv[at] if at < len(argv) and argv[at] in MODES else None
    elif chosen is None:
        chosen = next((a.split("=", 1)[1] for a in argv if a.startswith("--mode=")), None)
    if chosen is None:
        return None
    is_mode = chosen in MODES and chosen not in COMMANDS
    parser = argparse.ArgumentParser(
        prog=f"junction --mode {chosen}" if is_mode else f"junction {chosen}",
        description=(MODES if is_mode else COMMANDS)[chosen],
        epilog=f"config in effect without --config: {_config_in_effect()}",
    )
    _add_options(parser, _OPTIONS_OF[chosen])
    return parser.format_help()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    focused = _help_for(arguments)
    if focused is not None:
        print(focused, end="")
        return 0
    parser = build_parser()
    args = parser.parse_args(arguments)
    if (args.mode is None) == (args.command is None):
        parser.print_usage(sys.stderr)
        print("junction: give exactly one of --mode or a command", file=sys.stderr)
        return 2
    if args.command == "demo":  # self-contained: it writes its own config, so none is read
        from junction.cli.demo import run_demo

        configure_logging(args.log_level or "warning")
        return run_demo(JunctionConfig())
    if args.command == "init":  # writes a config, so none is read
        from junction.cli.init import init_command

        return init_command(Path(args.config or "junction.yaml"), force=args.force)
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
    if args.command == "migrate":
        from junction.cli.migrate import migrate_command

        return migrate_command(config)

    what = args.mode or args.command
    if args.server is not None and what not in ("login", "logout"):
        parser.print_usage(sys.stderr)
        print(f"junction: unexpected argument {args.server!r}", file=sys.stderr)
        return 2
    if what in ("login", "logout"):
        from junction.cli.login import login_command, logout_command

        if what == "logout":
            return logout_command(config, args.server, args.principal)
        if args.confirm is not None:
            from junction.cli.login import confirm_command

            token = args.token or os.environ.get("JUNCTION_TOKEN")
            return confirm_command(
                config, args.server, args.confirm, args.connect, token, as_=args.principal
            )
        return login_command(
            config,
            args.server,
            open_browser=not args.no_browser,
            timeout=args.timeout,
            principal=args.principal,
        )
    telemetry = None
    if args.mode is not None:  # the modes are traced; the inspecting commands are not
        from junction.telemetry import start_telemetry

        telemetry = start_telemetry(config)
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
    finally:
        if telemetry is not None:
            telemetry.shutdown()
