"""Owner forwarding: a legacy MCP session (`Mcp-Session-Id`) or a remote ACP connection
(`Acp-Connection-Id`) answers on every replica, though it lives in the one that opened it.

Both are live objects (the SDK's `ServerSession` with its streams; a `DurableConnection` with
its replay buffer), so they are not copied: each replica records in Redis which replica owns
each id it opened (`junction:owner:{mcp|acp}:{id}` -> its `cluster.advertise_url`, with a time
to live it renews while the session lives, removed when it ends), and `Forwarder`, outermost in
serve mode when `cluster.redis_url` is set, carries a request for an id that is not its own to
the owner: the whole request, streamed both ways (SSE answers, long GETs), with the client's own
credentials (the owner's access guard checks them again) and `Junction-Forwarded: 1`, so a
forwarded request is never forwarded again. A WebSocket resumption (`acp.resumable.v1`) names
its connection in its first frame, not a header: the ACP server offers it here
(`Ownership.resume_elsewhere`) and the socket is spliced to one opened at the owner.

Unknown everywhere, or the owner gone (refused, or no answer within `CONNECT_SECONDS`): the
record is deleted and the request is answered here as an unknown id is (404 "Session not
found"; for a resumption `stream/resume_failed`), so the client starts again as the specs say.
Redis down: each replica serves the sessions it owns; an id owned elsewhere is unknown here.

Hostile input: an id longer than `MAX_ID` or with anything but visible ASCII is never looked up
(the local answer is 404); a client's own `Junction-Forwarded` only turns forwarding off for its
request; a record that is not a bare `http(s)://host:port` is deleted, never followed; nothing
follows redirects, keeps cookies or uses the environment's proxies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from junction.cluster import RedisDown, RedisLink, owner_url
from transports.owners import OWNERS_SCOPE_KEY

if TYPE_CHECKING:
    import aiohttp
    from prometheus_client import CollectorRegistry
    from redis.asyncio import Redis
    from websockets.asyncio.client import ClientConnection

log = logging.getLogger("junction.cluster")

MARKER = b"junction-forwarded"
"""Request header of a forwarded request: its receiver answers it itself."""
FORWARDED_BY = b"x-junction-forwarded-by"
"""Response header naming the replica that carried the request to its owner."""
KINDS = {"/mcp": ("mcp", b"mcp-session-id"), "/acp": ("acp", b"acp-connection-id")}
"""Path -> (record kind, the header naming the session)."""
MAX_ID = 128
"""Longest session id looked up (the SDK's are 32 characters, ours 22)."""
TTL_SECONDS = 30
"""A record outlives its replica by at most this (renewed every `RENEW_SECONDS`)."""
RENEW_SECONDS = 10.0
CONNECT_SECONDS = 3.0
"""How long the owner may take to accept a connection before it counts as gone."""
REDIS_TIMEOUT = 0.5
KNOWN_OWNERS = 10_000
"""Owners of other replicas' sessions remembered here (the least recently used go first)."""
_RESUME_SECONDS = 10.0
_UNKNOWN = "unknown or ended connection"
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_WS_HANDSHAKE = frozenset(
    {
        b"host",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
    }
)
_DELETE_IF_MINE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _key(kind: str, ident: str) -> str:
    return f"junction:owner:{kind}:{ident}"


def valid_id(raw: bytes) -> bool:
    """Whether a session id may be looked up: 1..MAX_ID visible ASCII characters."""
    return 0 < len(raw) <= MAX_ID and all(0x21 <= byte <= 0x7E for byte in raw)


class Ownership:
    """This replica's records of the sessions it owns, and the lookup of other replicas'
    (`transports.owners.Owners`, put in every request's scope by `Forwarder`)."""

    def __init__(
        self, redis_url: str, me: str, replica: str, registry: CollectorRegistry | None = None
    ) -> None:
        from prometheus_client import Counter

        self.forwarded = Counter(
            "junction_sessions_forwarded",
            "Requests for an MCP session or ACP connection that another replica owns, carried "
            "there (kind: mcp, acp; acp includes WebSocket resumptions)",
            ["kind"],
            registry=registry,
        )
        self.redis_url = redis_url
        self.me = me
        """This replica's advertised URL (`owner_url`'s form)."""
        self.replica = replica
        self.local: dict[tuple[str, str], Callable[[], bool]] = {}
        self.known: OrderedDict[tuple[str, str], str] = OrderedDict()
        """Owners looked up (ids never move, so a hit needs no Redis round trip; an owner that
        no longer has the id answers 404 itself, one that is gone is forgotten)."""
        self._link = RedisLink(
            redis_url,
            what="session ownership",
            timeout=REDIS_TIMEOUT,
            on_back=lambda: self._spawn(self._renew_all()),  # what opened meanwhile
        )
        self._delete: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewing: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    # -- Redis ------------------------------------------------------------------------------

    async def _call(self, run: Callable[[Redis], Awaitable[Any]]) -> Any:
        """`run(client)`; `RedisDown` when Redis does not answer (then not tried for a second:
        sessions of other replicas are unknown here until it is back)."""
        if self._delete is None:
            self._delete = self._link.client.register_script(_DELETE_IF_MINE)
        return await self._link.call(run)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forget(self, kind: str, ident: str, url: str) -> None:
        with contextlib.suppress(RedisDown):
            await self._call(lambda r: self._delete(keys=[_key(kind, ident)], args=[url], client=r))

    # -- transports.owners.Owners -----------------------------------------------------------

    async def opened(self, kind: str, ident: str, alive: Callable[[], bool]) -> None:
        self.local[kind, ident] = alive
        if not valid_id(ident.encode()):
            return
        with contextlib.suppress(RedisDown):
            await self._call(lambda r: r.set(_key(kind, ident), self.me, ex=TTL_SECONDS))

    def closed(self, kind: str, ident: str) -> None:
        if self.local.pop((kind, ident), None) is not None:
            self._spawn(self._forget(kind, ident, self.me))

    async def resume_elsewhere(
        self, websocket: WebSocket, connection_id: str, first: bytes
    ) -> str | None:
        headers = websocket.scope.get("headers") or []
        if any(name == MARKER for name, _ in headers):
            return _UNKNOWN
        owner = await self.owner_of("acp", connection_id)
        if owner is None:
            return _UNKNOWN
        return await _resume_at(self, owner, websocket, connection_id, first)

    # -- lookups ----------------------------------------------------------------------------

    def is_local(self, kind: str, ident: str) -> bool:
        alive = self.local.get((kind, ident))
        return alive is not None and alive()

    async def owner_of(self, kind: str, ident: str) -> str | None:
        """The URL of the replica that owns `ident` when it is another one (None: here, or
        nowhere known, or Redis is down). A record of an odd form, or naming this replica for
        an id it no longer has, is deleted."""
        if not valid_id(ident.encode()) or self.is_local(kind, ident):
            return None
        if (known := self.known.get((kind, ident))) is not None:
            self.known.move_to_end((kind, ident))
            return known
        try:
            found = await self._call(lambda r: r.get(_key(kind, ident)))
        except RedisDown:
            return None
        if found is None:
            return None
        url = found.decode("latin-1") if isinstance(found, bytes) else str(found)
        if url == self.me or owner_url(url) != url:
            if url != self.me:
                log.warning("session ownership: deleted a record naming %r", url[:200])
            await self._forget(kind, ident, url)
            return None
        self.known[kind, ident] = url
        if len(self.known) > KNOWN_OWNERS:
            self.known.popitem(last=False)
        return url

    def gone(self, kind: str, ident: str, owner: str) -> None:
        """`owner` did not answer: its record of `ident` goes."""
        log.info("session ownership: %s %s: its owner %s is gone", kind, ident[:16], owner)
        self.known.pop((kind, ident), None)
        self._spawn(self._forget(kind, ident, owner))

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._renewing is None:
            self._renewing = asyncio.ensure_future(self._renew())

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            await self._renew_all()

    async def _renew_all(self) -> None:
        """Renew the records of the live sessions; delete those of sessions that ended without
        a DELETE (an idle timeout, a grace period that ran out)."""
        ended = [key for key, alive in self.local.items() if not alive()]
        for kind, ident in ended:
            self.closed(kind, ident)
        live = [key for key in self.local if valid_id(key[1].encode())]
        if not live:
            return

        async def renew(client: Redis) -> Any:
            async with client.pipeline(transaction=False) as pipe:
                for kind, ident in live:
                    pipe.set(_key(kind, ident), self.me, ex=TTL_SECONDS)
                return await pipe.execute()

        with contextlib.suppress(RedisDown):
            await self._call(renew)

    def http(self) -> aiohttp.ClientSession:
        """The pooled client forwarded requests go through (made in the serving loop)."""
        if self._http is None:
            import aiohttp

            self._http = aiohttp.ClientSession(
                # no pool limit: each forwarded stream holds a connection for as long as it
                # lasts, and a request waiting for a free one must not look like a dead owner
                connector=aiohttp.TCPConnector(limit=0),
                auto_decompress=False,  # the bytes go on as they came, Content-Encoding and all
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=CONNECT_SECONDS, sock_connect=CONNECT_SECONDS
                ),
            )
        return self._http

    async def aclose(self) -> None:
        """At shutdown (after the drain): the records of sessions still here go, then the
        clients."""
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
        for kind, ident in list(self.local):
            self.closed(kind, ident)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._link.aclose()
        if self._http is not None:
            await self._http.close()


