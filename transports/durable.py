"""A logical connection that outlives the physical ones carrying it: the server's half of the
durable remote transport (`remote.py` serves it over Streamable HTTP and WebSocket).

What makes it durable:

- **Delivery cursors.** Every server->client message gets the next number of the connection
  (1, 2, 3, ... as decimal strings on the wire), across every physical stream that carries it.
  The last `retention` messages are kept, so a client that comes back with the cursor of the last
  message it has gets everything after it, in order, exactly once (`attach`). A cursor that is
  not the end of a retained message, or lies beyond the last one sent, is refused: resuming would
  lose messages silently.
- **One live sink, the older fenced off.** `attach` starts a new generation; the delivery loop
  of the previous one (`deliveries`) ends, and its transport closes it.
- **Idempotent retries.** A request whose id (or `Idempotency-Key`) and bytes were already
  accepted is not handed to the agent again (`accept` answers `DUPLICATE`); the answer comes, or
  came, through the delivery stream. The same id with other bytes while the first is unanswered
  is a `CONFLICT`; once answered, the id may be used again (JSON-RPC allows it).
- **A grace period.** With no sink attached for `grace_seconds`, the connection ends: `receive()`
  returns None and the agent's handler finishes (an ACP agent keeps the sessions in its store).
- **Backpressure, never loss.** `send()` waits while the retention is full of messages that no
  sink has taken yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Mapping
from enum import Enum
from typing import Any

import orjson

from transports.stream import Inbox, Oversized

logger = logging.getLogger(__name__)

LEDGER_SIZE = 4096
"""How many accepted requests a connection remembers for deduplication."""


class Accepted(Enum):
    """What `accept` did with a client message."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def _key_of(message: Any, explicit: str | None) -> str | None:
    """The deduplication key of a client message: its `Idempotency-Key`, else its request or
    response id; None for a notification without a key (nothing to deduplicate by)."""
    if explicit:
        return "key:" + explicit
    if not isinstance(message, dict):
        return None
    request_id = message.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        return None
    kind = "request" if "method" in message else "response"
    return f"{kind}:{orjson.dumps(request_id).decode()}"


