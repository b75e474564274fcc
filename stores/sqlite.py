"""Opening the SQLite file both stores share, with the settings they both rely on."""

from __future__ import annotations

import sqlite3

NEW_FILE_PAGE_SIZE = 1024
"""Bytes per page of a database this creates. A task update touches ~8 pages (the row, its
primary key, the caller index, the context row and its two indexes), each written whole to
the WAL on commit: 1 KiB pages write ~12 KiB per commit instead of ~32 KiB, and an A2A commit
on the event loop takes ~45 µs instead of ~65-120 µs (measured with the hub's statements).
Only a new file gets it: a page size is fixed once WAL mode is on."""


def connect(path: str, *, busy_timeout_ms: int | None = None) -> sqlite3.Connection:
    """An autocommit connection to `path` in WAL mode with `synchronous=NORMAL` (a commit is
    durable against a crash of the process, and against power loss up to the last
    checkpoint), usable from the store's thread and the event loop."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if busy_timeout_ms is not None:  # before anything that takes a lock: another process may
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    if db.execute("PRAGMA page_count").fetchone()[0] == 0:
        db.execute(f"PRAGMA page_size={NEW_FILE_PAGE_SIZE}")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


__all__ = ["NEW_FILE_PAGE_SIZE", "connect"]
