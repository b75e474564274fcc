"""Logging: stderr only, plain or JSON lines, secrets redacted from every record."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from junction import logs
from junction.logs import configure_logging, redact, redact_repeated, register_secret


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure_logging rewires the root logger; put pytest's own setup back afterwards."""
    monkeypatch.delenv("JUNCTION_LOG_FORMAT", raising=False)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)
    logs._clear_secrets()


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- where logs go


def test_logs_go_to_stderr_never_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug")
    log = logging.getLogger("junction.test")
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        log.exception("error line")
    out, err = capsys.readouterr()
    assert out == ""
    for text in ("debug line", "info line", "warning line", "error line", "RuntimeError: kaput"):
        assert text in err


def test_subprocess_stdout_stays_clean_in_both_formats() -> None:
    """What an IDE sees: a child whose stdout is the protocol channel."""
    script = textwrap.dedent(
        """
        import logging, warnings
        from junction.logs import configure_logging
        configure_logging("debug", "{fmt}")
        logging.getLogger("junction").info("hello %s", "world")
        logging.getLogger("some.library").warning("library says hi")
        warnings.warn("a python warning")
        print("PROTOCOL", flush=True)
        """
    )
    for fmt in ("plain", "json"):
        proc = subprocess.run(
            [sys.executable, "-c", script.replace("{fmt}", fmt)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert proc.stdout == "PROTOCOL\n"
        assert "hello world" in proc.stderr
        assert "library says hi" in proc.stderr
        assert "a python warning" in proc.stderr
        if fmt == "json":
            assert [entry["logger"] for entry in json_lines(proc.stderr)] == [
                "junction",
                "some.library",
                "py.warnings",
            ]


def test_reconfiguring_replaces_handlers(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))  # a stray stdout handler
    configure_logging("info")
    configure_logging("info")
    logging.getLogger("junction").info("once")
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("once") == 1


def test_level_filters_records(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING")
    log = logging.getLogger("junction.level")
    log.info("hidden")
    log.warning("shown")
    err = capsys.readouterr().err
    assert "hidden" not in err
    assert "shown" in err


def test_redaction_skipped_for_records_below_level(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = logs.redact

    def counting(text: str) -> str:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(logs, "redact", counting)
    configure_logging("error")
    logging.getLogger("junction").info("not emitted")
    logging.getLogger("junction").debug("not emitted either")
    assert calls == []
    logging.getLogger("junction").error("emitted")
    assert calls == ["emitted"]
    capsys.readouterr()


def test_bad_level_and_format_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("loud")
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure_logging("info", "xml")


def test_plain_format_is_human(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "plain")
    logging.getLogger("junction.plain").warning("disk %d%% full", 93)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith("WARNING junction.plain: disk 93% full")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


# --------------------------------------------------------------------------- JSON lines


def test_json_lines_have_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("debug", "json")
    log = logging.getLogger("junction.json")
    log.info("turn %d done", 3, extra={"session": "s-1", "tokens": 42, "obj": object()})
    try:
        empty: dict[str, int] = {}
        empty["missing"]
    except KeyError:
        log.error("lookup failed", exc_info=True)
    log.warning('multi\nline message with "quotes" and unicode é')
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 3  # one object per line, even for multi-line messages
    first, second, third = json_lines(err)

    assert first["level"] == "info"
    assert first["logger"] == "junction.json"
    assert first["msg"] == "turn 3 done"
    assert first["session"] == "s-1"
    assert first["tokens"] == 42
    assert str(first["obj"]).startswith("<object object")
    assert isinstance(first["ts"], str)
    assert first["ts"].endswith("Z")
    assert "T" in first["ts"]
    assert "exc" not in first

    assert second["level"] == "error"
    assert "Traceback (most recent call last)" in str(second["exc"])
    assert "KeyError: 'missing'" in str(second["exc"])

    assert third["msg"] == 'multi\nline message with "quotes" and unicode é'


def test_extra_fields_cannot_override_core_fields(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    logging.getLogger("junction.x").info("real", extra={"level": "fake", "ts": "fake"})
    (entry,) = json_lines(capsys.readouterr().err)
    assert entry["level"] == "info"
    assert entry["ts"] != "fake"


def test_env_selects_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUNCTION_LOG_FORMAT", "json")
    configure_logging("info", "plain")
    logging.getLogger("junction").info("from env")
    (entry,) = json_lines(capsys.readouterr().err)
    assert entry["msg"] == "from env"


def test_bad_env_format_is_warned_about(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUNCTION_LOG_FORMAT", "yaml")
    configure_logging("info", "json")
    (entry,) = json_lines(capsys.readouterr().err)
    assert "JUNCTION_LOG_FORMAT='yaml'" in str(entry["msg"])


# --------------------------------------------------------------------------- redaction

SK = "sk-proj-" + "A1b2C3d4E5f6G7h8"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        (
            "headers={'authorization': 'Basic Zm9vOmJhcg=='}",
            "headers={'authorization': 'Basic ***'}",
        ),
        ("sending Bearer eyJhbGciOi.x.y to upstream", "sending Bearer *** to upstream"),
        ("lower bearer eyJhbGciOiJIUzI1NiJ9.e30.x end", "lower bearer *** end"),
        ("GET /v1?api_key=abc123&model=m1", "GET /v1?api_key=***&model=m1"),
        ('{"api_key": "abc123", "model": "m1"}', '{"api_key": "***", "model": "m1"}'),
        ("X-API-Key: abc123", "X-API-Key: ***"),
        (f"using key {SK} now", "using key *** now"),
        ("sk-ant-api03-" + "x" * 40, "***"),
    ],
)
def test_redact_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "task-abcdefghijklmnopqrstuvwxyz finished",  # contains "sk-" but is not a key
        "sk-short",  # too short to be a key
        "max_tokens=512 temperature=0.2",
        "session s-1 ok; 3 tools; bearer of bad news",
    ],
)
def test_redact_leaves_ordinary_text(text: str) -> None:
    assert redact(text) == text


def test_registered_secrets_are_redacted_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    register_secret("plainsecretvalue")
    register_secret("plainsecretvalue-longer")
    register_secret("abc")  # too short: would mangle every log line
    log = logging.getLogger("junction.secret")
    log.info("key is %s and %s (abc)", "plainsecretvalue", "plainsecretvalue-longer")
    log.info("in extra", extra={"upstream": "url?k=plainsecretvalue"})
    try:
        raise ConnectionError(f"refused with Bearer tok123 and {SK}")
    except ConnectionError:
        log.exception("upstream failed")
    err = capsys.readouterr().err
    assert "plainsecretvalue" not in err
    assert "tok123" not in err
    assert SK not in err
    first, second, third = json_lines(err)
    assert first["msg"] == "key is *** and *** (abc)"
    assert second["upstream"] == "url?k=***"
    assert "ConnectionError: refused with Bearer *** and ***" in str(third["exc"])


def test_redaction_applies_to_plain_output_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    logging.getLogger("httpx").info("HTTP Request: POST with Authorization: Bearer zzz999")
    err = capsys.readouterr().err
    assert "zzz999" not in err
    assert "Authorization: Bearer ***" in err


def test_redaction_survives_a_second_handler(capsys: pytest.CaptureFixture[str]) -> None:
    """The record itself is cleaned, so another handler on the same record sees no secret."""
    configure_logging("info")
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logging.getLogger().addHandler(Collect())
    logging.getLogger("junction").info("api_key=%s", "verysecret")
    assert seen == ["api_key=***"]
    assert "verysecret" not in capsys.readouterr().err


# --------------------------------------------------------------------------- access records


def test_access_records_in_both_formats_redact_the_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from junction.http.access_log import log_access

    register_secret("hunter2-the-secret")
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/a2a/agents/hunter2-the-secret",
        "state": {"principal": "bob"},
    }
    configure_logging("info", "plain")
    log_access(scope, surface="a2a", status=200, seconds=0.0125, trace_id="ab" * 16)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(
        f"INFO    junction.access: POST /a2a/agents/*** 200 12.5ms principal=bob trace={'ab' * 16}"
    )
    configure_logging("info", "json")
    log_access(scope, surface="a2a", status=200, seconds=0.0125, trace_id=None)
    (entry,) = json_lines(capsys.readouterr().err)
    assert entry["path"] == "/a2a/agents/***"
    assert "hunter2" not in str(entry)
    assert (entry["principal"], entry["trace_id"], entry["duration_ms"]) == ("bob", None, 12.5)
    # Turned off by the config (`logging.access_log: false`), and back on by a reconfigure.
    configure_logging("info", "plain", access_log=False)
    log_access(scope, surface="a2a", status=200, seconds=0.0125, trace_id=None)
    assert capsys.readouterr().err == ""
    configure_logging("info", "plain")
    log_access(scope, surface="a2a", status=200, seconds=0.0125, trace_id=None)
    assert "junction.access" in capsys.readouterr().err