class DurableConnection:
    """One logical connection: messages in from any physical stream, numbered messages out."""

    def __init__(
        self,
        connection_id: str,
        *,
        state: Mapping[str, Any] | None,
        retention: int,
        grace_seconds: float,
    ) -> None:
        if retention < 1:
            raise ValueError("retention must be at least 1")
        self.connection_id = connection_id
        self.state: Mapping[str, Any] = dict(state or {})
        """The opening request's ASGI `state` (who the caller is, as the access guard saw it);
        every later request on the connection must come from the same caller."""
        self.sessions: set[str] = set()
        """Sessions this connection has: created (a result naming a `sessionId`) or attached
        (a request naming one answered with a result)."""
        self._retention = retention
        self._grace_seconds = grace_seconds
        self._inbox = Inbox()
        self._log: deque[tuple[int, bytes]] = deque()
        self._next = 1
        self._taken = 0  # the highest cursor the live sink has taken
        self._changed = asyncio.Event()
        self._generation = 0
        self._attached = False
        self._grace: asyncio.TimerHandle | None = None
        self._ended = False
        self._ledger: OrderedDict[str, tuple[bytes, bool]] = OrderedDict()
        self._waiters: dict[str, asyncio.Future[bytes]] = {}
        self._naming: dict[str, str] = {}  # answer key -> the session its request named
        self.task: asyncio.Task[None] | None = None
        self._start_grace()

    # -- the agent's side: a MessageStream ---------------------------------------------------------

    async def receive(self) -> bytes | Oversized | None:
        return await self._inbox.get()

    async def send(self, message: bytes) -> None:
        decoded = _decode(message)
        if isinstance(decoded, dict) and "method" not in decoded:
            key = _key_of(decoded, None)
            self._settle(key, decoded)
            waiter = self._waiters.pop(key, None) if key else None
            if waiter is not None and not waiter.done():
                waiter.set_result(message)  # answered in the HTTP response, not the stream
                return
        while not self._ended and len(self._log) >= self._retention:
            if self._log[0][0] <= self._taken:
                self._log.popleft()  # already on the wire: kept only for a resumption
                break
            await self._wait_changed()
        if self._ended:
            raise ConnectionError(f"connection {self.connection_id} has ended")
        self._log.append((self._next, message))
        self._next += 1
        self._notify()

    async def aclose(self) -> None:
        self.end("closed by the server")

    # -- the client's side ---------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def last_cursor(self) -> int:
        """The cursor of the last message sent (0 before the first)."""
        return self._next - 1

    @property
    def generation(self) -> int:
        return self._generation

    def accept(self, body: bytes, message: Any, *, key: str | None = None) -> Accepted:
        """Queue a client message for the agent unless it repeats one already accepted."""
        dedup = _key_of(message, key)
        if dedup is not None:
            digest = hashlib.blake2b(body, digest_size=16).digest()
            seen = self._ledger.get(dedup)
            if seen is not None:
                if seen[0] == digest:
                    logger.info(
                        "connection %s: a retry of %s was not run again", self.connection_id, dedup
                    )
                    return Accepted.DUPLICATE
                if not seen[1] and dedup.startswith("request:"):
                    return Accepted.CONFLICT
            answered = not dedup.startswith("request:")
            self._ledger[dedup] = (digest, answered)
            self._ledger.move_to_end(dedup)
            while len(self._ledger) > LEDGER_SIZE:
                self._ledger.popitem(last=False)
            params = message.get("params") if isinstance(message, dict) else None
            named = params.get("sessionId") if isinstance(params, dict) else None
            if isinstance(named, str) and dedup.startswith("request:"):
                self._naming[dedup.replace("request:", "response:", 1)] = named
        self._inbox.put_nowait(body)
        return Accepted.QUEUED

    def deliver_oversized(self, item: Oversized) -> None:
        self._inbox.put_nowait(item)

    def expect_answer(self, message: Any) -> asyncio.Future[bytes]:
        """A future for the agent's answer to request `message`, which then skips the stream
        (the `initialize` POST returns its answer in the HTTP response)."""
        key = _key_of(message, None)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        if key is not None:
            self._waiters[key.replace("request:", "response:", 1)] = future
        return future

    def can_resume(self, cursor: int) -> bool:
        """Whether every message after `cursor` is still retained (or none was sent yet)."""
        first = self._log[0][0] if self._log else self._next
        return first - 1 <= cursor <= self.last_cursor

    def attach(self, cursor: int | None) -> tuple[int, int] | None:
        """Make a new sink the live one, continuing after `cursor` (None: after what the previous
        sink took). Returns (generation, cursor), or None when `cursor` cannot be resumed."""
        if cursor is None:
            cursor = self._taken
        if not self.can_resume(cursor):
            return None
        self._cancel_grace()
        self._generation += 1
        self._attached = True
        self._taken = cursor
        self._notify()  # the previous sink wakes up and finds itself fenced off
        return self._generation, cursor

    def detach(self, generation: int) -> None:
        """A sink ended; if it was the live one, the grace period starts."""
        if generation == self._generation and self._attached:
            self._attached = False
            self._start_grace()

    async def deliveries(self, cursor: int, generation: int) -> AsyncIterator[tuple[int, bytes]]:
        """The messages after `cursor` for the sink of `generation`, live, until that sink is
        superseded or the connection ends (then the caller checks which)."""
        while generation == self._generation:
            if self._log and self._log[-1][0] > cursor:
                number, data = self._log[cursor + 1 - self._log[0][0]]
                cursor = self._taken = number
                if len(self._log) >= self._retention:
                    self._notify()  # a sender may be waiting for room
                yield number, data
            elif self._ended:
                return
            else:
                await self._wait_changed()

    def superseded(self, generation: int) -> bool:
        return generation != self._generation

    async def until_ended(self) -> None:
        while not self._ended:
            await self._wait_changed()

    def end(self, why: str) -> None:
        if self._ended:
            return
        logger.debug("connection %s ended: %s", self.connection_id, why)
        self._ended = True
        self._cancel_grace()
        self._inbox.put_nowait(None)
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError(why))
        self._waiters.clear()
        self._notify()

    # -- internals ----------------------------------------------------------------------------------

    def _settle(self, key: str | None, response: dict[str, Any]) -> None:
        """Note an answer to a client request (its id may be reused now) and any session it
        established."""
        named = self._naming.pop(key, None) if key is not None else None
        if key is not None:
            request = key.replace("response:", "request:", 1)
            seen = self._ledger.get(request)
            if seen is not None:
                self._ledger[request] = (seen[0], True)
        if "result" not in response:
            return
        result = response["result"]
        if isinstance(result, dict) and isinstance(result.get("sessionId"), str):
            self.sessions.add(result["sessionId"])
        elif named is not None:  # session/load, session/resume: attached by a success
            self.sessions.add(named)

    def _start_grace(self) -> None:
        if self._grace is None and not self._ended:
            loop = asyncio.get_running_loop()
            self._grace = loop.call_later(self._grace_seconds, self._expire)

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _expire(self) -> None:
        self._grace = None
        if not self._attached:
            self.end(f"no client for {self._grace_seconds} s")

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_changed(self) -> None:
        await self._changed.wait()


def _decode(message: bytes) -> Any:
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError:
        return None


__all__ = ["LEDGER_SIZE", "Accepted", "DurableConnection"]
