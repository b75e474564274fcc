"""`junction --mode bridge`: an IDE's stdio ACP connection relayed to a remote Junction's `/acp`.

The IDE launches this process as its agent; every NDJSON line from stdin goes out as one
WebSocket message and every WebSocket message comes back as one stdout line, in order, both ways
at once, agent-to-client requests (`fs/*`, `session/request_permission`, `terminal/*`) included.
The wire is ACP's remote transport (`transports/remote.py`), the profile chosen by the URL:
ws(s):// is the WebSocket profile with Junction's durable subprotocol (the remote numbers its
messages, so a dropped socket is resumed where it stopped; a remote that does not take the
subprotocol, an older Junction, is spoken to as before, and a drop there is a lost connection);
http(s):// is Streamable HTTP, whose client resumes its stream and retries its POSTs by itself
(`transports/streamable_client.py`). Messages are relayed as bytes: they are parsed only to keep
track of which requests are unanswered, never re-encoded. Exceptions, all for correctness: the
cursor member the remote puts first in each WebSocket message is cut off again (the IDE sees
what the agent sent); a message from the remote that contains raw newlines (pretty-printed JSON)
has them turned into spaces, since a newline would split it on stdout; and see "Request ids
after a reconnect" below.

What the IDE sees when things go wrong (stdout carries protocol only; logs go to stderr):

- **Bad input.** An over-long stdin line is answered here with the same -32600 error the stdio
  agent gives (limit: `server.max_message_bytes`); the connection stays. Anything else, garbage
  included, is forwarded as is, so the remote agent answers it exactly as `--mode stdio` would
  (-32700 parse error, -32600 invalid request): one source of truth for error replies.
- **The socket drops, the remote lives on** (a network blip, a proxy timeout). The bridge opens
  a new socket with exponential backoff (bounded attempts), asks the remote to resume the
  connection after the last message it relayed, and the remote replays what the IDE missed.
  The IDE's requests still unanswered and its latest answers go up again; the remote drops those
  it already had, so nothing runs twice. The IDE sees nothing but a pause (stderr says
  "resumed").
- **The remote cannot resume** (it restarted, or the connection outlived its grace period). The
  remote agent's state for the old connection (the initialized connection, attached sessions,
  running prompts) is gone, so:
  requests the IDE sent that were unanswered get a JSON-RPC error (code -32603) whose message
  says the remote connection was lost and re-established, or lost for good, with
  `data.reason == "remote_connection_lost"` and `data.reconnected`; requests the remote agent had
  sent to the IDE and that were still unanswered are cancelled at the IDE with
  `$/cancel_request`, and the IDE's late answers to them are dropped (logged). ACP has no
  session-less notification, so these error replies are the notice. After a reconnect the IDE
  must `initialize` again and `session/load` (or `session/resume`) its sessions, which the
  remote keeps in its store; requests for a session not loaded on the new connection are
  answered by the remote with its usual error. If it cannot reconnect, everything pending is
  answered with errors and the bridge exits 1.
- **Start.** A refused token or an unreachable server is one line on stderr and exit code 1.
- **End.** stdin EOF: requests still in flight get `EOF_GRACE_SECONDS` for their answers, then
  the WebSocket is closed with 1000 and the bridge exits 0. A remote close with 1000 (or 1008,
  policy) is final: no reconnect, a clear message, exit 1. Other closes (1006 when the server
  dies, 1012 when it restarts, 1011, ...) are drops and trigger a reconnect.

Request ids after a reconnect: the remote numbers its requests per connection, so a request on
the new connection can carry the id of an old one the IDE never answered. That one request goes
to the IDE under a bridge-made id (`"junction-bridge:<generation>:<id>"`) and the IDE's answer is
sent back under the original id, so an old permission dialog can never answer a new question.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections import deque
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from junction.config import JunctionConfig
from junction.logs import register_secret
from transports import (
    CANCEL_METHOD,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    Backoff,
    MessageStream,
    Oversized,
)

log = logging.getLogger("junction.bridge")

__all__ = ["EOF_GRACE_SECONDS", "RECONNECT_ATTEMPTS", "RECONNECT_DELAY", "run_bridge"]

RECONNECT_ATTEMPTS = 8
RECONNECT_DELAY = 0.25
"""Seconds before the first reconnect attempt; doubled after each failure, up to the cap."""
RECONNECT_DELAY_CAP = 5.0
EOF_GRACE_SECONDS = 2.0
"""After stdin EOF, how long requests in flight may take to be answered (as `--mode stdio`)."""
FINAL_CLOSE_CODES = frozenset({1000, 1008, 4409})
"""Remote close codes that mean "do not come back": a deliberate end, a policy refusal, or the
connection resumed by another socket (4409)."""
LOST_REASON = "remote_connection_lost"
RESEND_ANSWERS = 64
"""How many of the IDE's latest answers go up again after a resumption (duplicates are dropped
by the remote; one sent as the socket died would otherwise be lost)."""

RequestId = int | str


class _Connection(MessageStream, Protocol):
    """What the bridge needs from `connect_remote`'s stream."""

    resumable: bool
    connection_id: str | None
    cursor: int
    resumed: bool
    refusal: str | None

    @property
    def close_code(self) -> int | None: ...


