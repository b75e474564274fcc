"""`store.url`: which engine, and where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

Engine = Literal["sqlite", "postgresql"]


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A parsed `store.url`: `sqlite:///PATH` (or `:memory:`) or `postgresql://...`."""

    engine: Engine
    path: str = ""
    """SQLite: the database file (what follows `sqlite:///`, so `sqlite:////abs` is `/abs`)."""
    dsn: str = ""
    """PostgreSQL: the libpq-style URL asyncpg connects with."""

    @property
    def redacted(self) -> str:
        """The URL with its password hidden (for logs and errors)."""
        if self.engine == "sqlite":
            return f"sqlite:///{self.path}"
        return redact_dsn(self.dsn)


def redact_dsn(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def parse_store_url(url: str) -> StoreUrl:
    """Raises ValueError naming what is accepted."""
    if url.startswith("sqlite:///") and url != "sqlite:///":
        return StoreUrl("sqlite", path=url.removeprefix("sqlite:///"))
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        rest = url.split("://", 1)[1]
        if not rest or (rest.startswith("/") and "host=" not in rest):
            raise ValueError("a postgresql:// URL needs a host (postgresql://user@host:5432/db)")
        return StoreUrl("postgresql", dsn=f"postgresql://{rest}")
    shown = scheme or url[:20]
    raise ValueError(
        f"unsupported store URL scheme {shown!r}: use sqlite:///PATH or postgresql://USER@HOST/DB"
    )
