"""`junction --mode stdio`: the ACP agent an editor launches, on stdin/stdout."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from junction.bridges.acp_services import build_runtime, serve_acp
from junction.config import JunctionConfig
from junction.modes.acp_early import Replayed, take

if TYPE_CHECKING:
    from acp.runtime import AgentRuntime

log = logging.getLogger("junction.acp")


def run_acp_stdio(config: JunctionConfig, overrides: Mapping[str, Any] | None = None) -> int:
    """Serve ACP on stdin/stdout until stdin closes or SIGTERM/SIGINT; returns the exit code."""

    early = take()

    async def main() -> None:
        from transports import MessageStream, open_stdio

        stream: MessageStream = await open_stdio(max_message_bytes=config.server.max_message_bytes)
        if early is not None:  # the console script read (and maybe answered) the first line
            stream = Replayed(stream, early, config.server.max_message_bytes)
        runtime = stdio_runtime(config, overrides)
        runner = asyncio.create_task(serve_acp(stream, runtime))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runner.cancel)
        log.info("ACP agent serving on stdio")
        try:
            await runner
        except asyncio.CancelledError:
            log.info("signal received, exiting")
        finally:
            await runtime.aclose()
            await stream.aclose()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        return 130
    finally:
        # The editor has gone: what is left is the interpreter's teardown, whose garbage
        # collection over everything loaded (the `mcp` SDK, the wire models) took 1-2 s on a
        # busy machine; editors and the ACP kit expect a prompt exit once stdin closes.
        gc.freeze()
    return 0


def stdio_runtime(
    config: JunctionConfig, overrides: Mapping[str, Any] | None = None
) -> AgentRuntime:
    """The runtime of the stdio agent, whose first session is offered the configuration's own
    model list while the router still starts (`AgentRuntime.models_hint`)."""
    runtime = build_runtime(config, overrides)
    runtime.models_hint = static_models(config)
    return runtime


def static_models(config: JunctionConfig) -> tuple[str, ...] | None:
    """The models the router will list at start (`Router.available_models`: every backend's
    models and the aliases of those), when every backend names its models in the config;
    None when one must be asked (discovery), so only the router can tell."""
    backends = config.backends.values()
    if not backends or not all(backend.models for backend in backends):
        return None
    names = {model for backend in backends for model in backend.models or ()}
    aliases = config.routing.aliases
    names.update(alias for alias, target in aliases.items() if target in names)
    return tuple(sorted(names))


__all__ = ["run_acp_stdio", "static_models", "stdio_runtime"]
