"""Webhooks through the proxy the environment names (HTTP_PROXY, NO_PROXY), with a real proxy
(proxy.py from PyPI) in a process of its own; the SSRF guard still judges the webhook itself."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from a2a.push import PushDispatcher
from a2a.settings import PushSettings
from tests.test_push_durable import Receiver
from tests.transports.servers import serve_app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    log = tmp_path / "proxy.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy",
                "--hostname",
                "127.0.0.1",
                "--port",
                str(port),
                "--num-workers",
                "1",
                "--num-acceptors",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(10)


async def _send(url: str, **settings: object) -> PushDispatcher:
    push = PushDispatcher(PushSettings(allow_insecure_loopback=True, max_attempts=1, **settings))  # type: ignore[arg-type]
    push.notify("task-1", [{"id": "c1", "url": url}], {"n": 1}, {})
    for _ in range(100):
        if push.delivered or push.failed:
            break
        await asyncio.sleep(0.05)
    await push.close()
    return push


async def test_a_webhook_goes_through_the_proxy_unless_no_proxy_names_it(
    proxy: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_url, log = proxy
    hooks = Receiver()
    app = Starlette(routes=[Route("/hook", hooks.endpoint, methods=["POST"])])
    async with serve_app(app) as base:
        port = base.rsplit(":", 1)[1]
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        proxied = await _send(f"{base}/hook")
        async with asyncio.timeout(20):  # the proxy logs a request as its connection closes
            while f"127.0.0.1:{port}/hook" not in (through := log.read_text()):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = await _send(f"{base}/hook")
        await asyncio.sleep(0.5)  # time for a line the proxy would log (none is expected)
        after = log.read_text()
    assert proxied.delivered == 1 and direct.delivered == 1
    assert len(hooks.seen) == 2
    assert after.count(f"127.0.0.1:{port}/hook") == through.count(f"127.0.0.1:{port}/hook")


async def test_the_guard_judges_the_webhook_not_the_proxy(
    proxy: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy_url, log = proxy
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    # The proxy is on loopback and allowed as the operator's; a webhook at a private address
    # is refused before anything is sent, proxy or not.
    refused = await _send("http://10.1.2.3/hook")
    await asyncio.sleep(0.3)
    assert refused.failed == 1 and refused.delivered == 0
    assert "10.1.2.3" not in log.read_text()
