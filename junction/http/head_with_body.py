"""A response's head and the start of its body in one write, not two.

uvicorn writes a response's status line and headers the moment the app sends
`http.response.start`, and its body at the next `http.response.body`: two `send()` calls and two
TCP segments for every answer, the first of which wakes the client for nothing. In a profile of
serve mode the second system call was ~10% of the CPU a relayed chat completion costs.

`HeadHeldTransport` sits between uvicorn's HTTP protocol and the connection's transport and
holds a response head until the next write (the body, which follows at once for every whole
answer) or the end of the event loop's current turn (a stream whose first event is not ready
yet still gets its headers straight away). Everything else passes through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

_HEAD = b"HTTP/1."
"""How a response head (and only it, in practice) starts; a body that happens to start so is
merely held until the end of the turn."""

_JOIN_LIMIT = 64 * 1024
"""Bodies up to this size are copied behind the head (one write); larger ones follow it."""


class HeadHeldTransport(asyncio.Transport):
    """The connection's transport, with a response head held as the module says."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= _JOIN_LIMIT:
                self._transport.write(held + bytes(data))
                return
            self._transport.write(held)
        elif isinstance(data, bytes) and data.startswith(_HEAD):
            self._held = data
            self._loop.call_soon(self._release)
            return
        self._transport.write(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in list_of_data:
            self.write(data)

    def _release(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def write_eof(self) -> None:
        self._release()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._held or b"")

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()


def head_held(protocol: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """`protocol` (one of uvicorn's HTTP protocol classes) writing through `HeadHeldTransport`."""

    def connection_made(self: Any, transport: Any) -> None:  # uvloop's is no asyncio.Transport
        protocol.connection_made(self, HeadHeldTransport(transport, self.loop))

    return type(f"HeadHeld{protocol.__name__}", (protocol,), {"connection_made": connection_made})


__all__ = ["HeadHeldTransport", "head_held"]
