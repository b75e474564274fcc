"""Calls to a Streamable HTTP upstream reuse their TCP connection (`_http_keepalive.py`).

The SDK's client closes a POST's event stream as soon as the response event is in, which
left every connection unfinished and so unusable again: one new connection per request.
Counted here from the kernel's socket table (Linux), against server-everything.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mcp_gateway import Gateway
from tests.mcp_gateway.conftest import NodeHttpServer

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="counts sockets in /proc/net/tcp"
)


def client_sockets(port: int) -> set[tuple[str, str]]:
    """The (local, remote) addresses of IPv4 TCP sockets connected to `port`, TIME_WAIT
    included: each connection a client opened shows for a while after it closed."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote = line.split()[1:3]
        if int(remote.rsplit(":", 1)[1], 16) == port:
            found.add((local, remote))
    return found


def text(result: dict[str, object]) -> str:
    content = result["content"]
    assert isinstance(content, list)
    return str(content[0]["text"])


async def test_calls_to_a_streamable_http_upstream_reuse_their_connection(
    http_everything: NodeHttpServer,
) -> None:
    async with Gateway([http_everything.spec("web")]) as gateway:
        await gateway.wait_settled(20)
        assert "warm" in text(await gateway.call_tool("web__echo", {"message": "warm"}))
        before = client_sockets(http_everything.port)
        for i in range(20):
            assert f"m{i}" in text(await gateway.call_tool("web__echo", {"message": f"m{i}"}))
        opened = client_sockets(http_everything.port) - before
    assert len(opened) <= 2, opened  # was one per call


async def test_a_streamable_http_upstream_is_reached_through_the_configured_proxy(
    http_everything: NodeHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The keep-alive client still honours HTTP_PROXY as the SDK's own client does (httpx
    mounts the environment's proxies only when it is given no transport of its own)."""
    from tests.router_core.test_proxy import forward_proxy

    async with forward_proxy() as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        async with Gateway([http_everything.spec("web")]) as gateway:
            await gateway.wait_settled(20)
            assert "via" in text(await gateway.call_tool("web__echo", {"message": "via"}))
    target = f"http://127.0.0.1:{http_everything.port}/".encode()
    assert any(line.startswith(b"POST " + target) for line in seen), seen