def test_an_access_record_is_the_record_logger_info_would_make() -> None:
    """The access log builds its records without `LogRecord.__init__`: every field a handler
    or formatter may read must still be there, with this moment's time, thread and process."""
    from junction.http.access_log import ACCESS, log_access

    made: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            made.append(record)

    keep = Keep()
    ACCESS.addHandler(keep)
    try:
        configure_logging("info", "plain")
        scope = {"type": "http", "method": "GET", "path": "/health", "state": {}}
        before = time.time()
        log_access(scope, surface="health", status=200, seconds=0.001, trace_id=None)
        ACCESS.info("GET /health 200 1.0ms")
    finally:
        ACCESS.removeHandler(keep)
    fast, usual = made
    assert set(usual.__dict__) <= set(fast.__dict__)
    assert before <= fast.created <= time.time()
    assert fast.msecs == int((fast.created - int(fast.created)) * 1000)
    assert abs(fast.relativeCreated - usual.relativeCreated) < 1000
    assert (fast.thread, fast.threadName, fast.process) == (
        usual.thread,
        usual.threadName,
        usual.process,
    )
    assert (fast.levelname, fast.name, fast.getMessage()) == ("INFO", "junction.access", usual.msg)
    for name in ("status", "surface", "duration_ms"):
        assert name in fast.__dict__


