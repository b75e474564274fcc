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
