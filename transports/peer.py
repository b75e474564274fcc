"""One JSON-RPC 2.0 connection that carries traffic both ways.

ACP needs both directions on one pipe: the IDE sends `session/prompt`, and while that request runs the
agent sends `session/request_permission` back and awaits the answer. So a peer is at once a server
(incoming requests dispatched through jsonrpcserver, each in its own task) and a client (outgoing
requests correlated by id). Reading never waits on a handler: every handler runs in a task, and
responses to our own requests are routed as soon as they are read.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, cast

import orjson
from pydantic import BaseModel

from transports.dispatch import (
    Handler,
    Methods,
    RequestId,
    envelope_problem,
    error_response,
    to_jsonable,
    valid_id,
)
from transports.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    PeerClosedError,
    RpcError,
)
from transports.stream import MessageStream, Oversized

log = logging.getLogger(__name__)

CANCEL_METHOD = "$/cancel_request"
CLOSE_GRACE_SECONDS = 2.0

LaneKey = Callable[[str, Any], Hashable]
Answer = tuple[RequestId, asyncio.Task[Any]] | dict[str, Any]
"""A batch member's answer: its id and running task, or an immediate error reply."""


def session_lane(method: str, params: Any) -> Hashable:
    """Notifications of one session keep their order; different sessions do not wait on each other.

    Any JSON may sit in `sessionId`; only a string or an integer names a lane (a list or an object
    is not hashable, and no session has one for an id), the rest share the default lane.
    """
    session = params.get("sessionId") if isinstance(params, dict) else None
    return session if valid_id(session) else None


def _cancelled(request_id: RequestId) -> dict[str, Any]:
    return error_response(request_id, REQUEST_CANCELLED, "Request cancelled")


