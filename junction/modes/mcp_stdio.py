"""`junction --mode mcp`: the aggregated MCP server on stdin/stdout, with the A2A agents as tools."""

from __future__ import annotations

import logging
import os
import signal
import sys

from junction.bridges.a2a_tools import a2a_agent_tools
from junction.build import gateway_inputs
from junction.config import JunctionConfig

log = logging.getLogger("junction.mcp")


def run_mcp_stdio(config: JunctionConfig) -> int:
    """Serve the aggregate on stdin/stdout until stdin closes or SIGTERM/SIGINT; returns 0.

    Stdout carries only protocol: the SDK's stdio server points fd 1 at stderr while it
    serves, so even a stray print cannot corrupt the stream.
    """
    import anyio

    from mcp_gateway import Gateway, serve_stdio

    specs, options = gateway_inputs(config)

    async def main() -> None:
        async with (
            Gateway(specs, options) as gateway,
            a2a_agent_tools(gateway, config),
            anyio.create_task_group() as tg,
        ):

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
            await serve_stdio(gateway, max_message_bytes=config.server.max_message_bytes)
            log.info("stdin closed, exiting")
            tg.cancel_scope.cancel()

    # uvloop's loop and pipes cost less CPU per relayed message than asyncio's (~7% of a
    # tools/call, benchmarks/mcp_bench.py's cpu step), as in serve mode.
    anyio.run(main, backend_options={"use_uvloop": sys.platform != "win32"})
    return 0


__all__ = ["run_mcp_stdio"]
