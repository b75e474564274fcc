"""OpenTelemetry traces from a real `junction --mode serve`, exported over OTLP (http/protobuf
and gRPC) to a real receiver (tests/otlp_receiver.py): the span tree of a traced request, the
GenAI attributes of its model call, and the traceparent the model server was sent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from junction.config import ConfigError, JunctionConfig
from junction.config.loading import validate_config
from junction.telemetry import ExportSettings, export_settings
from tests.otlp_receiver import Span, grpc_receiver, http_receiver
from tests.router_core.llm_servers import Reply, openai_server
from tests.test_serve_mode import start, stop

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
)


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OTEL_* from the machine; exports every 50 ms so a test does not wait 5 s a batch."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")


def backend_config(url: str) -> str:
    return f"backends:\n  fake: {{type: openai, url: '{url}/v1', models: [m1]}}\n"


def parent_in(traceparent: str | None) -> tuple[str, str]:
    assert traceparent is not None
    version, trace_id, parent_id, flags = traceparent.split("-")
    assert (version, flags) == ("00", "01")
    return trace_id, parent_id


def only(spans: list[Span]) -> Span:
    assert len(spans) == 1, spans
    return spans[0]


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "m1", "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_chat_completion_spans_over_http_protobuf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A traced request: Junction's server span is the caller's child, the model call is the
    server span's child with GenAI attributes, and the model server is told the model call
    is its parent."""
    async with http_receiver() as receiver, openai_server(models=["m1"]) as model:
        model.default = Reply(text="traced", usage=(11, 7))
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        served = await start(tmp_path, backend_config(model.url))
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                url = f"{served.base}/v1/chat/completions"
                headers = {"traceparent": TRACEPARENT, "user-agent": "telemetry-test"}
                plain = await http.post(url, json=chat_body(), headers=headers)
                streamed = await http.post(
                    url,
                    json=chat_body(stream=True, stream_options={"include_usage": True}),
                    headers=headers,
                )
        finally:
            assert await stop(served) == 0  # flushes what is still queued
        await receiver.wait_for(lambda spans: len([s for s in spans if s.name == "chat m1"]) >= 2)
    assert plain.status_code == streamed.status_code == 200
    assert set(receiver.content_types) == {"application/x-protobuf"}
    servers = receiver.named("POST /v1/chat/completions")
    assert len(servers) == 2
    sent = [request.headers.get("traceparent") for request in model.chat_requests]
    for server, traceparent in zip(servers, sent, strict=True):
        assert (server.kind, server.trace_id, server.parent_id) == ("server", TRACE_ID, PARENT_ID)
        assert server.attributes["http.request.method"] == "POST"
        assert server.attributes["http.route"] == "/v1/chat/completions"
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["user_agent.original"] == "telemetry-test"
        assert server.resource["service.name"] == "junction"
        call = only(receiver.children(server))
        assert (call.name, call.kind, call.trace_id) == ("chat m1", "client", TRACE_ID)
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.request.model"] == "m1"
        assert call.attributes["gen_ai.response.model"] == "m1"
        assert call.attributes["gen_ai.provider.name"] == "openai"
        assert call.attributes["gen_ai.system"] == "openai"
        assert call.attributes["gen_ai.usage.input_tokens"] == 11
        assert call.attributes["gen_ai.usage.output_tokens"] == 7
        assert call.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert call.attributes["junction.backend"] == "fake"
        # The model server's request names the model-call span: its spans hang under ours.
        assert parent_in(traceparent) == (TRACE_ID, call.span_id)
    plain_call, stream_call = (only(receiver.children(server)) for server in servers)
    assert plain_call.attributes["gen_ai.request.stream"] is False
    assert "gen_ai.response.time_to_first_chunk" not in plain_call.attributes
    assert stream_call.attributes["gen_ai.request.stream"] is True
    assert stream_call.attributes["gen_ai.response.time_to_first_chunk"] > 0