class Forwarder:
    """The ASGI middleware: a request for a session another replica owns goes there."""

    def __init__(self, app: ASGIApp, ownership: Ownership) -> None:
        self.app = app
        self.ownership = ownership

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._lifespan(send))
            return
        scope[OWNERS_SCOPE_KEY] = self.ownership
        if kind == "http" and (target := _target(scope)) is not None:
            owner = await self.ownership.owner_of(*target)
            if owner is not None and await _forward(self.ownership, scope, receive, send, owner):
                self.ownership.forwarded.labels(target[0]).inc()
                return
            if owner is not None:
                self.ownership.gone(*target, owner)
        await self.app(scope, receive, send)

    def _lifespan(self, send: Send) -> Send:
        async def sent(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                self.ownership.start()
            elif message["type"].startswith("lifespan.shutdown."):
                await self.ownership.aclose()
            await send(message)

        return sent


def _target(scope: Scope) -> tuple[str, str] | None:
    """(kind, id) of a request on a session endpoint that names a session and is not a
    forwarded one; None for everything else."""
    found = KINDS.get(scope["path"])
    if found is None:
        return None
    kind, header = found
    ident: bytes | None = None
    for name, value in scope["headers"]:
        if name == MARKER:
            return None
        if name == header:
            ident = value
    if ident is None or not valid_id(ident):
        return None
    return kind, ident.decode("ascii")


class _ClientGone(Exception):
    """The client went away while its request body was being forwarded."""


async def _forward(
    ownership: Ownership, scope: Scope, receive: Receive, send: Send, owner: str
) -> bool:
    """Carry the request to `owner` and its answer back. False when the owner could not be
    reached before anything was read or sent (the caller answers as for an unknown id)."""
    import aiohttp
    from multidict import CIMultiDict
    from yarl import URL

    path = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string") or b""
    url = URL(owner + (path + (b"?" + query if query else b"")).decode("latin-1"), encoded=True)
    headers: list[tuple[str, str]] = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name not in _HOP_BY_HOP
    ]
    headers.append((MARKER.decode(), "1"))
    names = {name.lower() for name, _ in headers}
    has_body = "content-length" in names or any(
        name == b"transfer-encoding" for name, _ in scope["headers"]
    )
    started = left = False
    body_done = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        nonlocal started, left
        started = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                left = True  # aiohttp reports it as its own error, with this as the cause
                raise _ClientGone
            if chunk := message.get("body", b""):
                yield chunk
            if not message.get("more_body", False):
                break
        body_done.set()

    if not has_body:
        body_done.set()
    try:
        upstream = await ownership.http().request(
            scope["method"],
            url,
            headers=CIMultiDict(headers),
            data=body() if has_body else None,
            allow_redirects=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
        )
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
        if not started:
            return False
        await _bad_gateway(send)
        return True
    except _ClientGone:
        return True
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        if left:  # the client went away mid-body: nobody to answer
            return True
        log.warning("forwarding %s %s to %s failed: %s", scope["method"], scope["path"], owner, exc)
        await _bad_gateway(send)
        return True
    try:
        out = [(k.lower(), v) for k, v in upstream.raw_headers if k.lower() not in _HOP_BY_HOP]
        out.append((FORWARDED_BY, ownership.replica.encode()))
        await send({"type": "http.response.start", "status": upstream.status, "headers": out})

        async def copy() -> None:
            async for chunk in upstream.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def client_gone() -> None:
            await body_done.wait()
            while (await receive())["type"] != "http.disconnect":
                pass

        pumping = asyncio.ensure_future(copy())
        watching = asyncio.ensure_future(client_gone())
        try:
            await asyncio.wait({pumping, watching}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pumping, watching):
                task.cancel()
            await asyncio.gather(pumping, watching, return_exceptions=True)
        if pumping.done() and not pumping.cancelled() and pumping.exception() is not None:
            log.info("forwarded answer from %s cut: %s", owner, pumping.exception())
    finally:
        upstream.close()
    return True


