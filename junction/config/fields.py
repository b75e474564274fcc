"""What every section shares: unknown keys refused, empty values meaning default, and the field
types for URLs, names and durations."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = ["ConfigModel", "HttpUrlStr", "NonEmptyStr", "Seconds", "check_http_url"]

_URL_ADAPTER: TypeAdapter[AnyHttpUrl] = TypeAdapter(AnyHttpUrl)


def check_http_url(value: str) -> str:
    """Reject non-http(s) URLs at load time rather than at the first request."""
    value = value.strip()
    try:
        _URL_ADAPTER.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Input should be a valid URL, ")
        raise PydanticCustomError("url", "not a valid URL ({reason})", {"reason": reason}) from None
    return value


HttpUrlStr = Annotated[str, AfterValidator(check_http_url)]
"""An http(s) URL kept as the string the user wrote (AnyHttpUrl would append a slash)."""

NonEmptyStr = Annotated[str, Field(min_length=1)]

Seconds = Annotated[float, Field(gt=0)]


class ConfigModel(BaseModel):
    """Base for every section: unknown keys are errors, and an empty YAML value means default."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        # `mcp_servers:` with every entry commented out parses as None; treat it as absent.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data
