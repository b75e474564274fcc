"""`junction --mode serve`: the composition root's app under uvicorn, owning the process (signals,
SIGHUP reload, a Unix socket to clean up)."""

from __future__ import annotations

import contextlib
import os
import signal

from junction.config import JunctionConfig
from junction.http.serve import uvicorn_server
from junction.reload import ConfigSource
from junction.root import Junction


def run_serve(
    config: JunctionConfig,
    *,
    uds: str | None = None,
    source: ConfigSource | None = None,
    log_level: str | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (uvicorn drains connections before returning); reload the
    configuration from `source` on SIGHUP and, while `server.watch_config`, when it changes.

    The CLI set up logging, so `logging:` changes apply (`log_level`, from `--log-level`,
    wins over the file's level)."""
    junction = Junction(config, source=source)
    junction._own_logging(log_level)
    server = uvicorn_server(junction, config, uds=uds, sighup=True)
    # uvicorn drains on SIGTERM, then re-raises it under the handler that was in place before:
    # make that one a no-op so a graceful stop exits 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        server.run()  # on uvloop when it is installed (uvicorn picks the loop)
    finally:
        if uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(uds)
    return 0


__all__ = ["run_serve"]
