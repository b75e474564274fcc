"""`junction --mode serve` as the benchmarks start it: what users run (the real CLI, its
middleware, metrics and access log), from a config written to a temporary directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_serve(
    tmp: str, name: str, config: str, *, port: int | None = None, profile: str | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Serve mode on `config` (YAML text, written to `tmp/name.yaml`; stderr to
    `tmp/name.log`), up once `/health/live` answers; `profile`: a directory for py-spy's
    collapsed stacks (`serve.folded`, written when the process ends on SIGINT)."""
    port = port or free_port()
    path = os.path.join(tmp, f"{name}.yaml")
    with open(path, "w") as file:
        file.write(config)
    junction = shutil.which("junction") or os.path.join(os.path.dirname(sys.executable), "junction")
    command = [junction, "--mode", "serve", "--config", path, "--port", str(port)]
    if profile:
        os.makedirs(profile, exist_ok=True)
        command = ["py-spy", "record", "--rate", "1000", "--format", "raw", "-o", f"{profile}/serve.folded", "--", *command]  # fmt: skip
    log_path = os.path.join(tmp, f"{name}.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    with open(log_path, errors="replace") as file:
        tail = file.read()[-2000:]
    raise RuntimeError(f"junction --mode serve ({name}) did not answer within 60 s:\n{tail}")


__all__ = ["free_port", "start_serve"]
