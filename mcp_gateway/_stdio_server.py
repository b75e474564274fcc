"""Our side of `junction --mode mcp`: stdin/stdout on the event loop, for the SDK's stdio server.

The SDK's `stdio_server()` reads and writes through `anyio.wrap_file`: every line read, every
write and every flush is a hop to a worker thread and back (three per tools/call), which was
a third of the gateway's added latency at concurrency 1. When stdin and stdout are pipes,
sockets or terminals (what an MCP client gives its server), this serves them with asyncio pipe
transports instead, and hands the SDK the same line-oriented file interface it reads and
writes. The descriptor claim is the SDK's (fd 0 reads the null device and fd 1 points at
stderr while serving, so a stray print cannot corrupt the stream; restored on exit), and so
are message parsing and serialisation. Reading is ours, because the SDK's reader hands a bad
line to the session, which only logs it: a client whose request carries an id but is not
valid JSON-RPC would wait forever. Here such a line is answered -32700 (not JSON) or -32600
(not a JSON-RPC message, or over `max_message_bytes`, which is discarded as it streams in,
never held whole), as `--mode stdio` answers them, and the next line is served. Anything else
on stdin (a regular file) gets the SDK's own threaded path.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp_types as types
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError
from pydantic_core import from_json, to_json

from mcp_gateway._fast_lane import FastLane
from mcp_gateway._lines import LineReader, PipeFile
from mcp_gateway._sdk import (
    ContextReceiveStream,
    ContextSendStream,
    claim_stdin,
    claim_stdout,
    create_context_streams,
)
from transports.stream import Oversized

log = logging.getLogger("mcp_gateway.stdio_server")


def _streamable(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def _refusal(line: bytes, problem: ValidationError) -> types.JSONRPCError | None:
    """The error a line the SDK cannot take is owed (None for a malformed response, which gets
    no answer): -32700 when it is not JSON, else -32600 with the request's id when it has one."""
    if any(error["type"] == "json_invalid" for error in problem.errors()):
        detail = problem.errors(include_url=False, include_input=False)[0]["msg"]
        return _error(None, types.PARSE_ERROR, "Parse error", detail)
    message = from_json(line)
    if not isinstance(message, dict):
        return _error(None, types.INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 object")
    if "method" not in message and ("result" in message or "error" in message):
        log.warning("dropping a malformed response (id %.40r)", message.get("id"))
        return None
    request_id = message.get("id")
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        request_id = None
    branch = "JSONRPCRequest" if "id" in message else "JSONRPCNotification"
    detail = "; ".join(
        f"{'.'.join(map(str, error['loc'][1:])) or 'message'}: {error['msg']}"
        for error in problem.errors(include_url=False, include_input=False)
        if error["loc"][:1] == (branch,)
    )
    return _error(request_id, types.INVALID_REQUEST, "Invalid Request", detail or None)


def _has_id(line: bytes) -> bool:
    """Whether a line the SDK took for a notification has an "id" member after all."""
    if b'"id"' not in line:  # notifications are frequent: skip the second parse when possible
        return False
    message = from_json(line)
    return isinstance(message, dict) and "id" in message


def _error(
    request_id: int | str | None, code: int, text: str, data: Any = None
) -> types.JSONRPCError:
    error = types.ErrorData(code=code, message=text)
    if data is not None:
        error.data = data
    return types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error)


