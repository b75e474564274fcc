"""The project's one SSE decoder: server-sent events parsed incrementally from raw bytes.

aiohttp has no SSE decoder and the maintained SSE clients (httpx-sse) work on text lines of
httpx responses; this one parses bytes so an event's `data` stays the sender's own bytes (the
OpenAI surface forwards them without re-encoding) and no decode/encode round trip is paid per
chunk. It follows the WHATWG event-stream rules (CR, LF and CRLF line ends, comments, multi-line
data, `event`/`id` fields, a leading BOM); `pending` tells a reader that the body ended in the
middle of an event, which the spec would drop silently. No I/O: feed it whatever bytes arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_LINE_BYTES", "SseEvent", "SseParser"]

MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest SSE/NDJSON line accepted; a longer one is a malformed (or hostile) sender."""


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event. `data` is the sender's bytes (data lines joined by LF)."""

    data: bytes
    event: str = ""
    id: str | None = None


class SseParser:
    """Incremental SSE parser over raw bytes: `feed()` each chunk as it arrives (chunks may split
    lines anywhere, including between CR and LF), get back the events completed by it."""

    __slots__ = ("_data", "_event", "_id", "_partial", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._partial = b""
        self._skip_lf = False
        self._started = False
        self._data: list[bytes] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events `chunk` completes; raises ValueError for a line over `MAX_LINE_BYTES`."""
        if not self._started:
            if not chunk:
                return []
            if len(self._partial) + len(chunk) < 3 and b"\xef\xbb\xbf".startswith(
                self._partial + chunk
            ):
                self._partial += chunk  # might still be a BOM
                return []
            chunk = self._partial + chunk
            self._partial = b""
            self._started = True
            if chunk.startswith(b"\xef\xbb\xbf"):
                chunk = chunk[3:]
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        if self._partial:
            lines[0] = self._partial + lines[0]
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE_BYTES:
            raise ValueError(f"an SSE line is longer than {MAX_LINE_BYTES} bytes")
        events: list[SseEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(SseEvent(b"\n".join(self._data), self._event, self._id))
                    self._data = []
                self._event = ""
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value[:1] == b" " else value)
            elif line[0] == 0x3A:  # ":" comment (keep-alive)
                continue
            else:
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"event":
                    self._event = value.decode("utf-8", "replace")
                elif name == b"id" and b"\0" not in value:
                    self._id = value.decode("utf-8", "replace")
                elif name == b"data":  # "data" with no colon: an empty data line
                    self._data.append(value)
                # "retry" and unknown fields are ignored, as the spec says.
        return events

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered (the stream was cut mid-event)."""
        return bool(self._partial or self._data)
