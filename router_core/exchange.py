"""Whole HTTP/1.1 request -> whole response over pooled keep-alive connections, without aiohttp.

Why: for a small JSON call (the A2A hub's SendMessage, GetTask, CancelTask to an agent) aiohttp's
per-request machinery costs Junction ~130-200 us of CPU more than a bare keep-alive exchange
(docs/performance.md, "## A2A hub"), and no aiohttp setting removes it. This is that bare exchange
done properly: asyncio protocols (so uvloop's transports work too), responses parsed by httptools
(llhttp, the C parser uvicorn uses), Content-Length, chunked and close-delimited bodies, TLS,
bounded heads and bodies, idle connections dropped before servers drop them. Streams and proxied
requests stay on aiohttp (`router_core.http`): `usable()` says when this applies.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

from router_core.proxies import proxy_configured

IDLE_SECONDS = 4.0
"""An idle connection older than this is closed, not reused: below common server keep-alive
timeouts (uvicorn 5 s, nginx 75 s, Node 5 s), so a reused connection is rarely one the server is
closing at that very moment (that race is what the one retry covers)."""

MAX_IDLE_PER_ORIGIN = 16
"""Idle connections kept per (scheme, host, port); more are closed when released."""

MAX_HEAD_BYTES = 64 * 1024
"""An answer's status line and headers; beyond it the answer is refused."""

_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})
"""Request headers this module writes itself; a caller's are dropped."""

Origin = tuple[str, str, int]


class ExchangeError(ConnectionError):
    """Every failure of an exchange: connect, TLS, write, malformed or oversized answer, loss."""


class ExchangeTimeout(ExchangeError):
    """No whole answer within the timeout (connect, send and answer together)."""


class ExchangeConnectError(ExchangeError):
    """No connection (refused, unresolvable, TLS, or `connect_timeout`): nothing was sent."""


class ExchangeConnectTimeout(ExchangeConnectError):
    """No connection within `connect_timeout`."""


class ExchangeMalformed(ExchangeError):
    """An answer that is not HTTP, or whose head or body is over its bound."""