async def test_grpc_from_config_starts_a_trace_for_an_untraced_request(tmp_path: Path) -> None:
    """`telemetry:` alone turns tracing on; a request with no traceparent gets a new trace,
    and the model server still learns its parent."""
    async with grpc_receiver() as receiver, openai_server(models=["m1"]) as model:
        model.default = Reply(text="hello")
        config = (
            f"telemetry: {{otlp_endpoint: '{receiver.url}', protocol: grpc, "
            "service_name: gateway-a}\n" + backend_config(model.url)
        )
        served = await start(tmp_path, config)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                reply = await http.post(f"{served.base}/v1/chat/completions", json=chat_body())
        finally:
            assert await stop(served) == 0
        await receiver.wait_for(lambda spans: bool([s for s in spans if s.name == "chat m1"]))
    assert reply.status_code == 200
    server = only(receiver.named("POST /v1/chat/completions"))
    assert server.parent_id == ""  # a root: the trace starts here
    assert server.resource["service.name"] == "gateway-a"
    call = only(receiver.children(server))
    assert call.trace_id == server.trace_id
    assert parent_in(model.chat_requests[0].headers.get("traceparent")) == (
        server.trace_id,
        call.span_id,
    )


async def test_sdk_disabled_sends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with http_receiver() as receiver, openai_server(models=["m1"]) as model:
        model.default = Reply(text="quiet")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        served = await start(tmp_path, backend_config(model.url))
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                reply = await http.post(f"{served.base}/v1/chat/completions", json=chat_body())
        finally:
            assert await stop(served) == 0
    assert reply.status_code == 200
    assert receiver.spans == [] and receiver.content_types == []
    # Untraced, as before: no trace is started on the caller's behalf.
    assert "traceparent" not in model.chat_requests[0].headers


def imported_modules(env: dict[str, str]) -> str:
    """`python -X importtime` of `junction --mode stdio` (stdin closed at once): every module
    the whole start-up imports, on stderr."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "junction", "--mode", "stdio"],
        input=b"",
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout == b""  # stdout is the protocol's, even for logs of tracing
    return done.stderr.decode()


def test_off_imports_no_opentelemetry_sdk(tmp_path: Path) -> None:
    config = tmp_path / "junction.yaml"
    config.write_text(f"store: {{url: 'sqlite:///{tmp_path}/junction.db'}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["JUNCTION_CONFIG"] = str(config)
    off = imported_modules(env)
    assert "junction.telemetry" in off  # the decision was made...
    for module in ("opentelemetry.sdk", "opentelemetry.exporter"):
        assert module not in off  # ...and it cost no SDK import
    on = imported_modules({**env, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert "opentelemetry.sdk.trace" in on
    assert "opentelemetry.exporter.otlp.proto.http" in on


def test_router_core_tracing_imports_no_opentelemetry() -> None:
    """The span API every package imports is OpenTelemetry-free (the SDK comes in only through
    junction.telemetry, when tracing is on)."""
    code = (
        "import sys, router_core.tracing, junction.telemetry, junction.http.telemetry\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, env=env, timeout=60, check=True
    )
    assert done.stdout.decode().strip() == "[]"


@pytest.mark.parametrize(
    ("env", "config", "expected"),
    [
        ({}, {}, None),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
            {},
            ExportSettings("http/protobuf", None, None),
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            },
            {},
            ExportSettings("grpc", None, None),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"},
            {},
            None,
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
            {},
            None,
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            {"otlp_endpoint": "http://c:4318/", "protocol": "http/protobuf"},
            ExportSettings("http/protobuf", "http://c:4318/v1/traces", None),
        ),
        (
            {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
            {"otlp_endpoint": "http://c:4318", "service_name": "s", "headers": {"x-k": "v"}},
            ExportSettings("http/protobuf", "http://c:4318/v1/traces", "s", {"x-k": "v"}),
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            {"otlp_endpoint": "http://c:4317"},
            ExportSettings("grpc", "http://c:4317", None),
        ),
    ],
)
def test_export_settings(
    env: dict[str, str], config: dict[str, Any], expected: ExportSettings | None
) -> None:
    got = export_settings(JunctionConfig.model_validate({"telemetry": config}), env)
    assert got == expected


def test_telemetry_headers_are_secrets() -> None:
    config = JunctionConfig.model_validate(
        {"telemetry": {"otlp_endpoint": "http://c:4318", "headers": {"x-api-key": "hunter2"}}}
    )
    assert config.redacted()["telemetry"]["headers"]["x-api-key"] == "***"
    assert "hunter2" in config.secret_values()


def test_bad_telemetry_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"telemetry\.protocol"):
        validate_config({"telemetry": {"protocol": "udp"}}, "junction.yaml")
