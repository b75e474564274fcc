"""What the router raises when it cannot get an answer (`RouterError` and its kinds, each with
the HTTP status that fits), the record of each try (`Attempt`), and the rule that decides
whether a failure is the backend's fault (counted by stats and the breaker) or the caller's."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from router_core.types import BackendError, BackendHTTPError, BackendTimeout, BackendUnsupported

__all__ = [
    "Attempt",
    "BackendFailed",
    "DeadlineExceeded",
    "ModelNotFound",
    "NoBackendAvailable",
    "RouterError",
    "caller_fault",
    "is_backend_fault",
]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one request: where it went and how it ended (`error` None: it succeeded)."""

    backend: str
    model: str
    error: str | None = None


class RouterError(Exception):
    """The router could not get an answer; `status` is the HTTP status that fits best."""

    status = 502

    def __init__(self, message: str, attempts: Iterable[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)
        self.retry_after: float | None = None

    @property
    def backend(self) -> str | None:
        """The last backend tried, if any."""
        return self.attempts[-1].backend if self.attempts else None


class ModelNotFound(RouterError):
    """No backend serves the model, and it is no alias of one and has no fallback."""

    status = 404

    def __init__(self, model: str, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none (no backend reported any model)"
        super().__init__(f"model {model!r} does not exist; models available: {listed}")
        self.model = model
        self.known = known


class NoBackendAvailable(RouterError):
    """Every backend that serves the model (and its fallbacks) is excluded right now."""

    status = 503

    def __init__(
        self,
        model: str,
        reasons: Mapping[str, Mapping[str, str]],
        attempts: Iterable[Attempt] = (),
        retry_after: float | None = None,
    ) -> None:
        parts = []
        for name, why in reasons.items():
            detail = "; ".join(f"{backend}: {reason}" for backend, reason in why.items())
            parts.append(f"{name!r} ({detail or 'no backend serves it'})")
        super().__init__(f"no backend can serve model {model!r}: " + ", ".join(parts), attempts)
        self.model = model
        self.reasons = {name: dict(why) for name, why in reasons.items()}
        self.retry_after = retry_after


class DeadlineExceeded(RouterError):
    """The request's deadline passed before an answer (or before the end of the stream)."""

    status = 504

    def __init__(self, model: str, deadline: float, attempts: Iterable[Attempt] = ()) -> None:
        attempts = list(attempts)
        tried = "; ".join(f"{a.backend}: {a.error}" for a in attempts if a.error)
        super().__init__(
            f"model {model!r}: no answer within the {deadline:g} s deadline"
            + (f" (tried {tried})" if tried else ""),
            attempts,
        )


class BackendFailed(RouterError):
    """Backends answered, but with errors: `error` is the last, and decides the status."""

    def __init__(self, model: str, error: BackendError, attempts: Iterable[Attempt]) -> None:
        attempts = list(attempts)
        others = [f"{a.backend}: {a.error}" for a in attempts[:-1] if a.error]
        message = str(error) + (f" (earlier: {'; '.join(others)})" if others else "")
        super().__init__(message, attempts)
        self.model = model
        self.error = error
        self.retry_after = error.retry_after
        self.status = _status_for(error)


def _status_for(error: BackendError) -> int:
    if isinstance(error, BackendTimeout):
        return 504
    if isinstance(error, BackendUnsupported):
        return 400
    status = error.status
    if status is not None and 400 <= status < 500:
        return 502 if status in (401, 403, 408) else status
    return 502


def is_backend_fault(error: BaseException) -> bool:
    """Whether a failure says the backend is unwell (counted by stats and the breaker).

    Error statuses 4xx other than 408 and 429 are the caller's own fault, and a request a
    backend type cannot express is nobody's; everything else a backend raises counts."""
    if isinstance(error, BackendUnsupported):
        return False
    if isinstance(error, BackendHTTPError):
        status = error.status or 500
        return status >= 500 or status in (408, 429)
    return True


def caller_fault(error: BackendError) -> bool:
    """The request itself is wrong: another backend or model would refuse it too."""
    return isinstance(error, BackendHTTPError) and not is_backend_fault(error)
