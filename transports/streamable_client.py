"""The client of ACP's remote transport over Streamable HTTP (`remote.py`), resuming by itself.

`connect_streamable(url, ...)` checks that the endpoint answers and accepts the token, then
waits for the first message, which must be `initialize`: it is POSTed and its answer (the POST's
body) is the first message `receive()` returns; the connection id it brings starts the stream
reader (`GET` with `Acp-Connection-Id`). Every later message is POSTed on its own, in order,
with `Acp-Session-Id` where the transport asks for it.

Drops are handled here, invisibly to the caller:

- A stream that breaks is reopened with `Last-Event-ID` = the last cursor received, with
  backoff; the server replays what was missed. A refusal (409: not retained; 404: the connection
  is gone) ends the stream: `receive()` returns None and `close_code` is 1006 (lost); an
  `event: close` from the server ends it with 1000 (ended by the server).
- A POST that fails in transit is sent again, same bytes, with backoff: the server does not run
  a retried request twice.
- A POST the server refuses (400/404/409/413/415/501) is answered here with a JSON-RPC error,
  when it was a request, so the caller is never left waiting for an answer that cannot come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx
import orjson
from httpx_sse import aconnect_sse

from transports.backoff import Backoff
from transports.remote import CONNECTION_ID_HEADER, SESSION_ID_HEADER, SESSION_SCOPED
from transports.stream import DEFAULT_MAX_MESSAGE_BYTES, ClosesOnExit, Inbox, Oversized
from transports.websocket import CLOSE_NORMAL, HandshakeRefusedError, bearer_header

logger = logging.getLogger(__name__)

CLOSE_LOST = 1006
"""`close_code` when the connection could not be resumed (the WebSocket code for an abnormal end)."""
RETRIES = 6
RETRY_DELAY = 0.1
RETRY_CAP = 3.0


class StreamableClientStream(ClosesOnExit):
    """One logical remote ACP connection over Streamable HTTP, as a `MessageStream`."""

    resumable = False  # resumes by itself: a caller never has to
    resumed = False
    refusal: str | None = None

    def __init__(self, url: str, *, token: str | None, limit: int) -> None:
        self._url = url
        self._auth = bearer_header(token)
        self._limit = limit
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
        self._inbox = Inbox()
        self._lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self.connection_id: str | None = None
        self.cursor = 0
        self._close_code: int | None = None

    @property
    def close_code(self) -> int | None:
        return self._close_code

    async def receive(self) -> bytes | Oversized | None:
        return await self._inbox.get()

    async def send(self, message: bytes) -> None:
        if self._close_code is not None:
            raise ConnectionError("the remote ACP connection has ended")
        try:
            decoded = orjson.loads(message)
        except orjson.JSONDecodeError:
            decoded = None
        request = decoded if isinstance(decoded, dict) else {}
        async with self._lock:  # one POST at a time: the server sees them in order
            if self.connection_id is None:
                if request.get("method") == "initialize" and "id" in request:
                    await self._initialize(message)
                else:
                    self._answer(request, -32600, "send initialize first")
                return
            headers = {**self._auth, CONNECTION_ID_HEADER: self.connection_id}
            params = request.get("params")
            session = params.get("sessionId") if isinstance(params, dict) else None
            if request.get("method") in SESSION_SCOPED and isinstance(session, str):
                headers[SESSION_ID_HEADER] = session
            response = await self._post(message, headers)
        if response.status_code in (200, 202):
            return
        reason = _reason(response)
        logger.warning("the remote refused a message: HTTP %d %s", response.status_code, reason)
        self._answer(
            request, -32600, f"the remote refused it: HTTP {response.status_code} {reason}"
        )
        if response.status_code == 404 and "connection" in reason:
            self._end(CLOSE_LOST)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.connection_id is not None and self._close_code is None:
            headers = {**self._auth, CONNECTION_ID_HEADER: self.connection_id}
            with contextlib.suppress(httpx.HTTPError):
                await self._http.delete(self._url, headers=headers, timeout=2.0)
        self._end(CLOSE_NORMAL)
        await self._http.aclose()

    # -- internals ----------------------------------------------------------------------------

    async def probe(self) -> None:
        """Reach the endpoint once: refused credentials raise `HandshakeRefusedError`."""
        try:
            response = await self._http.get(self._url, headers=self._auth, timeout=10.0)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"cannot reach {self._url}: {exc!r}") from exc
        if response.status_code in (401, 403):
            status = response.status_code
            raise HandshakeRefusedError(status, f"{self._url} refused the token: HTTP {status}")
        if response.status_code != 400:  # what /acp answers a GET without a connection id
            status = response.status_code
            raise HandshakeRefusedError(
                status, f"{self._url} is not an ACP endpoint: HTTP {status}"
            )

    async def _initialize(self, message: bytes) -> None:
        response = await self._post(message, dict(self._auth))
        connection_id = response.headers.get(CONNECTION_ID_HEADER)
        if response.status_code != 200 or not connection_id:
            request = orjson.loads(message)
            self._answer(request, -32603, f"initialize failed: HTTP {response.status_code}")
            return
        self.connection_id = connection_id
        self._inbox.put_nowait(response.content)
        self._reader = asyncio.create_task(self._read())

    async def _post(self, message: bytes, headers: dict[str, str]) -> httpx.Response:
        """POST `message`, again (same bytes) while the request fails in transit."""
        headers["Content-Type"] = "application/json"
        backoff = Backoff(RETRY_DELAY, RETRY_CAP, RETRIES)
        while True:
            try:
                return await self._http.post(self._url, content=message, headers=headers)
            except httpx.TransportError as exc:
                if not await backoff.sleep():
                    raise ConnectionError(f"POST to {self._url} failed: {exc!r}") from exc
                logger.info("POST to %s failed (%r); sending it again", self._url, exc)

    async def _read(self) -> None:
        """The connection's stream, reopened after the last cursor whenever it breaks."""
        backoff = Backoff(RETRY_DELAY, RETRY_CAP, RETRIES)
        code = CLOSE_LOST
        try:
            while True:
                try:
                    outcome = await self._listen(backoff)
                except httpx.HTTPError as exc:
                    outcome = f"dropped ({exc!r})"
                if outcome == "ended":
                    code = CLOSE_NORMAL
                    return
                if outcome.startswith("refused"):
                    self.refusal = outcome
                    logger.warning("the remote would not resume the stream: %s", outcome)
                    return
                logger.info("the remote ACP stream %s; resuming after %d", outcome, self.cursor)
                if not await backoff.sleep():
                    logger.warning("the remote ACP stream is lost: %d attempts", backoff.used)
                    return
        finally:
            self._end(code)

    async def _listen(self, backoff: Backoff) -> str:
        headers = {
            **self._auth,
            CONNECTION_ID_HEADER: self.connection_id or "",
            "Accept": "text/event-stream",
        }
        if self.cursor:
            headers["Last-Event-ID"] = str(self.cursor)
        async with aconnect_sse(self._http, "GET", self._url, headers=headers) as source:
            status = source.response.status_code
            if status in (404, 409):
                await source.response.aread()
                return f"refused: HTTP {status} {_reason(source.response)}"
            if status != 200:
                return f"answered HTTP {status}"
            backoff.reset()
            async for event in source.aiter_sse():
                if event.event == "close":
                    return "ended"
                if event.event != "message":
                    continue
                if event.id.isdigit():
                    if int(event.id) <= self.cursor:
                        continue  # already have it
                    self.cursor = int(event.id)
                await self._inbox.put(event.data.encode())
        return "dropped"

    def _answer(self, request: dict[str, Any], code: int, message: str) -> None:
        """A JSON-RPC error for `request` when it is one (a notification gets nothing)."""
        if "id" in request and "method" in request:
            error = {"code": code, "message": message}
            reply = {"jsonrpc": "2.0", "id": request["id"], "error": error}
            self._inbox.put_nowait(orjson.dumps(reply))

    def _end(self, code: int) -> None:
        if self._close_code is None:
            self._close_code = code
            self._inbox.put_nowait(None)


def _reason(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return str(response.json()["error"])
    return ""


async def connect_streamable(
    url: str, *, token: str | None = None, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> StreamableClientStream:
    """A client for `url` (http:// or https://) whose first message must be `initialize`.
    Raises `HandshakeRefusedError` (401/403, or not an ACP endpoint) or `ConnectionError`."""
    stream = StreamableClientStream(url, token=token, limit=max_message_bytes)
    try:
        await stream.probe()
    except BaseException:
        await stream._http.aclose()
        raise
    return stream


__all__ = ["StreamableClientStream", "connect_streamable"]
