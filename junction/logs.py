"""Logging for the whole program: stderr only, plain or JSON lines, secrets redacted.

Stdout is the protocol channel in `--mode stdio` and `--mode mcp`, so no log line may ever reach
it: `configure_logging` replaces every handler on the root logger with one that writes to
whatever `sys.stderr` is at the time of each record.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import logging
import os
import re
import sys
import threading
import time
from typing import Any, TextIO

import orjson

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "JsonFormatter",
    "RedactingFilter",
    "configure_logging",
    "direct_handler",
    "redact",
    "redact_repeated",
    "register_secret",
]

#: Level names accepted by `configure_logging` (and by the config's `logging.level`).
LOG_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
#: Output formats accepted by `configure_logging` and `$JUNCTION_LOG_FORMAT`.
LOG_FORMATS = ("plain", "json")

REDACTED = "***"
#: Registered secrets shorter than this are ignored: redacting "a" everywhere would destroy logs.
MIN_SECRET_LENGTH = 4

# One pass over the text finds every kind of secret; the group that matched says what to keep.
_SECRET_KEY_NAMES = (
    r"x-api-key|api[_-]?key|access[_-]?token|refresh[_-]?token|client[_-]?secret"
    r"|password|passwd|secret|token"
)
_PATTERNS = re.compile(
    # "Authorization: Bearer abc", "'authorization': 'Basic abc'", "authorization=abc"
    r"(?P<auth>\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token)\s+)?)[^\s\"',;}]+"
    # "Bearer abc" on its own (a header value logged without its name); lower-case "bearer" only
    # before something token-sized, so English prose ("bearer of bad news") survives
    r"|(?P<bearer>\b(?-i:Bearer|BEARER)\s+|\b(?-i:bearer)\s+(?=[A-Za-z0-9._~+/=-]{16}))"
    r"[A-Za-z0-9._~+/=-]+"
    # "api_key=abc", "\"api_key\": \"abc\"", "X-API-Key: abc", "?token=abc&"
    rf"|(?P<kv>\b(?:{_SECRET_KEY_NAMES})[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;}}]+"
    # OpenAI/Anthropic-style keys: sk-..., sk-proj-..., sk-ant-...
    r"|(?P<sk>)\bsk-[A-Za-z0-9_-]{16,}",
    re.IGNORECASE,
)


class _SecretRegistry:
    """Literal secrets to redact; the compiled pattern is swapped atomically on each change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self.pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        with self._lock:
            if value in self._values:
                return
            values = self._values | {value}
            # Longest first, so a secret that contains another is redacted whole.
            alternation = "|".join(re.escape(s) for s in sorted(values, key=len, reverse=True))
            self.pattern = re.compile(alternation)
            self._values = values

    def clear(self) -> None:
        with self._lock:
            self._values = frozenset()
            self.pattern = None


_registry = _SecretRegistry()


def register_secret(value: str) -> None:
    """Redact this exact string from every later log record (API keys loaded from config)."""
    if len(value) >= MIN_SECRET_LENGTH:
        _registry.add(value)


def _clear_secrets() -> None:
    """Forget registered secrets (for tests)."""
    _registry.clear()


def _keep_prefix(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group == "sk":
        return REDACTED
    return f"{match.group(group or 0)}{REDACTED}"


def redact(text: str) -> str:
    """Return `text` with bearer tokens, API keys and registered secrets replaced by `***`."""
    literal = _registry.pattern
    if literal is not None:
        text = literal.sub(REDACTED, text)
    return _PATTERNS.sub(_keep_prefix, text)


_REPEATED: dict[str, str] = {}
_REPEATED_LIMIT = 1024
_repeated_for: list[re.Pattern[str] | None] = [None]


def redact_repeated(text: str) -> str:
    """`redact(text)`, remembered for strings that come again and again (request paths): a dict
    lookup instead of two regex passes. Bounded (a client choosing paths only empties it), and
    forgotten when a secret is registered."""
    pattern = _registry.pattern
    if pattern is not _repeated_for[0]:
        _REPEATED.clear()
        _repeated_for[0] = pattern
    clean = _REPEATED.get(text)
    if clean is None:
        if len(_REPEATED) >= _REPEATED_LIMIT:
            _REPEATED.clear()
        clean = _REPEATED[text] = redact(text)
    return clean


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName", "_junction_redacted"}
)


class RedactingFilter(logging.Filter):
    """Rewrites each record in place so no handler, ours or a library's, can print a secret.

    Installed on the handler, so it only runs for records that passed the level checks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_junction_redacted", False):
            return True
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg = clean
            record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXC_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and isinstance(value, str):
                record.__dict__[key] = redact(value)
        record._junction_redacted = True
        return True


_EXC_FORMATTER = logging.Formatter()


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    """`2026-12-02T03:22:34` for a Unix second: formatted once per second, not per record."""
    return _dt.datetime.fromtimestamp(second, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _msecs(created: float) -> int:
    """A record's `msecs` for a time (as `LogRecord` computes it)."""
    return int((created - int(created)) * 1000)


