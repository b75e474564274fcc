"""Junction's own outbound HTTP honours `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`, as the MCP
upstreams' client does: a model call goes through a real forward proxy when one is set, and
straight to the backend when the proxy is not set or the host is excluded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from router_core import Router
from router_core.http import close_session
from tests.router_core.llm_servers import openai_server
from tests.router_core.test_router import chat, settings, spec


@asynccontextmanager
async def forward_proxy() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A plain HTTP forward proxy: it records each connection's first request line, then relays
    bytes both ways to the origin the absolute-form target names (servers must accept it)."""
    seen: list[bytes] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readline()
        seen.append(first.strip())
        target = first.split()[1].decode()  # http://host:port/path
        host, _, port = target.split("/")[2].partition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(port or 80))
        up_writer.write(first)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


@pytest.fixture(autouse=True)
async def fresh_session() -> AsyncIterator[None]:
    await close_session()  # the shared session reads the environment when it is made
    yield
    await close_session()


async def test_model_calls_go_through_the_configured_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with forward_proxy() as (proxy, seen), openai_server(models=["m1"]) as backend:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        router = Router([spec("b", backend)], settings())
        result = await router.complete(chat())
    assert result.backend == "b"
    assert seen and seen[0].startswith(b"POST " + backend.url.encode() + b"/v1/chat/completions")


async def test_no_proxy_and_no_variable_mean_direct(monkeypatch: pytest.MonkeyPatch) -> None:
    async with forward_proxy() as (proxy, seen), openai_server(models=["m1"]) as backend:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        await Router([spec("b", backend)], settings()).complete(chat())
        await close_session()
        for name in ("HTTP_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name)
        await Router([spec("b", backend)], settings()).complete(chat())
    assert seen == []