class _StartError(Exception):
    """The remote could not be reached or refused us; the message is the one line to print."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final  # no point retrying (refused handshake)


class _IdeGoneError(Exception):
    """Stdout is closed: nobody is left to relay to."""


def run_bridge(
    config: JunctionConfig,
    url: str,
    token: str | None,
    *,
    reconnect_attempts: int = RECONNECT_ATTEMPTS,
    reconnect_delay: float = RECONNECT_DELAY,
) -> int:
    """Relay stdio ACP to `url` until stdin closes (0) or the remote is gone for good (1).

    Returns 2 for a URL that is not ws:// or wss://, 130 on Ctrl-C.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("ws", "wss", "http", "https") or not urlsplit(url).netloc:
        print(
            f"junction: --connect needs a ws(s):// or http(s):// URL, got {url!r}", file=sys.stderr
        )
        return 2
    if token:
        register_secret(token)
    bridge = _Bridge(
        url,
        token,
        limit=config.server.max_message_bytes,
        attempts=max(0, reconnect_attempts),
        delay=reconnect_delay,
    )
    try:
        return asyncio.run(bridge.main())
    except KeyboardInterrupt:
        return 130


def _request_ids(message: Any) -> tuple[list[RequestId], list[RequestId]]:
    """The ids of the requests and of the responses in one decoded message (or batch)."""
    requests: list[RequestId] = []
    responses: list[RequestId] = []
    for item in message if isinstance(message, list) else (message,):
        if not isinstance(item, dict):
            continue
        request_id = item.get("id")
        if not isinstance(request_id, int | str) or isinstance(request_id, bool):
            continue
        if "method" in item:
            requests.append(request_id)
        elif "result" in item or "error" in item:
            responses.append(request_id)
    return requests, responses


def _decode(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _error(request_id: RequestId | None, code: int, message: str, data: Any = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "error": error})