def test_remembered_path_redaction_forgets_when_a_secret_is_registered() -> None:
    """Access records redact paths through a cache (`redact_repeated`): a secret registered
    after a path was first seen is still redacted from it."""
    path = "/v1/models/laterregisteredsecret"
    assert redact_repeated(path) == path
    register_secret("laterregisteredsecret")
    assert redact_repeated(path) == "/v1/models/***"
    assert (
        redact_repeated("/v1/x?api_key=abcdef")
        == redact("/v1/x?api_key=abcdef")
        != "/v1/x?api_key=abcdef"
    )


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_a_direct_access_line_is_the_line_its_record_would_make(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With only Junction's handler listening, access lines are written without making a
    record (`direct_handler`); an application's handler or filter anywhere on the way gets
    records again, and the line is the same either way."""
    from junction.http.access_log import ACCESS, log_access
    from junction.logs import direct_handler

    configure_logging("info", fmt)
    scope = {"type": "http", "method": "GET", "path": "/v1/models", "state": {"principal": "p"}}
    assert direct_handler(ACCESS) is not None
    log_access(scope, surface="openai", status=200, seconds=0.0021, trace_id="cd" * 16)
    direct = capsys.readouterr().err.splitlines()

    class Watch(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            watched.append(record.getMessage())
            return True

    watched: list[str] = []
    ACCESS.addFilter(watch := Watch())
    try:
        assert direct_handler(ACCESS) is None
        log_access(scope, surface="openai", status=200, seconds=0.0021, trace_id="cd" * 16)
    finally:
        ACCESS.removeFilter(watch)
    recorded = capsys.readouterr().err.splitlines()
    assert watched == [f"GET /v1/models 200 2.1ms principal=p trace={'cd' * 16}"]
    assert len(direct) == len(recorded) == 1
    if fmt == "plain":
        stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} "
        assert re.match(stamp, direct[0]) and re.match(stamp, recorded[0])
        assert direct[0][24:] == recorded[0][24:]
        assert direct[0][24:] == f"INFO    junction.access: {watched[0]}"
    else:
        (one,), (other,) = json_lines(direct[0]), json_lines(recorded[0])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", one.pop("ts"))
        other.pop("ts")
        assert list(one) == list(other) and one == other
        assert one["msg"] == watched[0] and one["duration_ms"] == 2.1
    for logger in (logging.getLogger(), logging.getLogger("junction")):
        logger.addHandler(extra := logging.NullHandler())
        try:
            assert direct_handler(ACCESS) is None  # another handler on the way sees records
        finally:
            logger.removeHandler(extra)
    assert direct_handler(ACCESS) is not None