class _Pipes:
    """stdin and stdout on the event loop, as the SDK session's message streams."""

    def __init__(
        self,
        reader: LineReader,
        writer: asyncio.StreamWriter,
        lane: FastLane | None = None,
        session_out: ContextSendStream[SessionMessage] | None = None,
    ) -> None:
        """`session_out`: the stream the SDK session writes to (for the lane's answers that
        must follow what the session wrote for them)."""
        self._reader = reader
        self._writer = writer
        self._lane = lane
        self._session_out = session_out

    async def read(self, messages: ContextSendStream[SessionMessage | Exception]) -> None:
        """Hand each valid message to the session; answer the rest here. A client that closed
        our stdout is gone, which ends the input as end of file does. The fast lane, when
        there is one, takes the `tools/call` lines it answers itself (`_fast_lane.py`)."""
        lane = self._lane
        async with messages:
            lane_on = lane.running(self._write, self._write_after) if lane else None
            async with lane_on or contextlib.nullcontext():
                with contextlib.suppress(ConnectionError):
                    while (line := await self._reader.next_line()) is not None:
                        if lane is not None and isinstance(line, bytes) and lane.take(line):
                            continue
                        if (message := await self._check(line)) is not None:
                            await messages.send(SessionMessage(message))

    async def _check(self, line: bytes | Oversized) -> types.JSONRPCMessage | None:
        """The message on `line`, or None when there is none (a blank line, or a bad one, which
        is answered here)."""
        if isinstance(line, Oversized):
            text = f"message of {line.size} bytes exceeds the limit of {line.limit} bytes"
            await self._send(_error(line.id, types.INVALID_REQUEST, text))
            return None
        if not line.strip():
            return None
        try:
            message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
        except ValidationError as problem:
            refusal = _refusal(line, problem)
            if refusal is not None:
                await self._send(refusal)
            return None
        if isinstance(message, types.JSONRPCNotification) and _has_id(line):
            # The SDK takes a request whose id is neither a string nor an integer for a
            # notification; the client would wait for its answer forever.
            text = "Invalid Request: the id must be a string or an integer"
            await self._send(_error(None, types.INVALID_REQUEST, text))
            return None
        if self._lane is not None and isinstance(message, types.JSONRPCRequest):
            self._lane.opened(message.method, message.params)
        return message

    async def write(self, messages: ContextReceiveStream[SessionMessage]) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, ConnectionError):
            async with messages:
                async for item in messages:
                    await self._send(item.message)

    async def _send(self, message: types.JSONRPCMessage) -> None:
        await self._write(message.model_dump_json(by_alias=True, exclude_unset=True).encode())

    async def _write(self, data: bytes) -> None:
        self._writer.write(data + b"\n")  # one write per line: never torn
        await self._writer.drain()

    async def _write_after(self, message: dict[str, Any]) -> None:
        """Write `message` behind what the SDK session has queued (its requests to the
        client, their cancellations)."""
        if self._session_out is None:
            await self._write(to_json(message))
            return
        parsed = types.jsonrpc_message_adapter.validate_python(message, by_name=False)
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._session_out.send(SessionMessage(parsed))


@contextlib.asynccontextmanager
async def serve_streams(
    max_message_bytes: int, lane: FastLane | None = None
) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's stdio server streams, over event-loop pipes when stdin/stdout allow it.

    `max_message_bytes` is the longest line accepted on stdin (`server.max_message_bytes`). The
    gateway refuses oversized tool arguments with its own clearer error, so this is the outer
    bound. `lane` answers the calls it can in front of the SDK (event-loop pipes only).
    """
    if sys.platform == "win32" or not (_streamable(0) and _streamable(1)):
        async with stdio_server() as streams:
            yield streams
        return
    stdin, release_in = claim_stdin(sys.stdin)
    try:
        stdout, release_out = claim_stdout(sys.stdout)
    except BaseException:
        if release_in is not None:
            release_in()
        raise
    flags = [(f, fcntl.fcntl(f.fileno(), fcntl.F_GETFL)) for f in (stdin, stdout)]
    loop = asyncio.get_running_loop()
    read_transport: asyncio.BaseTransport | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        # The lane takes the calls it serves as they arrive (`_lines.py`), the SDK the rest.
        # The transports get duplicates: the SDK's claim restores fd 0/1 from its own.
        reader = LineReader(max_message_bytes, lane.take if lane is not None else None)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: reader, PipeFile(os.dup(stdin.fileno()), loop)
        )
        write_transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, PipeFile(os.dup(stdout.fileno()), loop)
        )
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        read_send, read_recv = create_context_streams[SessionMessage | Exception](0)
        write_send, write_recv = create_context_streams[SessionMessage](0)
        pipes = _Pipes(reader, writer, lane, write_send)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pipes.read, read_send)
            tg.start_soon(pipes.write, write_recv)
            yield read_recv, write_send
    finally:
        if writer is not None and not writer.transport.is_closing():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), 5)
            writer.transport.abort()
        if read_transport is not None:
            read_transport.close()
        for file, flag in flags:  # pipes are shared with the parent: leave them as found
            with contextlib.suppress(OSError):
                fcntl.fcntl(file.fileno(), fcntl.F_SETFL, flag)
        for release in (release_out, release_in):
            if release is not None:
                release()