class _Bridge:
    """One IDE, one remote URL, a succession of WebSocket connections (generations)."""

    def __init__(
        self, url: str, token: str | None, *, limit: int, attempts: int, delay: float
    ) -> None:
        self._url = url
        self._token = token
        self._limit = limit
        self._attempts = attempts
        self._delay = delay
        self._ide: MessageStream | None = None
        self._conn: _Connection | None = None  # None while reconnecting
        self._generation = 0
        self._online = asyncio.Event()  # set while _conn is usable, or once the bridge gave up
        self._final = False
        self._ide_pending: dict[RequestId, int] = {}  # IDE request id -> its generation
        # The remote's requests the IDE has not answered: the id the IDE knows -> the remote's id
        # (they differ only for a renamed request, see the module docstring).
        self._agent_pending: dict[RequestId, RequestId] = {}
        self._stale: set[RequestId] = set()  # those of dead connections (cancelled at the IDE)
        self._held: list[RequestId] = []  # requests read from stdin, waiting for a connection
        self._answered = asyncio.Event()  # pulsed when a remote response settles an IDE request
        # What to send again after a resumption (the remote drops what it already has): the
        # IDE's requests still unanswered, and its latest answers to the remote's requests.
        self._unanswered: dict[RequestId, bytes] = {}
        self._recent_answers: deque[bytes] = deque(maxlen=RESEND_ANSWERS)

    # -- the whole run ----------------------------------------------------------------------------

    async def main(self) -> int:
        try:
            conn = await self._open()
        except _StartError as exc:
            print(f"junction: {exc}", file=sys.stderr)
            return 1
        from transports import open_stdio

        self._ide = await open_stdio(max_message_bytes=self._limit)
        log.info("bridge: relaying stdio to %s", self._url)
        runner = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            if runner is not None:
                loop.add_signal_handler(signum, runner.cancel)
        up = asyncio.create_task(self._pump_up())
        try:
            return await self._relay(conn, up)
        except asyncio.CancelledError:
            log.info("bridge: signal received, closing")
            return 0
        except _IdeGoneError:
            log.info("bridge: the IDE closed stdout, closing")
            return 0
        finally:
            up.cancel()
            with contextlib.suppress(BaseException):
                await up
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.aclose()
            with contextlib.suppress(Exception):
                await self._ide.aclose()

    async def _relay(self, conn: _Connection, up: asyncio.Task[None]) -> int:
        """Relay over `conn`, then over each reconnection, until stdin ends or we give up."""
        self._go_online(conn)
        while True:
            down = asyncio.create_task(self._pump_down(conn, self._generation))
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if up.done():
                return await self._finish_at_eof(conn, down, up)
            down.result()  # _IdeGoneError propagates
            # The socket ended without our asking: resume the connection on a new one if the
            # remote can, else everything tied to it is lost.
            self._conn = None
            self._online.clear()
            lost_generation = self._generation
            code = conn.close_code
            if code in FINAL_CLOSE_CODES:
                await self._cancel_agent_requests()
                log.error("bridge: the remote Junction closed the connection (code %s)", code)
                reason = f"the remote Junction closed the connection (WebSocket code {code})"
                return await self._give_up(up, lost_generation, reason)
            log.warning(
                "bridge: connection to %s lost (WebSocket code %s); %s",
                self._url,
                code,
                "resuming" if conn.resumable else "reconnecting",
            )
            reconnect = asyncio.create_task(self._reconnect(conn))
            await asyncio.wait({up, reconnect}, return_when=asyncio.FIRST_COMPLETED)
            if not reconnect.done():  # stdin ended while we were reconnecting
                reconnect.cancel()
                with contextlib.suppress(BaseException):
                    await reconnect
                await self._cancel_agent_requests()
                await self._answer_lost(lost_generation, reconnected=False)
                up.result()
                return 0
            new, why = reconnect.result()
            if new is None:
                await self._cancel_agent_requests()
                return await self._give_up(up, lost_generation, why)
            conn = new
            if conn.resumed:
                log.warning(
                    "bridge: resumed the connection to %s after message %d; nothing was lost",
                    self._url,
                    conn.cursor,
                )
                await self._resend(conn)
                self._go_online(conn)
                continue
            if conn.refusal is not None:
                log.warning("bridge: the remote could not resume the connection: %s", conn.refusal)
            await self._cancel_agent_requests()
            self._generation += 1
            await self._answer_lost(lost_generation, reconnected=True)
            log.warning(
                "bridge: reconnected to %s; requests in flight were answered with errors, "
                "the IDE must initialize and session/load again",
                self._url,
            )
            self._go_online(conn)

    def _go_online(self, conn: _Connection) -> None:
        self._conn = conn
        self._online.set()

    async def _finish_at_eof(
        self, conn: _Connection, down: asyncio.Task[None], up: asyncio.Task[None]
    ) -> int:
        """stdin ended: let answers in flight arrive (briefly), close with 1000, exit 0."""
        up.result()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + EOF_GRACE_SECONDS
        while self._ide_pending and not down.done():
            self._answered.clear()
            waiter = asyncio.create_task(self._answered.wait())
            await asyncio.wait(
                {waiter, down},
                timeout=max(0.0, deadline - loop.time()),
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
            if loop.time() >= deadline:
                break
        self._conn = None
        with contextlib.suppress(Exception):
            await conn.aclose()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(down, EOF_GRACE_SECONDS)
        for request_id in list(self._ide_pending):
            del self._ide_pending[request_id]
            with contextlib.suppress(_IdeGoneError):
                await self._to_ide(
                    _error(request_id, INTERNAL_ERROR, "the bridge is closing: stdin was closed")
                )
        log.info("bridge: stdin closed; connection to %s closed", self._url)
        return 0

    async def _give_up(self, up: asyncio.Task[None], generation: int, why: str) -> int:
        """No connection any more: answer everything pending, say so once on stderr, exit 1."""
        self._final = True
        self._online.set()
        up.cancel()
        with contextlib.suppress(BaseException):
            await up
        await self._answer_lost(generation, reconnected=False)
        held, self._held = self._held, []
        for request_id in held:
            with contextlib.suppress(_IdeGoneError):
                await self._to_ide(self._lost_error(request_id, reconnected=False))
        print(f"junction: bridge to {self._url} stopped: {why}", file=sys.stderr)
        return 1

    # -- connecting -------------------------------------------------------------------------------

    async def _open(self, resume: tuple[str, int] | None = None) -> _Connection:
        from transports import HandshakeRefusedError, connect_remote, connect_streamable

        try:
            conn: _Connection
            if self._url.startswith("http"):
                conn = await connect_streamable(
                    self._url, token=self._token, max_message_bytes=self._limit
                )
            else:
                conn = await connect_remote(
                    self._url, token=self._token, max_message_bytes=self._limit, resume=resume
                )
        except HandshakeRefusedError as exc:
            if self._token is None:
                what = f"{self._url} refused the connection without a token (HTTP {exc.status}); "
                raise _StartError(what + "pass one with --token", final=True) from None
            if exc.status in (401, 403):
                what = f"{self._url} refused the token (HTTP {exc.status})"
                raise _StartError(what, final=True) from None
            what = f"{self._url} refused the connection (HTTP {exc.status}); is the path /acp?"
            raise _StartError(what, final=True) from None
        except TimeoutError:
            raise _StartError(f"cannot reach {self._url}: timed out", final=False) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise _StartError(f"cannot reach {self._url}: {reason}", final=False) from None
        except Exception as exc:  # e.g. a malformed URL: still one line, never a traceback
            raise _StartError(f"cannot connect to {self._url}: {exc}", final=True) from None
        return conn

    async def _reconnect(self, lost: _Connection) -> tuple[_Connection | None, str]:
        """A new socket after backoff, resuming `lost`'s connection where the remote can; or
        None and why not (refused, or out of attempts)."""
        resume = None
        if lost.resumable and lost.connection_id is not None:
            resume = (lost.connection_id, lost.cursor)
        backoff = Backoff(self._delay, RECONNECT_DELAY_CAP, attempts=self._attempts)
        why = "no reconnect attempts allowed"
        while (delay := backoff.next_delay()) is not None:
            attempt = backoff.used
            log.warning(
                "bridge: reconnect attempt %d of %d in %.2f s", attempt, self._attempts, delay
            )
            await asyncio.sleep(delay)
            try:
                return await self._open(resume), ""
            except _StartError as exc:
                why = str(exc)
                log.warning("bridge: reconnect attempt %d failed: %s", attempt, why)
                if exc.final:
                    return None, why
        return None, f"could not reconnect after {self._attempts} attempts ({why})"

    # -- the two directions -----------------------------------------------------------------------

    async def _pump_up(self) -> None:
        """stdin -> WebSocket, one message at a time (so in order); returns at stdin EOF."""
        assert self._ide is not None
        while True:
            message = await self._ide.receive()
            if message is None:
                return
            if isinstance(message, Oversized):
                await self._to_ide(
                    _error(
                        message.id,
                        INVALID_REQUEST,
                        f"message of {message.size} bytes exceeds the limit of "
                        f"{message.limit} bytes",
                    )
                )
                continue
            decoded = _decode(message)
            requests, responses = _request_ids(decoded)
            if responses:
                message = self._route_ide_answers(message, decoded, responses)
                if not message:
                    continue
            await self._send_up(message, requests, answer=bool(responses))

    def _route_ide_answers(self, raw: bytes, decoded: Any, responses: list[RequestId]) -> bytes:
        """The IDE's answers as they should go up: b"" for an answer to a dead connection's
        request (dropped, logged), a renamed id restored, anything else untouched."""
        if isinstance(decoded, dict):
            request_id = responses[0]
            original = self._agent_pending.pop(request_id, None)
            if original is not None and original != request_id:
                decoded["id"] = original
                return orjson.dumps(decoded)
            if original is None and request_id in self._stale:
                self._stale.discard(request_id)
                log.info(
                    "bridge: dropping the IDE's answer to request %r: it was asked over a "
                    "connection that is gone",
                    request_id,
                )
                return b""
            return raw
        for request_id in responses:
            self._agent_pending.pop(request_id, None)
        return raw

    async def _send_up(
        self, message: bytes, requests: list[RequestId], *, answer: bool = False
    ) -> None:
        """Send on the current connection, waiting out a reconnect.

        A request counts as in flight from just before it is sent: if the connection dies under
        it, it gets the connection-lost error and is not sent again (the remote may have seen it).
        """
        self._held = requests
        while self._conn is None and not self._final:
            await self._online.wait()
        conn = self._conn
        if conn is None:  # gave up; _give_up answers what is held
            await asyncio.Event().wait()
            return
        self._held = []
        for request_id in requests:
            self._ide_pending[request_id] = self._generation
            self._unanswered[request_id] = message
        if answer:
            self._recent_answers.append(message)
        try:
            await conn.send(message)
        except ConnectionError:
            if not requests:
                log.warning(
                    "bridge: a message from the IDE was not delivered: the connection dropped"
                )

    async def _pump_down(self, conn: _Connection, generation: int) -> None:
        """WebSocket -> stdout until this connection ends."""
        while True:
            message = await conn.receive()
            if message is None:
                return
            if isinstance(message, Oversized):  # a WebSocket closes instead, but be exact
                continue
            decoded = _decode(message)
            requests, responses = _request_ids(decoded)
            for request_id in responses:
                if self._ide_pending.get(request_id) == generation:
                    del self._ide_pending[request_id]
                    self._unanswered.pop(request_id, None)
                    self._answered.set()
            for request_id in requests:
                ide_id: RequestId = request_id
                if request_id in self._stale and isinstance(decoded, dict):
                    ide_id = decoded["id"] = f"junction-bridge:{generation}:{request_id}"
                    message = orjson.dumps(decoded)
                self._agent_pending[ide_id] = request_id
            if b"\n" in message or b"\r" in message:
                message = message.replace(b"\r", b" ").replace(b"\n", b" ")
            await self._to_ide(message)

    async def _to_ide(self, message: bytes) -> None:
        assert self._ide is not None
        try:
            await self._ide.send(message)
        except ConnectionError as exc:
            raise _IdeGoneError from exc

    # -- after a drop -----------------------------------------------------------------------------

    async def _resend(self, conn: _Connection) -> None:
        """After a resumption: what may have died with the old socket goes up again, in order
        (the remote drops what it already had: a retried request is not run twice)."""
        again = [*self._recent_answers, *self._unanswered.values()]
        for message in again:
            with contextlib.suppress(ConnectionError):
                await conn.send(message)
        if again:
            log.info("bridge: sent %d message(s) again after resuming", len(again))

    def _lost_error(self, request_id: RequestId, *, reconnected: bool) -> bytes:
        if reconnected:
            text = (
                "the remote connection was lost and re-established; this request was in flight "
                "and cannot be answered: initialize again and session/load the session"
            )
        else:
            text = "the remote connection was lost for good; this request cannot be answered"
        data = {"reason": LOST_REASON, "reconnected": reconnected, "url": self._url}
        return _error(request_id, INTERNAL_ERROR, text, data)

    async def _answer_lost(self, generation: int, *, reconnected: bool) -> None:
        """Error replies for the IDE's requests that were in flight on a dead connection."""
        lost = [rid for rid, gen in self._ide_pending.items() if gen <= generation]
        for request_id in lost:
            del self._ide_pending[request_id]
            self._unanswered.pop(request_id, None)
        self._recent_answers.clear()
        for request_id in lost:
            with contextlib.suppress(_IdeGoneError):
                await self._to_ide(self._lost_error(request_id, reconnected=reconnected))
        if lost:
            log.warning(
                "bridge: answered %d request(s) in flight with a connection-lost error", len(lost)
            )

    async def _cancel_agent_requests(self) -> None:
        """The remote's unanswered requests to the IDE died with it: cancel them at the IDE."""
        pending = list(self._agent_pending)
        self._agent_pending.clear()
        for request_id in pending:
            self._stale.add(request_id)
            notice = {
                "jsonrpc": "2.0",
                "method": CANCEL_METHOD,
                "params": {"requestId": request_id},
            }
            await self._to_ide(orjson.dumps(notice))
        if pending:
            log.warning(
                "bridge: cancelled %d request(s) from the remote that the IDE had not answered",
                len(pending),
            )
