"""`junction --mode mcp` and `junction tools`: configuration mapped onto the MCP gateway.

The gateway knows nothing of Junction's configuration; this module is the only place that
translates one into the other. `mcp_gateway` (and the `mcp` SDK behind it) is imported inside
the functions, so other modes never pay for it.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import TYPE_CHECKING, Any

from junction.config import JunctionConfig, StdioMcpServerConfig

if TYPE_CHECKING:
    from mcp_gateway import Catalog, GatewayOptions, UpstreamSpec

log = logging.getLogger("junction.mcp")

__all__ = ["gateway_inputs", "run_mcp_stdio", "tools_command"]


def gateway_inputs(config: JunctionConfig) -> tuple[list[UpstreamSpec], GatewayOptions]:
    """The gateway's upstream specs and options for this configuration."""
    from mcp_gateway import GatewayOptions, HttpUpstream, StdioUpstream, ToolFilter

    specs: list[UpstreamSpec] = []
    for name, server in config.mcp_servers.items():
        tools = ToolFilter(allow=tuple(server.tools.allow), deny=tuple(server.tools.deny))
        common: dict[str, Any] = {
            "name": name,
            "tools": tools,
            "call_timeout": server.timeout,
            "connect_timeout": server.connect_timeout,
        }
        if isinstance(server, StdioMcpServerConfig):
            specs.append(
                StdioUpstream(
                    command=server.command,
                    args=tuple(server.args),
                    env=dict(server.env),
                    cwd=server.cwd,
                    **common,
                )
            )
        else:
            specs.append(
                HttpUpstream(
                    url=server.url,
                    headers=dict(server.headers),
                    transport=server.transport,
                    **common,
                )
            )
    gateway = config.mcp
    options = GatewayOptions(
        prefix=gateway.prefix,
        separator=gateway.separator,
        deny=tuple(gateway.deny),
        call_timeout=gateway.call_timeout,
        connect_timeout=gateway.connect_timeout,
    )
    return specs, options


def run_mcp_stdio(config: JunctionConfig) -> int:
    """Serve the aggregate on stdin/stdout until stdin closes or SIGTERM/SIGINT; returns 0.

    Stdout carries only protocol: the SDK's stdio server points fd 1 at stderr while it
    serves, so even a stray print cannot corrupt the stream.
    """
    import anyio

    from mcp_gateway import Gateway, serve_stdio

    specs, options = gateway_inputs(config)

    async def main() -> None:
        async with Gateway(specs, options) as gateway, anyio.create_task_group() as tg:

            async def stop_on_signal() -> None:
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for signum in signals:
                        log.info("signal %s received, exiting", signal.Signals(signum).name)
                        # The SDK's stdio server reads stdin in a worker thread that no
                        # cancellation can interrupt; stop the children, then leave at once.
                        await gateway.stop_upstreams()
                        logging.shutdown()
                        os._exit(0)

            tg.start_soon(stop_on_signal)
            log.info("serving MCP on stdio for %d upstream server(s)", len(specs))
            await serve_stdio(gateway)
            log.info("stdin closed, exiting")
            tg.cancel_scope.cancel()

    anyio.run(main)
    return 0


async def inspect_upstreams(
    config: JunctionConfig,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Connect to every upstream once (within its connect timeout): their states and the tools."""
    from mcp_gateway import Gateway

    specs, options = gateway_inputs(config)
    wait = max([s.connect_timeout or options.connect_timeout for s in specs] or [0.0])
    async with Gateway(specs, options) as gateway:
        await gateway.wait_settled(wait)
        return [s.as_dict() for s in gateway.statuses()], _tool_rows(gateway)


def tools_command(config: JunctionConfig, *, as_json: bool) -> int:
    """Connect to every upstream, show its state and the exposed tools; 1 if any is down."""
    import anyio

    statuses, tools = anyio.run(inspect_upstreams, config)
    ok = all(s["state"] == "ready" for s in statuses)
    if as_json:
        import json

        print(json.dumps({"healthy": ok, "servers": statuses, "tools": tools}))
        return 0 if ok else 1
    from rich.console import Console
    from rich.table import Table

    console = Console()
    servers = Table(title="MCP servers")
    for column in ("server", "transport", "state", "protocol", "tools", "detail"):
        servers.add_column(column)
    for s in statuses:
        detail = "; ".join([s["reason"] or "", *s["warnings"]]).strip("; ")
        style = "green" if s["state"] == "ready" else "red"
        servers.add_row(
            s["name"],
            s["kind"],
            f"[{style}]{s['state']}[/{style}]",
            s["protocol_version"] or "-",
            str(s["tools"]),
            detail or "-",
        )
    console.print(servers)
    table = Table(title=f"tools ({len(tools)})")
    for column in ("tool", "server", "upstream name", "description"):
        table.add_column(column)
    for t in tools:
        table.add_row(t["name"], t["server"], t["upstream_name"], t["description"][:80])
    console.print(table)
    return 0 if ok else 1


def _tool_rows(catalog: Catalog) -> list[dict[str, Any]]:
    return [
        {
            "name": tool.name,
            "server": tool.server,
            "upstream_name": tool.upstream_name,
            "description": next(iter(tool.description.strip().splitlines()), ""),
        }
        for tool in catalog.exposed_tools()
    ]
