"""Normalised chat types: one request shape and one stream shape for every LLM backend.

Requests are pydantic models (they arrive from outside: the OpenAI surface, ACP sessions, config)
so bad input gets a clear validation error. Stream events and results are slotted dataclasses,
because a stream makes one per chunk and they only ever come from our own backends.

A successful stream is: `TextDelta` / `ReasoningDelta` as the model produces them and a
`ToolCallDone` for each tool call once it is complete (OpenAI and Anthropic calls after their
argument deltas; Ollama sends calls whole, so text may follow one), then at most one `Usage`,
then exactly one `Finish`, which is always last. Backends raise a `BackendError` when anything goes wrong; they
never yield `StreamError`. `StreamError` is for whoever relays a stream (the router) to tell its
own consumer that a stream broke after events had already been passed on.
"""

from __future__ import annotations

import base64
import email.utils
import math
import time
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import unquote_to_bytes

import orjson
from pydantic import BaseModel, ConfigDict, Field

# -- requests -------------------------------------------------------------------------------------

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Model):
    """A piece of text inside a multi-part message."""

    type: Literal["text"] = "text"
    text: str


class ImagePart(_Model):
    """An image, by `http(s)://` URL or inline as a `data:<media type>;base64,<data>` URL."""

    type: Literal["image"] = "image"
    url: str

    @classmethod
    def from_base64(cls, data: str, media_type: str) -> ImagePart:
        """What ACP image blocks carry (base64 data plus a MIME type)."""
        return cls(url=f"data:{media_type};base64,{data}")

    def inline(self) -> tuple[str, str] | None:
        """(media type, base64 data) for a data URL, None for a remote URL."""
        return parse_data_url(self.url)


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


def parse_data_url(url: str) -> tuple[str, str] | None:
    """Split a base64 `data:` URL into (media type, base64 data); None if it is not one.

    Non-base64 data URLs are re-encoded, since every backend wants base64."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep:
        return None
    params = header.split(";")
    media_type = params[0] or "text/plain"
    if "base64" in params[1:]:
        return media_type, payload
    return media_type, base64.b64encode(unquote_to_bytes(payload)).decode("ascii")


class ToolDefinition(_Model):
    """A function the model may call; `parameters` is a JSON Schema for its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class NamedToolChoice(_Model):
    """Force the model to call this one tool."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class ToolCall(_Model):
    """One complete tool call. `arguments` is the parsed JSON object; `raw_arguments` is exactly
    what the model produced. When that is not a JSON object, `arguments` is empty and `error`
    says why, so a turn loop can report it back to the model instead of crashing."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str = ""
    error: str | None = None

    @classmethod
    def parse(cls, id: str, name: str, raw_arguments: str) -> ToolCall:
        """Build a call from the raw argument text, reporting (not raising) invalid JSON."""
        arguments, error = parse_arguments(raw_arguments)
        return cls.model_construct(
            id=id, name=name, arguments=arguments, raw_arguments=raw_arguments, error=error
        )

    @classmethod
    def from_arguments(cls, id: str, name: str, arguments: Mapping[str, Any]) -> ToolCall:
        """Build a call from already-parsed arguments (Ollama and Anthropic non-streaming)."""
        return cls.model_construct(
            id=id,
            name=name,
            arguments=dict(arguments),
            raw_arguments=orjson.dumps(arguments).decode(),
            error=None,
        )


def parse_arguments(raw: str) -> tuple[dict[str, Any], str | None]:
    """Parse tool-call argument text: (object, None) or ({}, reason). Empty text means {}."""
    if not raw.strip():
        return {}, None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return {}, f"tool call arguments are not valid JSON: {exc}"
    if not isinstance(value, dict):
        return {}, f"tool call arguments must be a JSON object, got {type(value).__name__}"
    return value, None


class Message(_Model):
    """One chat message.

    - `assistant` messages may carry `tool_calls` (and the `reasoning` that preceded them;
      Anthropic needs `reasoning_signature` to accept thinking sent back with tool use);
    - `tool` messages answer one call: `tool_call_id` is required, `name` is the tool's name
      when known (Ollama wants it).
    """

    role: Role
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    reasoning: str | None = None
    reasoning_signature: str | None = None

    def text(self) -> str:
        """The text of the message, parts joined; images are left out."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def parts(self) -> list[TextPart | ImagePart]:
        """The content as a list of parts (a plain string becomes one text part)."""
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [TextPart(text=self.content)] if self.content else []
        return list(self.content)


class ChatRequest(_Model):
    """A backend-neutral chat request. `extra` is merged into the upstream body as-is (top
    level), for options only one backend type knows (`top_p`, `seed`, Ollama `options`,
    Anthropic `thinking`, ...)."""

    model: str
    messages: list[Message]
    tools: list[ToolDefinition] = Field(default_factory=list)
    tool_choice: ToolChoice | None = None
    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)


# -- stream events --------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class TextDelta:
    """More answer text."""

    text: str


@dataclass(slots=True, frozen=True)
class ReasoningDelta:
    """More reasoning ("thinking") text; `signature` is Anthropic's signature for the thinking
    block, which must be sent back with it in later turns (that event's `text` is empty)."""

    text: str
    signature: str | None = None


@dataclass(slots=True, frozen=True)
class ToolCallDone:
    """A tool call, complete (assembled from its deltas), arguments parsed or `call.error` set."""

    call: ToolCall

    @property
    def error(self) -> str | None:
        return self.call.error


@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts as the upstream reported them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)


@dataclass(slots=True, frozen=True)
class Finish:
    """The stream completed; always the last event of a successful stream."""

    reason: FinishReason