async def _bad_gateway(send: Send) -> None:
    body = b'{"error":"the replica that owns this session did not answer"}'
    await send(
        {
            "type": "http.response.start",
            "status": 502,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- WebSocket resumption ---------------------------------------------------------------------

_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013})


def _close_code(code: int | None) -> int:
    """A close code that may be sent on (1005/1006, "none" and "lost", may not: going away)."""
    if code is not None and (code in _SENDABLE or 3000 <= code <= 4999):
        return code
    return 1001


async def _resume_at(
    ownership: Ownership, owner: str, websocket: WebSocket, connection_id: str, first: bytes
) -> str | None:
    """Open a resumable socket at `owner`, send it the client's `stream/resume` and, when it
    resumes, splice the two sockets until either ends."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
    from websockets.typing import Subprotocol

    from transports.remote import RESUMABLE_SUBPROTOCOL, RESUME_FAILED, RESUMED

    scope = websocket.scope
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    query = (scope.get("query_string") or b"").decode("latin-1")
    url = "ws" + owner[4:] + path + (f"?{query}" if query else "")
    host = ""
    extra: list[tuple[str, str]] = [(MARKER.decode(), "1")]
    for name, value in scope.get("headers") or []:
        if name == b"host":
            host = value.decode("latin-1")
        elif name not in _HOP_BY_HOP and name not in _WS_HANDSHAKE:
            extra.append((name.decode("latin-1"), value.decode("latin-1")))
    try:
        upstream = await connect(
            url,
            additional_headers=extra,
            subprotocols=[Subprotocol(RESUMABLE_SUBPROTOCOL)],
            open_timeout=CONNECT_SECONDS,
            max_size=None,  # the owner's frames: the client's own limit applies at its end
            compression=None,
            user_agent_header=None,
            create_connection=_keeping_host(host),
        )
    except InvalidStatus as exc:
        return f"{_UNKNOWN} (HTTP {exc.response.status_code} at its replica)"
    except (OSError, TimeoutError, InvalidHandshake):
        ownership.gone("acp", connection_id, owner)
        return _UNKNOWN
    try:
        await upstream.send(first.decode(errors="replace"))
        reply = await asyncio.wait_for(upstream.recv(), _RESUME_SECONDS)
        answer = orjson.loads(reply)
    except (ConnectionClosed, TimeoutError, orjson.JSONDecodeError):
        await upstream.close(1001)
        return _UNKNOWN
    method = answer.get("method") if isinstance(answer, dict) else None
    if method != RESUMED:
        await upstream.close(1000)  # ends the new connection the owner opened on the refusal
        reason = (answer.get("params") or {}).get("reason") if method == RESUME_FAILED else None
        return str(reason or _UNKNOWN)
    await websocket.send_text(reply if isinstance(reply, str) else reply.decode())
    ownership.forwarded.labels("acp").inc()
    await _splice(websocket, upstream)
    return None


def _keeping_host(host: str) -> Any:
    """A client connection class whose handshake carries the client's own `Host` (the owner's
    access guard checks it as the first replica's did)."""
    from websockets.asyncio.client import ClientConnection

    class KeepingHost(ClientConnection):
        async def handshake(self, *args: Any, **kwargs: Any) -> None:
            if host:
                build = self.protocol.connect

                def connect() -> Any:
                    request = build()
                    del request.headers["Host"]
                    request.headers["Host"] = host
                    return request

                self.protocol.connect = connect  # type: ignore[method-assign]
            await super().handshake(*args, **kwargs)

    return KeepingHost