@dataclass(slots=True, frozen=True)
class Answer:
    """A whole response. `headers` has lowercase names, repeats joined with ", " (RFC 9110)."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one exchange at a time; its parser spans messages."""

    def __init__(self, idle: list[_Connection]) -> None:
        self.idle = idle  # the pool it returns to; it leaves that list when the server closes it
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiter: asyncio.Future[Answer] | None = None
        self.idle_since = 0.0
        self.reusable = False
        self._reset(0, False)

    def _reset(self, max_body: int, head_only: bool) -> None:
        self.max_body, self.head_only = max_body, head_only
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = self.head_size = 0
        self.head_done = self.received = self.keep = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are no subclass of it

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        if self in self.idle:
            self.idle.remove(self)
        if not self.closed.done():
            self.closed.set_result(None)
        if self.waiter is None or self.waiter.done():
            return
        framed = "content-length" in self.headers or "transfer-encoding" in self.headers
        if self.head_done and not framed:  # a close-delimited body ends here
            self._finish()
        else:
            reason = f": {exc}" if exc else ""
            self._fail(f"connection closed before the whole answer{reason}")

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():  # bytes nobody asked for: not reusable
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:  # `on_body`: over `max_body`
            self._fail(str(exc.__context__ or exc), ExchangeMalformed)
        except httptools.HttpParserError as exc:
            self._fail(f"malformed answer ({exc})", ExchangeMalformed)
        if not self.head_done:
            self.head_size += len(data)
            if self.head_size > MAX_HEAD_BYTES:
                self._fail(f"answer head over {MAX_HEAD_BYTES} bytes", ExchangeMalformed)

    # httptools' callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        known = self.headers.get(key)
        self.headers[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # 1xx: informational, the answer follows
            self.headers = {}
            return
        self.head_done = True
        self.keep = self.parser.should_keep_alive()
        if self.head_only:  # a HEAD answer has no body whatever its Content-Length says
            self._finish(keep=False)

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.max_body:
            raise ValueError(f"answer body over {self.max_body} bytes")
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.head_done and not self.head_only:
            self._finish(keep=self.keep)

    def _finish(self, *, keep: bool = False) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.reusable = keep
            body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
            self.waiter.set_result(Answer(self.parser.get_status_code(), self.headers, body))

    def _fail(self, message: str, kind: type[ExchangeError] = ExchangeError) -> None:
        self.close()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(kind(message))

    async def exchange(self, request: bytes, max_body: int, head_only: bool) -> Answer:
        """Write one request and wait for its whole answer."""
        assert self.transport is not None
        if self.closed.done():  # lost between connecting (or pooling) and now
            raise ExchangeError("connection closed before the request was sent")
        self._reset(max_body, head_only)
        self.reusable = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


class Exchanges:
    """Pools of keep-alive connections keyed by (scheme, host, port); one per event loop."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        """`ssl_context`: what https servers are verified against (default: the system's CAs,
        as aiohttp's session does)."""
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._urls: dict[str, tuple[Origin, str, str]] = {}
        self._usable: dict[str, bool] = {}
        self._proxied = proxy_configured()
        """Read once, as `router_core.http` decides whether aiohttp looks for proxies."""

    def usable(self, url: str) -> bool:
        """False when aiohttp must carry this URL: not http(s), credentials in the URL, or a
        proxy variable (as set when this was made) applies to its host: aiohttp honours them,
        this module does not. Cached per URL: it is asked on every call."""
        known = self._usable.get(url)
        if known is None:
            if len(self._usable) >= 256:
                self._usable.clear()
            known = self._usable[url] = self._judge(url)
        return known

    def _judge(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
            return False
        if not self._proxied:
            return True
        import urllib.request  # only with a proxy set: it is a costly import

        proxies = urllib.request.getproxies_environment()
        if not (proxies.get(parts.scheme) or proxies.get("all")):
            return True
        return bool(urllib.request.proxy_bypass_environment(parts.hostname, proxies))  # type: ignore[attr-defined]

    async def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None = None,
        *,
        timeout: float | None,
        max_body: int,
        connect_timeout: float | None = None,
    ) -> Answer:
        """One request, its whole answer; redirects are returned, not followed. Raises
        `ExchangeError` (`ExchangeTimeout` past `timeout`, which covers connect+send+answer,
        None for none; `ExchangeConnectError` when a new connection cannot be made, within
        `connect_timeout` when given)."""
        origin, target, host = self._target(url)
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
        given = {name.lower() for name in headers}
        if "user-agent" not in given:
            lines.append("User-Agent: junction\r\n")
        if "accept-encoding" not in given:
            lines.append("Accept-Encoding: identity\r\n")  # bodies are returned as sent
        for name, value in headers.items():
            if "\n" in name or "\r" in name or "\n" in value or "\r" in value:
                raise ExchangeError(f"header {name!r} holds a line break")
            if name.lower() not in _FRAMING:
                lines.append(f"{name}: {value}\r\n")
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        lines.append("\r\n")
        request = "".join(lines).encode() + (body or b"")
        try:
            async with asyncio.timeout(timeout):
                return await self._send(
                    origin, request, max_body, method == "HEAD", connect_timeout
                )
        except TimeoutError:
            raise ExchangeTimeout(f"no whole answer from {host} within {timeout} s") from None

    def _target(self, url: str) -> tuple[Origin, str, str]:
        """(origin, request target, Host header) of a URL, cached: the hub calls few URLs."""
        known = self._urls.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ExchangeError(f"not an http(s) URL: {url[:200]}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ExchangeError(f"bad port in {url[:200]}") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc.rpartition("@")[2]
        if len(self._urls) >= 256:
            self._urls.clear()
        self._urls[url] = known = ((parts.scheme, parts.hostname, port), target, host)
        return known

    async def _send(
        self,
        origin: Origin,
        request: bytes,
        max_body: int,
        head_only: bool,
        connect_timeout: float | None,
    ) -> Answer:
        """On a pooled connection if one is fresh; a reused one that fails before any byte of
        the answer (the server closed it meanwhile) is retried once on a new connection."""
        idle = self._idle.setdefault(origin, [])
        for attempt in (0, 1):
            connection = self._take(idle) if attempt == 0 else None
            reused = connection is not None
            if connection is None:
                connection = await self._connect(origin, idle, connect_timeout)
            try:
                answer = await connection.exchange(request, max_body, head_only)
            except ExchangeError:
                connection.close()
                if reused and not connection.received:
                    continue
                raise
            except BaseException:  # cancelled or timed out mid-answer: the connection is spent
                connection.close()
                raise
            if connection.reusable and len(idle) < MAX_IDLE_PER_ORIGIN:
                connection.idle_since = asyncio.get_running_loop().time()
                idle.append(connection)
            else:
                connection.close()
            return answer
        raise AssertionError("unreachable")

    def _take(self, idle: list[_Connection]) -> _Connection | None:
        """The most recently used idle connection still fresh; stale ones are closed."""
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if connection.reusable and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    async def _connect(
        self, origin: Origin, idle: list[_Connection], timeout: float | None
    ) -> _Connection:
        scheme, host, port = origin
        context: ssl.SSLContext | None = None
        if scheme == "https":
            context = self._ssl = self._ssl or ssl.create_default_context()
        name = host if context else None
        try:
            async with asyncio.timeout(timeout) as deadline:
                _, protocol = await asyncio.get_running_loop().create_connection(
                    lambda: _Connection(idle), host, port, ssl=context, server_hostname=name
                )
        except OSError as exc:  # refused, unresolvable, TLS, the kernel's own timeout; ours
            if deadline.expired():  # our connect timeout (the whole deadline is a cancel here)
                raise ExchangeConnectTimeout(
                    f"timed out connecting to {host}:{port} after {timeout} s"
                ) from None
            raise ExchangeConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        self._open.add(protocol)
        protocol.closed.add_done_callback(lambda _: self._open.discard(protocol))
        return protocol

    async def close(self) -> None:
        """Close every connection, idle or busy (a busy exchange fails), and wait for them."""
        connections = list(self._open)
        self._idle.clear()
        for connection in connections:
            connection.close()
        if connections:
            await asyncio.wait([c.closed for c in connections], timeout=2)


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Exchanges] = (
    weakref.WeakKeyDictionary()
)
"""One `Exchanges` per event loop, made on first use (tests run each in a fresh loop), as
`router_core.http.get_session` keeps one aiohttp session."""


def get_exchanges() -> Exchanges:
    """The running loop's shared `Exchanges`."""
    loop = asyncio.get_running_loop()
    exchanges = _SHARED.get(loop)
    if exchanges is None:
        exchanges = _SHARED[loop] = Exchanges()
    return exchanges


async def close_exchanges() -> None:
    """Close the running loop's shared `Exchanges` (`router_core.http.close_session` calls it)."""
    exchanges = _SHARED.pop(asyncio.get_running_loop(), None)
    if exchanges is not None:
        await exchanges.close()


__all__ = [
    "Answer",
    "ExchangeConnectError",
    "ExchangeConnectTimeout",
    "ExchangeError",
    "ExchangeMalformed",
    "ExchangeTimeout",
    "Exchanges",
    "close_exchanges",
    "get_exchanges",
]