@dataclass(slots=True, frozen=True)
class StreamError:
    """A stream broke after events had already been relayed, so it cannot be retried elsewhere:
    the consumer must show an error rather than take the partial answer as complete."""

    message: str
    retryable: bool = False
    status: int | None = None
    error: BackendError | None = field(default=None, compare=False)

    @classmethod
    def from_exception(cls, exc: BaseException) -> StreamError:
        if isinstance(exc, BackendError):
            return cls(str(exc), exc.retryable, exc.status, exc)
        return cls(f"{type(exc).__name__}: {exc}")


StreamEvent = TextDelta | ReasoningDelta | ToolCallDone | Usage | Finish | StreamError


# -- results --------------------------------------------------------------------------------------


@dataclass(slots=True)
class ChatResult:
    """A whole (non-streamed, or accumulated) answer."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: FinishReason = "stop"
    reasoning_signature: str | None = None

    def to_message(self) -> Message:
        """The assistant message to append to the conversation history."""
        return Message(
            role="assistant",
            content=self.text or None,
            tool_calls=list(self.tool_calls),
            reasoning=self.reasoning or None,
            reasoning_signature=self.reasoning_signature,
        )


class StreamAccumulator:
    """Builds a ChatResult from stream events as they pass (for relays that also need the
    whole answer, e.g. a turn loop that streams text to the IDE and then runs the tool calls)."""

    __slots__ = ("_finish", "_reasoning", "_signature", "_text", "_tool_calls", "_usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._signature: str | None = None
        self._tool_calls: list[ToolCall] = []
        self._usage: Usage | None = None
        self._finish: FinishReason | None = None

    def add(self, event: StreamEvent) -> None:
        """Take one event; a StreamError is raised as its BackendError."""
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reasoning.append(event.text)
            if event.signature:
                self._signature = event.signature
        elif isinstance(event, ToolCallDone):
            self._tool_calls.append(event.call)
        elif isinstance(event, Usage):
            self._usage = event
        elif isinstance(event, Finish):
            self._finish = event.reason
        elif isinstance(event, StreamError):
            if event.error is not None:
                raise event.error
            raise BackendError(event.message, status=event.status, retryable=event.retryable)

    @property
    def finished(self) -> bool:
        return self._finish is not None

    def result(self) -> ChatResult:
        """The answer so far; raises BackendDisconnected if the stream never finished."""
        if self._finish is None:
            raise BackendDisconnected("the stream ended without a finish reason")
        return ChatResult(
            text="".join(self._text),
            reasoning="".join(self._reasoning),
            tool_calls=list(self._tool_calls),
            usage=self._usage,
            finish_reason=self._finish,
            reasoning_signature=self._signature,
        )


async def accumulate(events: AsyncIterable[StreamEvent]) -> ChatResult:
    """Consume a whole stream into a ChatResult."""
    acc = StreamAccumulator()
    async for event in events:
        acc.add(event)
    return acc.result()


# -- errors ---------------------------------------------------------------------------------------


class BackendError(Exception):
    """Anything that went wrong talking to a backend.

    `retryable` says whether the same request may succeed on another try (possibly on another
    backend): connect errors, timeouts, lost connections, 408, 429 and 5xx are; bad requests,
    auth failures and garbage answers are not. `retry_after` is the upstream's Retry-After in
    seconds, when it sent one. `status` is the upstream HTTP status, when there was one."""

    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        backend: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"backend {backend!r}: {message}" if backend else message)
        self.backend = backend
        self.status = status
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after


class BackendConnectError(BackendError):
    """Could not connect (refused, DNS, TLS): nothing reached the upstream."""

    default_retryable = True


class BackendTimeout(BackendError):
    """The upstream did not connect, answer, or send the next chunk in time."""

    default_retryable = True


class BackendDisconnected(BackendError):
    """The connection was lost, or the response ended, before the answer was complete."""

    default_retryable = True


class BackendMalformedResponse(BackendError):
    """The upstream answered something that is not what its API promises (content type, JSON,
    shape); retrying the same backend will not help."""


class BackendUnsupported(BackendError):
    """The request asks for something this backend type cannot express (e.g. a remote image
    URL for Ollama)."""


class BackendHTTPError(BackendError):
    """The upstream answered with an error status (or reported one inside the stream)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        backend: str | None = None,
        retry_after: float | None = None,
        body: bytes = b"",
        content_type: str = "",
    ) -> None:
        super().__init__(
            f"HTTP {status}: {message}",
            backend=backend,
            status=status,
            retryable=is_retryable_status(status),
            retry_after=retry_after,
        )
        self.body = body
        self.content_type = content_type


def is_retryable_status(status: int) -> bool:
    """408, 429 and every 5xx may succeed on another try."""
    return status in (408, 429) or status >= 500


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date);
    None when absent or unreadable. Never negative."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


__all__ = [
    "BackendConnectError",
    "BackendDisconnected",
    "BackendError",
    "BackendHTTPError",
    "BackendMalformedResponse",
    "BackendTimeout",
    "BackendUnsupported",
    "ChatRequest",
    "ChatResult",
    "ContentPart",
    "Finish",
    "FinishReason",
    "ImagePart",
    "Message",
    "NamedToolChoice",
    "ReasoningDelta",
    "Role",
    "StreamAccumulator",
    "StreamError",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "ToolCall",
    "ToolCallDone",
    "ToolChoice",
    "ToolDefinition",
    "Usage",
    "accumulate",
    "is_retryable_status",
    "parse_arguments",
    "parse_data_url",
    "parse_retry_after",
]