async def _splice(websocket: WebSocket, upstream: ClientConnection) -> None:
    """Frames both ways until one side closes; the other is closed with its code."""
    from websockets.exceptions import ConnectionClosed

    async def inward() -> int:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return int(message.get("code") or 1005)
            text = message.get("text")
            try:
                await upstream.send(text if text is not None else message.get("bytes") or b"")
            except ConnectionClosed:
                return -1

    async def outward() -> int | None:
        try:
            async for frame in upstream:
                if isinstance(frame, str):
                    await websocket.send_text(frame)
                else:
                    await websocket.send_bytes(frame)
        except ConnectionClosed:
            pass
        except (RuntimeError, OSError):  # the client's socket is gone
            return -1
        return upstream.close_code

    reading = asyncio.ensure_future(inward())
    writing = asyncio.ensure_future(outward())
    try:
        done, _ = await asyncio.wait({reading, writing}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reading, writing):
            task.cancel()
        results = await asyncio.gather(reading, writing, return_exceptions=True)
    client_code, owner_code = (r if isinstance(r, int) else None for r in results)
    if reading in done and client_code is not None and client_code >= 0:
        await upstream.close(_close_code(client_code))  # 1000 ends the connection at the owner
    else:
        await upstream.close(1001)
    if writing in done and owner_code != -1:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(_close_code(owner_code))


__all__ = ["FORWARDED_BY", "MARKER", "Forwarder", "Ownership", "valid_id"]
