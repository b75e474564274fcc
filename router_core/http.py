"""The process-wide pooled aiohttp client session for Junction's own outbound HTTP.

One `ClientSession` per process (per event loop), never one per request: connection reuse is
most of what makes a Python proxy fast (see the design brief's measurements). Created lazily in
the running loop, because an aiohttp session is bound to the loop it was made in.
"""

from __future__ import annotations

import asyncio

import aiohttp

from router_core.proxies import proxy_configured

CONNECTION_LIMIT = 1024
"""Open sockets across all upstreams; beyond it requests wait for a free connection."""

CONNECTION_LIMIT_PER_HOST = 0
"""No per-host cap: an LLM server queues requests itself, and a silent client-side queue would
hide load from the selection strategies (least outstanding, least latency)."""

KEEPALIVE_SECONDS = 15.0
DNS_CACHE_SECONDS = 300
USER_AGENT = "junction"


class _Shared:
    session: aiohttp.ClientSession | None = None
    loop: asyncio.AbstractEventLoop | None = None


def get_session() -> aiohttp.ClientSession:
    """The shared session, created on first use in the running loop.

    A session made in a loop that is no longer running (tests run each in a fresh loop) is
    replaced; call `close_session()` at shutdown to release its connections cleanly."""
    loop = asyncio.get_running_loop()
    session = _Shared.session
    if session is not None and not session.closed and _Shared.loop is loop:
        return session
    connector = aiohttp.TCPConnector(
        limit=CONNECTION_LIMIT,
        limit_per_host=CONNECTION_LIMIT_PER_HOST,
        keepalive_timeout=KEEPALIVE_SECONDS,
        ttl_dns_cache=DNS_CACHE_SECONDS,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        # Each request passes its own timeout; this is only the fallback.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
        headers={"User-Agent": USER_AGENT},
        raise_for_status=False,
        # Streams are read incrementally; the session must not buffer or interpret them.
        auto_decompress=True,
        trust_env=proxy_configured(),
    )
    _Shared.session, _Shared.loop = session, loop
    return session


async def close_session() -> None:
    """Close the shared session (if any) and its pooled connections, and the shared
    `router_core.exchange.Exchanges` (the A2A hub's lean client) with them."""
    from router_core.exchange import close_exchanges

    await close_exchanges()
    session, _Shared.session, _Shared.loop = _Shared.session, None, None
    if session is not None and not session.closed:
        await session.close()


__all__ = ["close_session", "get_session"]