class _PlainFormatter(logging.Formatter):
    """`PLAIN_FORMAT`, with the local time formatted once per second, not per record."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT, PLAIN_DATEFMT)
        self._last: tuple[int, str] = (-1, "")
        """(second, its text), swapped whole so threads never pair one's text with another's."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self._time_text(record.created)

    def _time_text(self, created: float) -> str:
        second = int(created)
        last = self._last
        if last[0] != second:
            last = self._last = (second, time.strftime(PLAIN_DATEFMT, self.converter(created)))
        return last[1]

    def direct(self, created: float, name: str, message: str, extra: dict[str, Any]) -> str:
        """What `format` makes of an INFO record of `name` with `message` (no exception)."""
        return f"{self._time_text(created)}.{_msecs(created):03d} INFO    {name}: {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, exc (if any), then `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            key: value for key, value in record.__dict__.items() if key not in _RECORD_ATTRS
        }
        entry["ts"] = _utc_second(int(record.created)) + f".{int(record.msecs):03d}Z"
        entry["level"] = record.levelname.lower()
        entry["logger"] = record.name
        entry["msg"] = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return self._line(entry)

    def direct(self, created: float, name: str, message: str, extra: dict[str, Any]) -> str:
        """What `format` makes of an INFO record of `name` with `message` and `extra`."""
        entry = dict(extra)
        entry["ts"] = _utc_second(int(created)) + f".{_msecs(created):03d}Z"
        entry["level"] = "info"
        entry["logger"] = name
        entry["msg"] = message
        return self._line(entry)

    @staticmethod
    def _line(entry: dict[str, Any]) -> str:
        try:
            return orjson.dumps(entry, default=str).decode()
        except (TypeError, orjson.JSONEncodeError):
            # orjson rejects e.g. ints beyond 64 bits and non-str keys; the stdlib copes.
            return json.dumps(entry, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the current `sys.stderr`, so redirection (and pytest's capture) is honoured."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """Ignore: the stream is always the current stderr."""

    def write_direct(self, name: str, message: str, extra: dict[str, Any]) -> None:
        """Write the line an INFO record of logger `name` would make, without making the record
        (its fields, the logger hierarchy walk, the handler's lock: most of a record's cost).

        Only for records that would reach this handler alone (`direct_handler` says when) and
        whose strings are already redacted; the line is the same one, byte for byte."""
        formatter = self.formatter
        assert isinstance(formatter, _PlainFormatter | JsonFormatter)
        try:
            _write_line(formatter.direct(time.time(), name, message, extra))
        except RecursionError:
            raise
        except Exception:
            self.handleError(logging.makeLogRecord({"name": name, "msg": message, **extra}))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            _write_line(self.format(record))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _write_line(line: str) -> None:
    """StreamHandler.emit's write, without the second trip through the handler's lock to flush
    a line-buffered stream (stderr is, since Python 3.9) that the newline has just flushed."""
    stream = sys.stderr
    stream.write(line + "\n")
    if not getattr(stream, "line_buffering", False):
        stream.flush()


PLAIN_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
PLAIN_DATEFMT = "%Y-%m-%d %H:%M:%S"


_installed: list[_StderrHandler | None] = [None]
"""The handler `configure_logging` put on the root logger last."""


def direct_handler(logger: logging.Logger) -> _StderrHandler | None:
    """The handler `configure_logging` installed, when an INFO record of `logger` would reach
    it and nothing else: no handler or filter on the way up, the handler at INFO or below with
    only its own filter. Then `write_direct` may stand in for the record (an application that
    adds a handler or filter anywhere on the way gets records again)."""
    handler = _installed[0]
    if handler is None or handler.level > logging.INFO or len(handler.filters) != 1:
        return None
    current: logging.Logger | None = logger
    while current is not None:
        if current.filters or current.disabled:
            return None
        if current.parent is None or not current.propagate:  # the root, or where records stop
            return handler if current.handlers == [handler] else None
        if current.handlers:
            return None
        current = current.parent
    return None


def configure_logging(level: str, fmt: str | None = None, *, access_log: bool = True) -> None:
    """Send all logging to stderr at `level`, as plain text or JSON lines, with secrets redacted.

    `$JUNCTION_LOG_FORMAT` (`plain` or `json`) overrides `fmt`, so a launcher (an IDE, CI) can ask
    for JSON without editing the config. Calling this again reconfigures; handlers are replaced,
    never added, so no line is printed twice.
    """
    numeric = LOG_LEVELS.get(level.strip().lower())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}; expected one of {', '.join(LOG_LEVELS)}")
    if fmt is not None and fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(LOG_FORMATS)}")
    env_fmt = os.environ.get("JUNCTION_LOG_FORMAT", "").strip().lower()
    bad_env = bool(env_fmt) and env_fmt not in LOG_FORMATS
    chosen = env_fmt if env_fmt in LOG_FORMATS else (fmt or "plain")

    handler = _StderrHandler()
    handler.addFilter(RedactingFilter())
    _installed[0] = handler
    if chosen == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_PlainFormatter())

    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    access = logging.getLogger("junction.access")
    access.setLevel(logging.NOTSET if access_log else logging.WARNING)
    logging.captureWarnings(True)
    if bad_env:
        logging.getLogger("junction").warning(
            "ignoring JUNCTION_LOG_FORMAT=%r (expected plain or json)", env_fmt
        )
