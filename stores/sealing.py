"""Secrets at rest: push configs (webhook tokens, credentials) sealed with Fernet (AES-128-CBC
plus HMAC-SHA256, from `cryptography`) under `store.encryption_key`.

Several keys may be given, comma-separated: the first seals, all open, so a key is rotated by
putting the new one first and dropping the old once everything has been rewritten. A blob
that is not a Fernet token is plain JSON from before a key was set, and opens as is.
"""

from __future__ import annotations

from typing import Any

_TOKEN_PREFIX = b"gAAAAA"
"""Every Fernet token starts so (version byte 0x80, base64); JSON never does."""


class SealError(ValueError):
    """A sealed value that no configured key opens (or no key is configured)."""


class Sealer:
    """Seals and opens byte strings; with no key, both are the identity on plain values."""

    def __init__(self, keys: str | None) -> None:
        self._fernet: Any = None
        secrets = [k.strip() for k in (keys or "").split(",") if k.strip()]
        if secrets:
            from cryptography.fernet import Fernet, MultiFernet

            try:
                self._fernet = MultiFernet([Fernet(k.encode()) for k in secrets])
            except ValueError:
                raise SealError(
                    "store.encryption_key must be Fernet keys (32 url-safe base64-encoded"
                    " bytes; make one with `python -c 'from cryptography.fernet import Fernet;"
                    " print(Fernet.generate_key().decode())'`)"
                ) from None

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    def seal(self, plain: bytes) -> bytes:
        return plain if self._fernet is None else bytes(self._fernet.encrypt(plain))

    def open(self, stored: bytes) -> bytes:
        if not stored.startswith(_TOKEN_PREFIX):
            return stored
        if self._fernet is None:
            raise SealError("a sealed push config, and no store.encryption_key to open it")
        from cryptography.fernet import InvalidToken

        try:
            return bytes(self._fernet.decrypt(stored))
        except InvalidToken:
            raise SealError("a sealed push config that no store.encryption_key opens") from None


def generate_key() -> str:
    from cryptography.fernet import Fernet

    return str(Fernet.generate_key().decode())
