"""Shared helpers for the gateway tests: upstream specs for real peers and fault servers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TypeVar

import pytest

from mcp_gateway import HttpUpstream, StdioUpstream, ToolFilter
from tests.peers import npm_bin, python_peer

SERVERS = str(Path(__file__).with_name("servers.py"))
T = TypeVar("T")


@contextlib.asynccontextmanager
async def hosted(manager: AbstractAsyncContextManager[T]) -> AsyncIterator[T]:
    """Enter and exit `manager` in one task of its own.

    pytest-asyncio sets a fixture up and tears it down in different tasks, while anyio task
    groups (the gateway's) must be exited by the task that entered them.
    """
    entered: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def host() -> None:
        try:
            async with manager as value:
                entered.set_result(value)
                await stop.wait()
        except BaseException as exc:
            if not entered.done():
                entered.set_exception(exc)
            raise

    task = asyncio.create_task(host())
    try:
        yield await entered
    finally:
        stop.set()
        await task


def fault(name: str, mode: str, **kwargs: object) -> StdioUpstream:
    """An upstream running `servers.py MODE` (written with the mcp SDK)."""
    return StdioUpstream(name=name, command=sys.executable, args=(SERVERS, mode), **kwargs)  # type: ignore[arg-type]


def everything(name: str = "everything") -> StdioUpstream:
    return StdioUpstream(name=name, command=str(npm_bin("mcp-server-everything")))


def time_server(name: str = "time") -> StdioUpstream:
    return StdioUpstream(
        name=name, command=str(python_peer("mcp-server-time")), args=("-m", "mcp_server_time")
    )


def filesystem(root: Path, name: str = "fs") -> StdioUpstream:
    return StdioUpstream(
        name=name, command=str(npm_bin("mcp-server-filesystem")), args=(str(root),)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, process: subprocess.Popen[bytes], deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class NodeHttpServer:
    """server-everything in its Streamable HTTP or SSE mode, on a port of its own."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{'mcp' if self.mode == 'streamableHttp' else 'sse'}"

    def start(self) -> None:
        env = {**os.environ, "PORT": str(self.port)}
        self.process = subprocess.Popen(
            [str(npm_bin("mcp-server-everything")), self.mode],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def spec(self, name: str) -> HttpUpstream:
        transport = "sse" if self.mode == "sse" else "streamable_http"
        return HttpUpstream(name=name, url=self.url, transport=transport)


@pytest.fixture(scope="module")
def http_everything() -> Iterator[NodeHttpServer]:
    server = NodeHttpServer("streamableHttp")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sse_everything() -> Iterator[NodeHttpServer]:
    server = NodeHttpServer("sse")
    server.start()
    yield server
    server.stop()


__all__ = ["SERVERS", "ToolFilter", "everything", "fault", "filesystem", "time_server"]
