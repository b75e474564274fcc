"""What every LLM backend shares: the Backend interface, timeouts, one request path that maps
every aiohttp failure to a BackendError, and the two stream framings upstreams use (SSE, through
`router_core.sse`, and NDJSON), read incrementally from raw bytes. An SSE event cut off by the
end of the body is reported (BackendDisconnected) instead of being silently dropped.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import aiohttp
import orjson

from router_core import tracing
from router_core.exchange import (
    Answer,
    ExchangeConnectError,
    ExchangeConnectTimeout,
    ExchangeError,
    ExchangeMalformed,
    ExchangeTimeout,
)
from router_core.http import get_session
from router_core.quota import charge_usage
from router_core.redaction import redact_urls
from router_core.sse import MAX_LINE_BYTES, SseEvent, SseParser
from router_core.types import (
    BackendConnectError,
    BackendDisconnected,
    BackendError,
    BackendHTTPError,
    BackendMalformedResponse,
    BackendTimeout,
    BackendUnsupported,
    ChatRequest,
    ChatResult,
    StreamEvent,
    Usage,
    parse_retry_after,
)

ERROR_BODY_LIMIT = 64 * 1024
"""How much of an error response is read to find its message."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request limits, in seconds (None: no limit).

    `read` is the longest silence allowed while waiting for the response headers or for the next
    chunk of a stream: it is what catches an upstream that accepts and never answers. It is
    generous by default because a long prompt can take a while before its first token. A whole
    request's deadline is the caller's (the router wraps calls in `asyncio.timeout`)."""

    connect: float | None = 10.0
    read: float | None = 300.0
    total: float | None = None
    probe: float = 5.0

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total, connect=self.connect, sock_connect=self.connect, sock_read=self.read
        )

    def probe_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.probe, sock_read=self.probe)


class Backend(abc.ABC):
    """One LLM endpoint.

    `stream()` is an async generator: the request is sent when the first event is pulled, so a
    failure before the first event (connect error, error status, wrong content type, ...) raises
    before anything was produced, which is when a caller may still fail over. A failure later
    raises too (never a silent end): a caller that already relayed events must turn it into a
    `StreamError` for its own consumer. Cancelling the consuming task, or closing the generator
    (`aclose()`, e.g. via `contextlib.aclosing`), closes the upstream connection at once.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        name: str,
        url: str,
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeouts: Timeouts | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.api_key = api_key or None
        self.timeouts = timeouts or Timeouts()
        self._timeout = self.timeouts.client_timeout()
        self._probe_timeout = self.timeouts.probe_timeout()
        self.headers: dict[str, str] = {
            "Content-Type": "application/json",
            **self.auth_headers(),
            **(headers or {}),
        }
        self.prompt_tokens = 0
        self.completion_tokens = 0
        """Tokens the upstream reported using, summed since start (read by `/metrics`)."""

    def count_usage(self, usage: Usage | None) -> None:
        """Add one answer's reported usage to the totals (upstreams that report none add 0)."""
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens
            self.completion_tokens += usage.completion_tokens
            charge_usage(usage.prompt_tokens + usage.completion_tokens)  # the caller's quota

    def auth_headers(self) -> dict[str, str]:
        """Headers that carry the API key (none without a key)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.url}>"

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream the answer as normalised events (see `router_core.types`)."""

    @abc.abstractmethod
    async def complete(self, request: ChatRequest) -> ChatResult:
        """The whole answer, from one non-streaming upstream request."""

    @abc.abstractmethod
    async def list_models(self) -> list[str]:
        """The model names the upstream says it serves (uncached)."""

    @abc.abstractmethod
    async def probe(self) -> None:
        """A cheap health check; returns if the upstream answered well, else raises
        BackendError. Uses `timeouts.probe`."""

    async def embed(self, model: str, inputs: list[Any], extra: Mapping[str, Any]) -> Any:
        """Embeddings for `inputs` as OpenAI's `/v1/embeddings` answers them (`object: list`,
        `data[i].embedding`, `usage`); `extra` holds the request's other OpenAI options. A
        backend type with no embeddings raises BackendUnsupported, so the router tries another."""
        raise BackendUnsupported(f"backend {self.name!r} ({self.kind}) has no embeddings")

    # -- helpers for subclasses -------------------------------------------------------------

    @asynccontextmanager
    async def open(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send one request and yield its response once the status is known to be < 400.

        Error statuses raise BackendHTTPError (with Retry-After); aiohttp and timeout failures,
        while sending or while the body is read inside the block, are mapped to BackendError.
        On leaving the block the response is released to the pool when it was read to the end,
        and its connection closed otherwise (an error, a cancellation, an early exit).
        A traced request (`router_core.tracing`) sends its `traceparent` along."""
        session = get_session()
        sent = self.headers if headers is None else headers
        trace = tracing.current()
        if trace is not None:
            sent = {**sent, **trace.headers()}
        try:
            response = await session.request(
                method,
                url,
                data=body,
                headers=sent,
                timeout=self._timeout if timeout is None else timeout,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise map_client_error(exc, self.name, "waiting for the response") from exc
        completed = False
        try:
            if response.status >= 400:
                raise await http_error(response, self.name)
            yield response
            completed = True
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise map_client_error(exc, self.name, "reading the response") from exc
        finally:
            if completed:
                response.release()
            else:
                response.close()

    async def get_json(self, url: str, *, timeout: aiohttp.ClientTimeout | None = None) -> Any:
        """GET a JSON document (model lists, probes)."""
        async with self.open("GET", url, timeout=timeout) as response:
            return await read_json(response, self.name)


# -- errors -----------------------------------------------------------------------------------


def map_client_error(exc: BaseException, backend: str, phase: str) -> BackendError:
    """Translate an aiohttp/timeout exception into the BackendError the router reasons about."""
    # aiohttp quotes the request URL, which may carry the backend's credentials
    detail = f"{type(exc).__name__}: {redact_urls(str(exc))}" if str(exc) else type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return BackendTimeout(f"timed out connecting ({detail})", backend=backend)
    if isinstance(exc, TimeoutError):
        return BackendTimeout(f"timed out {phase} ({detail})", backend=backend)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return BackendConnectError(f"cannot connect ({detail})", backend=backend)
    if isinstance(exc, aiohttp.InvalidURL):
        return BackendError(f"invalid URL ({detail})", backend=backend, retryable=False)
    if isinstance(exc, aiohttp.ClientResponseError):
        return BackendMalformedResponse(f"invalid HTTP response ({detail})", backend=backend)
    return BackendDisconnected(f"connection lost {phase} ({detail})", backend=backend)


def map_exchange_error(exc: ExchangeError, backend: str) -> BackendError:
    """`map_client_error` for `router_core.exchange`'s failures (its messages name no URL)."""
    if isinstance(exc, ExchangeConnectTimeout):
        return BackendTimeout(str(exc), backend=backend)
    if isinstance(exc, ExchangeConnectError):
        return BackendConnectError(str(exc), backend=backend)
    if isinstance(exc, ExchangeTimeout):
        return BackendTimeout(f"timed out waiting for the response ({exc})", backend=backend)
    if isinstance(exc, ExchangeMalformed):
        return BackendMalformedResponse(f"invalid HTTP response ({exc})", backend=backend)
    return BackendDisconnected(f"connection lost waiting for the response ({exc})", backend=backend)


def answer_error(answer: Answer, backend: str) -> BackendHTTPError:
    """`http_error` for a whole answer from `router_core.exchange`."""
    body = answer.body[:ERROR_BODY_LIMIT]
    try:
        reason = HTTPStatus(answer.status).phrase
    except ValueError:
        reason = "error"
    return BackendHTTPError(
        answer.status,
        error_message(body) or reason,
        backend=backend,
        retry_after=parse_retry_after(answer.headers),
        body=body,
        content_type=answer.headers.get("content-type", ""),
    )


def check_answer_type(answer: Answer, backend: str, expected: str) -> None:
    """`check_content_type` for a whole answer from `router_core.exchange`."""
    seen = answer.headers.get("content-type")
    if seen is not None and seen.partition(";")[0].strip().lower() == expected:
        return
    hint = f": {excerpt(answer.body[:200])}" if answer.body else ""
    raise BackendMalformedResponse(
        f"expected content type {expected}, the upstream sent {seen or '(none)'!r}{hint}",
        backend=backend,
    )


async def http_error(response: aiohttp.ClientResponse, backend: str) -> BackendHTTPError:
    """A BackendHTTPError for an error response, with the upstream's own message if it has one."""
    body = b""
    try:
        while len(body) < ERROR_BODY_LIMIT:
            chunk = await response.content.read(ERROR_BODY_LIMIT - len(body))
            if not chunk:
                break
            body += chunk
    except (aiohttp.ClientError, TimeoutError):
        pass
    return BackendHTTPError(
        response.status,
        error_message(body) or response.reason or "error",
        backend=backend,
        retry_after=parse_retry_after(response.headers),
        body=body,
        content_type=response.headers.get("Content-Type", ""),
    )


def error_message(body: bytes) -> str:
    """The message inside an error body: OpenAI `{"error": {"message"}}`, Anthropic
    `{"error": {"type", "message"}}`, Ollama `{"error": "..."}`, FastAPI `{"detail"}`, or text."""
    if not body:
        return ""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return excerpt(body)
    if isinstance(doc, dict):
        err = doc.get("error", doc)
        if isinstance(err, str):
            return err
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail")
            kind = err.get("type")
            if isinstance(message, str):
                return f"{kind}: {message}" if isinstance(kind, str) and kind else message
        detail = doc.get("detail")
        if detail is not None:
            return detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    return excerpt(body)


def excerpt(data: bytes, limit: int = 200) -> str:
    """A printable start of some bytes, for error messages."""
    text = data[:limit].decode("utf-8", "replace").strip()
    return text + ("..." if len(data) > limit else "")


def check_content_type(response: aiohttp.ClientResponse, backend: str, *expected: str) -> None:
    """Raise BackendMalformedResponse unless the response's media type is one of `expected`."""
    if response.content_type in expected:
        return
    seen = response.headers.get("Content-Type", "(none)")
    start = response.content.read_nowait(200) if not response.content.at_eof() else b""
    hint = f": {excerpt(start)}" if start else ""
    raise BackendMalformedResponse(
        f"expected content type {' or '.join(expected)}, the upstream sent {seen!r}{hint}",
        backend=backend,
    )


async def read_json(response: aiohttp.ClientResponse, backend: str) -> Any:
    """The whole body parsed as JSON; a wrong content type or bad JSON is a malformed answer."""
    check_content_type(response, backend, "application/json")
    body = await response.read()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BackendMalformedResponse(
            f"response body is not valid JSON ({exc}): {excerpt(body)}", backend=backend
        ) from exc


def load_json_event(data: bytes, backend: str, what: str) -> dict[str, Any]:
    """Parse one streamed JSON object (an SSE data field, an NDJSON line)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BackendMalformedResponse(
            f"{what} is not valid JSON ({exc}): {excerpt(data)}", backend=backend
        ) from exc
    if not isinstance(doc, dict):
        raise BackendMalformedResponse(
            f"{what} is not a JSON object: {excerpt(data)}", backend=backend
        )
    return doc


def shape_error(backend: str, what: str, doc: Any) -> BackendMalformedResponse:
    """A malformed-response error for JSON that parsed but is not the shape the API promises."""
    return BackendMalformedResponse(
        f"unexpected {what}: {excerpt(orjson.dumps(doc))}", backend=backend
    )


# -- framings ---------------------------------------------------------------------------------


class LineSplitter:
    """Incremental NDJSON line splitter over raw bytes (LF or CRLF; blank lines skipped).

    aiohttp's own `readline` refuses lines over 128 KiB, and one Ollama line can carry a
    whole tool call, so we split ourselves."""

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        lines = chunk.split(b"\n")
        if self._partial:
            lines[0] = self._partial + lines[0]
        self._partial = lines.pop()
        if len(self._partial) > MAX_LINE_BYTES:
            raise ValueError(f"an NDJSON line is longer than {MAX_LINE_BYTES} bytes")
        return [line for line in (raw.rstrip(b"\r") for raw in lines) if line]

    def close(self) -> bytes:
        """The unterminated last line, if any (b"" when the stream ended on a newline)."""
        rest, self._partial = self._partial.strip(), b""
        return rest


async def iter_sse(
    response: aiohttp.ClientResponse, backend: str
) -> AsyncGenerator[SseEvent, None]:
    """The events of an SSE response body; raises BackendDisconnected if the body ends in the
    middle of an event."""
    parser = SseParser()
    async for chunk in response.content.iter_any():
        try:
            events = parser.feed(chunk)
        except ValueError as exc:
            raise BackendMalformedResponse(str(exc), backend=backend) from exc
        for event in events:
            yield event
    if parser.pending:
        raise BackendDisconnected(
            "the event stream ended in the middle of an event", backend=backend
        )


async def iter_ndjson(
    response: aiohttp.ClientResponse, backend: str
) -> AsyncGenerator[dict[str, Any], None]:
    """The JSON objects of an NDJSON response body."""
    splitter = LineSplitter()
    async for chunk in response.content.iter_any():
        try:
            lines = splitter.feed(chunk)
        except ValueError as exc:
            raise BackendMalformedResponse(str(exc), backend=backend) from exc
        for line in lines:
            yield load_json_event(line, backend, "a streamed line")
    rest = splitter.close()
    if rest:
        try:
            doc = orjson.loads(rest)
        except orjson.JSONDecodeError:
            raise BackendDisconnected(
                "the stream ended in the middle of a line", backend=backend
            ) from None
        if isinstance(doc, dict):
            yield doc
        else:
            raise BackendMalformedResponse(
                f"a streamed line is not a JSON object: {excerpt(rest)}", backend=backend
            )


__all__ = [
    "Backend",
    "LineSplitter",
    "SseEvent",
    "SseParser",
    "Timeouts",
    "check_content_type",
    "error_message",
    "http_error",
    "iter_ndjson",
    "iter_sse",
    "load_json_event",
    "map_client_error",
    "read_json",
    "shape_error",
]
