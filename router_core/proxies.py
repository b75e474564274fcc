"""Whether the environment names an outbound HTTP proxy: read by every client Junction makes
(the aiohttp session, `router_core.exchange`, the A2A push sessions) when it is made."""

from __future__ import annotations

import os

PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
"""With one of these set when a client is made, requests go through the proxy they name
(`NO_PROXY` excepted), as the MCP upstreams' httpx client does; without, aiohttp is not asked to
look (its per-request environment lookup costs on the hot path)."""


def proxy_configured() -> bool:
    """Whether one of `PROXY_VARIABLES` is set (to anything but the empty string)."""
    return any(os.environ.get(name) for name in PROXY_VARIABLES)


__all__ = ["PROXY_VARIABLES", "proxy_configured"]
