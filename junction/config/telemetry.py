"""The `telemetry:` section: where Junction sends its OpenTelemetry traces.

The standard `OTEL_*` environment variables work as with any OpenTelemetry SDK
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
`OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_SDK_DISABLED`); a key set here wins
over its variable. Tracing is off unless an endpoint is given one way or the other."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from junction.config.fields import ConfigModel, HttpUrlStr

__all__ = ["TelemetryConfig"]


class TelemetryConfig(ConfigModel):
    """OpenTelemetry traces over OTLP; off (and never imported) until an endpoint is set."""

    otlp_endpoint: HttpUrlStr | None = None
    """The collector's OTLP base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` (e.g.
    `http://127.0.0.1:4318` for http/protobuf, which posts to `/v1/traces` under it, or
    `http://127.0.0.1:4317` for grpc). Setting it turns tracing on."""
    protocol: Literal["http/protobuf", "grpc"] | None = None
    """Unset: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    http/protobuf."""
    service_name: str | None = Field(default=None, min_length=1)
    """`service.name` on every span; unset: `OTEL_SERVICE_NAME`, else `junction`."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Sent with every export (a collector's API key, say); merged over
    `OTEL_EXPORTER_OTLP_HEADERS`."""
