"""What the caller's API key lets it use on the model surfaces: the model globs the server's
access guard puts in the ASGI `scope["state"]` (router_core itself knows nothing of keys)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from starlette.types import Scope

OUTSIDE_MODEL_GLOBS = "the model is outside the caller's model globs"
"""The audit trail's reason for such a refusal (the caller is told the model does not exist)."""


def allowed_models(scope: Scope) -> tuple[str, ...] | None:
    """The model globs the caller's API key is limited to (set by the server's access guard in
    `scope["state"]["allowed_models"]`), or None when it is not limited."""
    state = scope.get("state")
    globs = state.get("allowed_models") if isinstance(state, dict) else None
    return None if globs is None else tuple(globs)


def model_allowed(allowed: tuple[str, ...] | None, model: str) -> bool:
    return allowed is None or any(fnmatchcase(model, glob) for glob in allowed)


__all__ = ["OUTSIDE_MODEL_GLOBS", "allowed_models", "model_allowed"]
