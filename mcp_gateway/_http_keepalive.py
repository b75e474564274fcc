"""Keep-alive for a Streamable HTTP upstream's POSTs, whose SSE responses the SDK cuts short.

The SDK's client reads a POST's SSE response until the JSON-RPC response event and then closes
the response at once, before the server's end of stream has been read: httpcore cannot reuse
a connection whose response is unfinished, so it closes it, and every request to the upstream
opened a new TCP connection (a connect here, an accept there: ~15% of Junction's CPU per
relayed `tools/call` over HTTP, and a round trip of latency). The server ends the stream right
after the response, so the end is usually already in the socket: closing such a response here
first reads what is left of it, briefly and boundedly, and the connection goes back to the
pool. Anything that does not end in time is closed as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx2
from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

_DRAIN_SECONDS = 0.05
"""How long closing a POST's event stream waits for the rest of it (not the caller: the
response it waited for is already delivered)."""
_DRAIN_BYTES = 64 * 1024


def keepalive_http_client(
    headers: dict[str, str] | None = None, auth: httpx2.Auth | None = None
) -> httpx2.AsyncClient:
    """`create_mcp_http_client` (same timeouts, headers, auth) whose POST event streams end
    cleanly on close, so their connections are reused."""
    kwargs: dict[str, object] = {}
    if headers is not None:
        kwargs["headers"] = headers
    if auth is not None:
        kwargs["auth"] = auth
    # A response hook, not a transport of our own: given a transport, httpx no longer mounts
    # the proxies HTTP_PROXY/HTTPS_PROXY/ALL_PROXY name (NO_PROXY aside).
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
        event_hooks={"response": [_drain_on_close]},
        **kwargs,  # type: ignore[arg-type]
    )


async def _drain_on_close(response: httpx2.Response) -> None:
    kind = response.headers.get("content-type", "")
    if response.request.method == "POST" and kind.startswith("text/event-stream"):
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _DrainedOnClose(response.stream)


class _DrainedOnClose(httpx2.AsyncByteStream):
    """A response stream whose close first reads the rest of it (within bounds)."""

    def __init__(self, stream: httpx2.AsyncByteStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        try:
            read = 0
            with anyio.move_on_after(_DRAIN_SECONDS):
                # A new pass over the connection's body: it goes on where the reader stopped.
                async for part in self._stream:
                    read += len(part)
                    if read > _DRAIN_BYTES:
                        break
        except Exception:
            pass
        finally:
            await self._stream.aclose()
