"""`junction --mode serve`: the composition root's app under uvicorn, owning the process (signals,
SIGHUP reload, a Unix socket to clean up)."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import sys

from junction.config import JunctionConfig
from junction.http.serve import uvicorn_server
from junction.reload import ConfigSource
from junction.root import Junction

LISTEN_FAILED = 3
"""Exit code when the address cannot be listened on (taken, or not this machine's)."""


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
    listener: socket.socket | None = None
    if uds is None:
        host, port = config.server.host, config.server.port
        try:
            # Bound here, before anything starts, so a taken port is one clear line.
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            listener = socket.create_server((host, port), family=family)
        except OSError as exc:
            what = (
                "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc}"
            )
            print(f"junction: {host}:{port} {what} (server.port, --port)", file=sys.stderr)
            return LISTEN_FAILED
    junction = Junction(config, source=source)
    junction._own_logging(log_level)
    server = uvicorn_server(junction, config, uds=uds, sighup=True)
    # uvicorn drains on SIGTERM, then re-raises it under the handler that was in place before:
    # make that one a no-op so a graceful stop exits 0 instead of dying by the signal.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        # on uvloop when it is installed (uvicorn picks the loop)
        server.run(sockets=[listener] if listener is not None else None)
    finally:
        if uds:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(uds)
    return 0


__all__ = ["LISTEN_FAILED", "run_serve"]
