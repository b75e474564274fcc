"""The `backends:` section: each entry is router_core's own `BackendSpec`, so every field is
declared once, there; this adds only what a config file needs on top."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator

from junction.config.fields import ConfigModel, check_http_url
from router_core.settings import BackendSpec

__all__ = ["NAME_FROM_KEY", "BackendConfig"]

NAME_FROM_KEY = "(key)"
"""The input key `JunctionConfig` fills with an entry's key in `backends:`; a `name` written in
the entry is an unknown key, as the name is the key."""


class BackendConfig(BackendSpec, ConfigModel):
    """One LLM endpoint the router may send model turns to."""

    # router_core's BackendSpec named by its key in `backends:`, with unknown keys refused and
    # its URL checked like every URL in the file. Header values that look like credentials are
    # redacted in output (redaction.py).

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Re-declared only to take it from the map key and keep it out of dumps (a dump of the
    # config must validate again as a config).
    name: str = Field(min_length=1, max_length=200, validation_alias=NAME_FROM_KEY, exclude=True)

    @field_validator("url", mode="before")
    @classmethod
    def _http_url_as_written(cls, value: Any) -> Any:
        return check_http_url(value) if isinstance(value, str) else value
