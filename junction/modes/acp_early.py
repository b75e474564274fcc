"""An editor's `initialize`, answered before the rest of Junction loads.

An editor starts `junction --mode stdio` and sends `initialize` at once; the answer says only
what the agent can do (`acp.handshake`), which needs nothing of the configuration but
`acp.image_prompts`. So the console script (`junction.entry`) reads that first line and answers
it with the standard library alone (~20 ms after the interpreter starts), and the CLI loads
config, pydantic and the transports afterwards (~0.25 s) while the editor is already on its
way to `session/new`. The line is then handed to the agent like any other message, which
records the client's capabilities and starts its services; its own answer, built by the same
function, is dropped (`Replayed`).

There is no early answer (the normal path answers) when stdin is a terminal (a person typing,
who should see a configuration error at once), when `--config` names no file, when the first
line is not an `initialize` request, or when `acp.image_prompts` is not a plain true/false in
the file (a `${VAR}` reference needs the full loader). A configuration that turns out invalid
still ends the process with its error, after the answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transports import MessageStream, Oversized


EARLY_BYTES = 64 * 1024
"""How much of the first line is read here; a longer one is not `initialize` (it goes on to
the agent, which judges its size as it judges every message)."""


class Early:
    """What was read from stdin before the agent started: the first line (handed on), whether
    it ended there (else the rest of it is still in the pipe) and, if it was `initialize` and
    has been answered, that request's id. (A plain class: `dataclasses` and `pathlib` cost
    more to import than this whole stage.)"""

    __slots__ = ("answered", "complete", "line")

    def __init__(self, line: bytes, complete: bool, answered: int | str | None) -> None:
        self.line = line
        self.complete = complete
        self.answered = answered


_READ: list[Early] = []
"""What the console script read, until `take()` hands it to the agent."""


def take() -> Early | None:
    """The line read early, once (None when nothing was read)."""
    return _READ.pop() if _READ else None


def answer_initialize(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """For `--mode stdio`: read stdin's first line and, if it is `initialize`, answer it on
    stdout (see the module's docstring for when this does nothing)."""
    if not _is_stdio(argv) or os.isatty(0):
        return
    image = _image_prompts(_config_path(argv, env))
    if image is None:
        return
    line = _read_line(0, EARLY_BYTES)
    if not line:  # stdin closed before anything came
        return
    complete = line.endswith(b"\n")
    request_id = _initialize_id(line) if complete else None
    if request_id is not None:
        from acp.handshake import initialize_result
        from junction.version import __version__

        result = initialize_result(version=__version__, image=image)
        answer = {"jsonrpc": "2.0", "id": request_id, "result": result}
        _write_all(1, json.dumps(answer, separators=(",", ":")).encode() + b"\n")
    _READ.append(Early(line, complete, request_id))


_VALUED = frozenset({"--mode", "--config", "--mcp-config", "--log-level"})
"""The options of `--mode stdio` that take a value as the next argument."""


def _is_stdio(argv: Sequence[str]) -> bool:
    """`--mode stdio` with nothing else the CLI would refuse first (a command, help)."""
    mode = None
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-h", "--help") or not arg.startswith("-"):
            return False  # help, or a command or stray argument: the CLI answers those
        if arg in _VALUED:
            if index + 1 >= len(argv):
                return False
            if arg == "--mode":
                mode = argv[index + 1]
            index += 2
            continue
        if arg.startswith("--mode="):
            mode = arg.partition("=")[2]
        index += 1
    return mode == "stdio"


def _config_path(argv: Sequence[str], env: Mapping[str, str]) -> str | bool | None:
    """The file `find_config_path` would choose; False when `--config` names a path that is
    not a file (the CLI reports that)."""
    explicit = None
    for index, arg in enumerate(argv):
        if arg == "--config" and index + 1 < len(argv):
            explicit = argv[index + 1]
        elif arg.startswith("--config="):
            explicit = arg.partition("=")[2]
    named = explicit or env.get("JUNCTION_CONFIG")
    if named:
        path = os.path.expanduser(named)
        return path if os.path.isfile(path) else False
    return "junction.yaml" if os.path.isfile("junction.yaml") else None


def _image_prompts(path: str | bool | None) -> bool | None:
    """`acp.image_prompts` (default true), or None when it cannot be known without the full
    loader. The YAML parser is loaded only when the file mentions the key at all."""
    if path is False:
        return None
    if path is None or path is True:
        return True
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError):
        return None
    if "image_prompts" not in text:
        return True
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    section = data.get("acp") if isinstance(data, dict) else None
    value = section.get("image_prompts", True) if isinstance(section, dict) else True
    if value is None:
        return True
    return value if isinstance(value, bool) else None


def _read_line(fd: int, limit: int) -> bytes:
    """Bytes up to and including the first newline (or `limit` bytes), a byte at a time, so
    nothing after it is taken from the agent's own reader (`initialize` is a few hundred
    bytes)."""
    line = bytearray()
    while len(line) < limit:
        byte = os.read(fd, 1)
        if not byte:
            break
        line += byte
        if byte == b"\n":
            break
    return bytes(line)


def _initialize_id(line: bytes) -> int | str | None:
    """The id of a well-formed `initialize` request on `line`, else None."""
    try:
        message: Any = json.loads(line)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("method") != "initialize":
        return None
    request_id = message.get("id")
    params = message.get("params")
    if message.get("jsonrpc") != "2.0" or not isinstance(params, dict):
        return None
    version = params.get("protocolVersion")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= 65535:
        return None  # the agent answers with the validation error
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        return None
    return request_id


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


class Replayed:
    """The agent's stream, with the early line received first (joined to the rest of it when
    it was cut short, and held to the same size limit as every message) and the agent's own
    answer to an `initialize` already answered dropped."""

    def __init__(self, inner: MessageStream, early: Early, max_message_bytes: int) -> None:
        self._inner = inner
        self._early: Early | None = early
        self._answered = early.answered
        self._limit = max_message_bytes
        self.state = getattr(inner, "state", None)

    async def receive(self) -> bytes | Oversized | None:
        early, self._early = self._early, None
        if early is None:
            return await self._inner.receive()
        from transports import Oversized
        from transports.stream import HEAD_BYTES, request_id_in

        line = early.line
        if not early.complete:
            rest = await self._inner.receive()
            if isinstance(rest, Oversized):
                size = len(line) + rest.size
                return Oversized(size, self._limit, request_id_in(line[:HEAD_BYTES]))
            line += rest or b""
        line = line.rstrip(b"\r\n")
        if len(line) > self._limit:
            return Oversized(len(line), self._limit, request_id_in(line[:HEAD_BYTES]))
        return line or await self._inner.receive()

    async def send(self, message: bytes) -> None:
        if self._answered is not None and self._is_answer(message):
            self._answered = None
            return
        await self._inner.send(message)

    def _is_answer(self, message: bytes) -> bool:
        try:
            sent = json.loads(message)
        except ValueError:
            return False
        return isinstance(sent, dict) and "method" not in sent and sent.get("id") == self._answered

    async def aclose(self) -> None:
        await self._inner.aclose()


__all__ = ["Early", "Replayed", "answer_initialize", "take"]
