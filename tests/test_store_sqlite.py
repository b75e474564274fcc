"""The SQLite file both stores share: small pages for a new file, an old file kept as it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from stores.schema import migrate_sqlite
from stores.sqlite import NEW_FILE_PAGE_SIZE, connect


def _settings(db: sqlite3.Connection) -> tuple[int, str, int]:
    page = db.execute("PRAGMA page_size").fetchone()[0]
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    sync = db.execute("PRAGMA synchronous").fetchone()[0]
    return page, mode, sync


def test_a_new_file_gets_small_pages_and_wal(tmp_path: Path) -> None:
    path = str(tmp_path / "junction.db")
    db = connect(path)
    migrate_sqlite(db, path)
    assert _settings(db) == (NEW_FILE_PAGE_SIZE, "wal", 1)  # 1: NORMAL
    db.close()
    again = connect(path, busy_timeout_ms=250)
    assert _settings(again)[0] == NEW_FILE_PAGE_SIZE
    assert again.execute("PRAGMA busy_timeout").fetchone()[0] == 250


def test_a_file_made_with_other_pages_keeps_them_and_its_rows(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("PRAGMA page_size=4096")
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE kept (v TEXT)")
    old.execute("INSERT INTO kept VALUES ('still here')")
    old.close()
    db = connect(path)
    migrate_sqlite(db, path)
    assert _settings(db) == (4096, "wal", 1)
    assert db.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    assert db.execute("SELECT COUNT(*) FROM a2a_tasks").fetchone()[0] == 0