class JsonRpcPeer:
    """A JSON-RPC 2.0 endpoint over one `MessageStream`: serves registered methods and calls the other side."""

    def __init__(
        self,
        stream: MessageStream,
        *,
        max_concurrency: int = 64,
        request_timeout: float | None = None,
        lane_key: LaneKey = session_lane,
    ) -> None:
        self._stream = stream
        self._request_timeout = request_timeout
        self._lane_key = lane_key
        self.methods = Methods()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._pending: dict[RequestId, asyncio.Future[Any]] = {}
        self._incoming: dict[RequestId, asyncio.Task[dict[str, Any] | None]] = {}
        self._lanes: dict[Hashable, deque[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._next_id = 0
        self._closing = False
        self._closed = False

    # -- registration -------------------------------------------------------------------------

    def on(self, method: str, handler: Handler, params: type[BaseModel] | None = None) -> None:
        """Serve `method` (as a request or a notification); see `Methods.on`."""
        self.methods.on(method, handler, params)

    # -- outgoing -----------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    async def request(
        self, method: str, params: Any = None, *, timeout: float | None = None
    ) -> Any:
        """Call `method` on the other side and return its result.

        Raises `RpcError` for an error reply, `TimeoutError` after `timeout` (or the peer's default),
        and `PeerClosedError` if the connection ends first. Cancelling the awaiting task, or timing
        out, sends `$/cancel_request` so the other side can stop working on it.
        """
        if self._closing:
            raise PeerClosedError("connection is closed")
        self._next_id += 1
        request_id = self._next_id
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = to_jsonable(params)
        try:
            await self._send(message)
            limit = timeout if timeout is not None else self._request_timeout
            if limit is None:
                return await waiter
            async with asyncio.timeout(limit):
                return await waiter
        except (asyncio.CancelledError, TimeoutError):
            answered = waiter.done() and not waiter.cancelled()
            if not answered and not self._closed:
                self._spawn(self.notify(CANCEL_METHOD, {"requestId": request_id}))
            raise
        finally:
            self._pending.pop(request_id, None)

    async def notify(self, method: str, params: Any = None) -> None:
        """Send a notification (no reply is expected or possible)."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = to_jsonable(params)
        await self._send(message)

    async def _send(self, message: Any) -> None:
        if self._closed:
            raise PeerClosedError("connection is closed")
        await self._stream.send(orjson.dumps(message))

    # -- the read loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Read and dispatch until the other side stops sending, then wind down.

        At end of input, requests already running get `CLOSE_GRACE_SECONDS` to finish before they
        are cancelled; when `run` itself is cancelled (a signal), they are cancelled at once.
        """
        ended = False
        try:
            while True:
                message = await self._stream.receive()
                if message is None:
                    ended = True
                    break
                if isinstance(message, Oversized):
                    self._reply_later(
                        error_response(
                            message.id,
                            INVALID_REQUEST,
                            f"message of {message.size} bytes exceeds the limit of "
                            f"{message.limit} bytes",
                        )
                    )
                    continue
                self._receive(message)
        finally:
            await self._shut_down(let_running_finish=ended)

    async def aclose(self) -> None:
        """Stop serving, fail outstanding calls, and close the stream."""
        await self._shut_down()
        await self._stream.aclose()

    def _receive(self, raw: bytes) -> None:
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self._reply_later(error_response(None, PARSE_ERROR, "Parse error", str(exc)))
            return
        if not isinstance(message, list):
            self._accept(message, None)
        elif not message:
            self._reply_later(error_response(None, INVALID_REQUEST, "empty batch"))
        else:
            batch: list[Answer] = []
            for item in message:
                self._accept(item, batch)
            if batch:
                self._spawn(self._answer_batch(batch))

    def _accept(self, message: Any, batch: list[Answer] | None) -> None:
        """Take one message: route a response, queue a notification, or start a request.

        A lone request's task sends its own reply; a batch member's reply is collected into
        `batch` (as a running task or an immediate error) and sent with the others.
        """
        error: dict[str, Any] | None = None
        if not isinstance(message, dict):
            error = error_response(None, INVALID_REQUEST, "a JSON-RPC message must be an object")
        elif "method" not in message:
            if "result" not in message and "error" not in message:
                error = error_response(None, INVALID_REQUEST, 'a request needs a "method" member')
            else:
                self._route_response(message)
        elif (problem := envelope_problem(message)) is not None:
            request_id = message.get("id")
            error = error_response(
                request_id if valid_id(request_id) else None, INVALID_REQUEST, problem
            )
        elif "id" not in message:
            self._accept_notification(message)
        elif message["id"] in self._incoming:
            request_id = message["id"]
            error = error_response(
                request_id, INVALID_REQUEST, f"request id {request_id!r} is already in flight"
            )
        else:
            request_id = message["id"]
            task: asyncio.Task[Any]
            if batch is None:
                task = asyncio.create_task(self._serve(message))
                task.add_done_callback(functools.partial(self._finish_request, request_id))
            else:
                task = asyncio.create_task(self._dispatch_request(message))
                task.add_done_callback(functools.partial(self._forget_incoming, request_id))
                batch.append((request_id, task))
            self._incoming[request_id] = task
        if error is not None:
            if batch is None:
                self._reply_later(error)
            else:
                batch.append(error)

    def _forget_incoming(self, request_id: RequestId, done: asyncio.Task[Any]) -> None:
        if self._incoming.get(request_id) is done:
            del self._incoming[request_id]

    def _finish_request(self, request_id: RequestId, done: asyncio.Task[Any]) -> None:
        """A lone request's task ended: if it was cancelled, its answer is -32800.

        Answered here rather than inside the task, because a task cancelled before its first step
        never runs any of its own code.
        """
        self._forget_incoming(request_id, done)
        if done.cancelled() and not self._closed:
            self._reply_later(_cancelled(request_id))

    def _route_response(self, message: dict[str, Any]) -> None:
        request_id = message.get("id")
        waiter = self._pending.get(request_id) if valid_id(request_id) else None
        if waiter is None or waiter.done():
            log.warning("dropping a response to unknown request id %r", request_id)
            return
        error = message.get("error")
        if error is None:
            waiter.set_result(message.get("result"))
            return
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(code, int) and not isinstance(code, bool):
            waiter.set_exception(RpcError(code, str(error.get("message", "")), error.get("data")))
        else:
            waiter.set_exception(RpcError(INTERNAL_ERROR, "malformed error response", error))

    def _accept_notification(self, message: dict[str, Any]) -> None:
        if message["method"] == CANCEL_METHOD:
            params = message.get("params")
            target = params.get("requestId") if isinstance(params, dict) else None
            task = self._incoming.get(target) if valid_id(target) else None
            if task is not None:
                task.cancel()
            return
        key = self._lane_key(message["method"], message.get("params"))
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            self._spawn(self._drain_lane(key, lane))
        lane.append(message)

    async def _drain_lane(self, key: Hashable, lane: deque[dict[str, Any]]) -> None:
        try:
            while lane:
                await self._dispatch(lane.popleft())
        finally:
            del self._lanes[key]

    async def _dispatch(self, message: dict[str, Any]) -> dict[str, Any] | None:
        return await self.methods.dispatch(message)

    async def _dispatch_request(self, message: dict[str, Any]) -> dict[str, Any] | None:
        async with self._slots:
            return await self._dispatch(message)

    async def _serve(self, message: dict[str, Any]) -> None:
        reply = await self._dispatch_request(message)
        # From here on the request can no longer be cancelled: its answer is decided.
        self._forget_incoming(message["id"], cast(asyncio.Task[Any], asyncio.current_task()))
        if reply is not None:
            await self._send_quietly(reply)

    async def _answer_batch(self, answers: list[Answer]) -> None:
        running = [answer[1] for answer in answers if isinstance(answer, tuple)]
        if running:
            await asyncio.wait(running)
        replies: list[dict[str, Any]] = []
        for answer in answers:
            if isinstance(answer, dict):
                replies.append(answer)
            elif answer[1].cancelled():
                replies.append(_cancelled(answer[0]))
            elif (reply := answer[1].result()) is not None:
                replies.append(reply)
        if replies:
            await self._send_quietly(replies)

    def _reply_later(self, reply: dict[str, Any]) -> None:
        self._spawn(self._send_quietly(reply))

    async def _send_quietly(self, reply: Any) -> None:
        """Send a reply; a peer that has gone away is not an error worth more than a debug line."""
        try:
            await self._send(reply)
        except ConnectionError as exc:
            log.debug("could not send a reply: %s", exc)

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shut_down(self, *, let_running_finish: bool = False) -> None:
        """End the connection without losing what was already accepted.

        Running requests are cancelled (after `CLOSE_GRACE_SECONDS` if `let_running_finish`) and,
        like any cancelled request, answered with -32800; replies on their way get the rest of the
        grace period to go out (a client that closed its end for writing may still be reading).
        Then whatever is left is cancelled.
        """
        if self._closing:
            return
        self._closing = True
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(PeerClosedError("connection closed before the response"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CLOSE_GRACE_SECONDS
        if let_running_finish and self._incoming:
            await asyncio.wait(list(self._incoming.values()), timeout=CLOSE_GRACE_SECONDS / 2)
        incoming = list(self._incoming.values())
        for task in incoming:
            task.cancel()
        if incoming:
            await asyncio.wait(incoming, timeout=max(0.0, deadline - loop.time()))
        # Their -32800 answers were queued by their done callbacks, before wait() returned.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=max(0.0, deadline - loop.time()))
        self._closed = True
        running = [*self._incoming.values(), *self._tasks]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
