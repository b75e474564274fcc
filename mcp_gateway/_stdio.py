"""Stdio transport for upstream servers, a drop-in for the SDK's `stdio_client`.

Why not the SDK's own: a child must never outlive Junction, even when Junction is SIGKILLed
(the SDK kills the process group only on an orderly exit), so children get PR_SET_PDEATHSIG on
Linux; the gateway wants the child's last stderr lines and its exit status to say *why* an
upstream failed; and non-JSON lines on stdout are counted and skipped rather than surfaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable

import anyio
import mcp_types as types
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

from mcp_gateway._lines import LineReader, PipeFile
from mcp_gateway._raw_upstream import RawChannel
from mcp_gateway._raw_upstream import enabled as raw_enabled
from mcp_gateway._sdk import TransportStreams
from mcp_gateway.specs import StdioUpstream
from transports.stream import Oversized

log = logging.getLogger("mcp_gateway.stdio")

LINE_LIMIT = 128 * 1024 * 1024
"""Longest line accepted from a child's stdout (a 10 MiB result is one line)."""
_EXIT_GRACE = 2.0
_TERM_GRACE = 2.0
_PR_SET_PDEATHSIG = 1


def _pdeathsig_preexec(parent: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class ChildProcess:
    """What the gateway knows about one spawned child: pid, stderr tail, why it ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pid: int | None = None
        self.returncode: int | None = None
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self.garbage_lines = 0
        self.undelivered: set[object] = set()
        """Ids of requests whose write failed: the child never saw them, so a retry is safe."""

    def describe_exit(self, exit_status: bool = True) -> str:
        parts = []
        if not exit_status:
            pass
        elif self.returncode is not None:
            if self.returncode < 0:
                parts.append(f"process killed by signal {-self.returncode}")
            else:
                parts.append(f"process exited with status {self.returncode}")
        else:
            parts.append("process closed its stdout")
        if self.garbage_lines:
            parts.append(f"{self.garbage_lines} non-JSON line(s) on stdout")
        if self.stderr_tail:
            parts.append(f"stderr: {' | '.join(list(self.stderr_tail)[-3:])}")
        return "; ".join(parts)


@contextlib.asynccontextmanager
async def stdio_transport(
    spec: StdioUpstream, child: ChildProcess, on_eof: Callable[[str], None]
) -> AsyncIterator[TransportStreams]:
    """Spawn `spec` in its own process group and bridge its stdio to SDK message streams."""
    env = get_default_environment() | dict(spec.env)
    # The child's stdout is a pipe of ours, read by a `LineReader` (not asyncio's subprocess
    # stream, which adds a `call_soon` hop and a task wake-up before each line is seen): a
    # response the raw channel waits for is handed over in the pipe's callback (`_lines.py`).
    out_read, out_write = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            spec.command,
            *spec.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=out_write,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=spec.cwd,
            start_new_session=True,
            preexec_fn=_pdeathsig_preexec(os.getpid()),
            limit=LINE_LIMIT,
        )
    except BaseException:
        os.close(out_read)
        raise
    finally:
        os.close(out_write)
    child.pid, child.returncode = process.pid, None
    assert process.stdin is not None and process.stderr is not None
    stdin, stderr = process.stdin, process.stderr
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)

    async def write_failed(request_id: object) -> None:
        child.undelivered.add(request_id)
        await read_send.aclose()

    raw = RawChannel(stdin, write_failed) if raw_enabled() else None  # see _raw_upstream.py
    if raw is not None:
        raw.register(write_send)
    stdout = LineReader(LINE_LIMIT, raw.claim_now if raw is not None else None)
    try:
        loop = asyncio.get_running_loop()
        stdout_pipe, _ = await loop.connect_read_pipe(lambda: stdout, PipeFile(out_read, loop))
    except BaseException:
        _signal_group(process.pid, signal.SIGKILL)
        raise

    async def read_stdout() -> None:
        try:
            while True:
                try:
                    line = await stdout.next_line()
                except OSError as exc:
                    child.garbage_lines += 1
                    log.warning("upstream %s: unreadable stdout (%s); closing", child.name, exc)
                    break
                if isinstance(line, Oversized):
                    child.garbage_lines += 1
                    log.warning(
                        "upstream %s: unreadable stdout (a line of %d bytes, over %d); closing",
                        child.name,
                        line.size,
                        line.limit,
                    )
                    break
                if line is None:
                    break
                if not line.strip() or (raw is not None and await raw.claim(line)):
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                except ValueError:
                    child.garbage_lines += 1
                    log.warning(
                        "upstream %s: skipped a non-JSON-RPC line on stdout: %.120r",
                        child.name,
                        line,
                    )
                    continue
                try:
                    await read_send.send(SessionMessage(message))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    return
                if raw is not None:
                    raw.forwarded()
            with anyio.move_on_after(0.5):  # usually the exit status is known by now
                await process.wait()
            child.returncode = process.returncode
            on_eof(child.describe_exit())  # before EOF reaches the session: the reason wins
        finally:
            read_send.close()
            if raw is not None:
                raw.close()

    async def read_stderr() -> None:
        while line := await stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                child.stderr_tail.append(text[:500])
                log.debug("upstream %s stderr: %s", child.name, text)

    async def write_stdin() -> None:
        item: SessionMessage | None = None
        try:
            async with write_recv:
                async for item in write_recv:
                    data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                    stdin.write(data.encode("utf-8") + b"\n")
                    await stdin.drain()
        except (ConnectionError, OSError, anyio.ClosedResourceError, anyio.BrokenResourceError):
            if item is not None and isinstance(item.message, types.JSONRPCRequest):
                child.undelivered.add(item.message.id)
            await read_send.aclose()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_stdout)
            tg.start_soon(read_stderr)
            tg.start_soon(write_stdin)
            try:
                yield read_recv, write_send
            finally:
                with anyio.CancelScope(shield=True):
                    await _stop(process, child)
                tg.cancel_scope.cancel()
    finally:
        stdout_pipe.close()
        for stream in (read_recv, write_send):
            stream.close()


async def _stop(process: asyncio.subprocess.Process, child: ChildProcess) -> None:
    """Close stdin, give the child a grace period, then TERM and KILL its whole group."""
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()
    if await _exited(process, _EXIT_GRACE):
        child.returncode = process.returncode
    else:
        _signal_group(process.pid, signal.SIGTERM)
        if not await _exited(process, _TERM_GRACE):
            _signal_group(process.pid, signal.SIGKILL)
            await _exited(process, _TERM_GRACE)
    # Whatever the leader did, the rest of its group goes too.
    _signal_group(process.pid, signal.SIGKILL)
    child.returncode = process.returncode


async def _exited(process: asyncio.subprocess.Process, timeout: float) -> bool:
    with anyio.move_on_after(timeout):
        await process.wait()
        return True
    return process.returncode is not None


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def kill_group_now(pid: int | None) -> None:
    """Last-resort synchronous kill (atexit / crash paths): no awaiting, no grace."""
    if pid is not None:
        _signal_group(pid, signal.SIGKILL)
