"""Agent processes on one session store file (every stdio agent of a user shares the
default one; replicas share a PostgreSQL database): no acknowledged history entry may go
missing, none may appear twice, and each append stays in one piece, in order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from acp.pgstore import PgSessionStore
from acp.store import SessionStore, SqliteSessionStore

APPENDS = 500
"""Appends per process (each of two entries, like a prompt and its answer)."""

WRITER = """
import asyncio, json, sys
from acp.pgstore import PgSessionStore
from acp.store import SqliteSessionStore

async def main(path, name, count):
    pg = path.startswith("postgresql://")
    store = PgSessionStore(path) if pg else SqliteSessionStore(path)
    await store.history("warm-up")  # open the file before the start signal
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(count):
        batch = [{"kind": "user", "who": name, "i": i}, {"kind": "notice", "who": name, "i": i}]
        for session in ("sess_shared", f"sess_{name}"):
            try:
                await store.append(session, batch)
            except Exception as exc:
                print(json.dumps(["failed", session, i, repr(exc)]), flush=True)
            else:
                print(json.dumps(["stored", session, i]), flush=True)
    await store.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def _writer(db: Path | str, name: str) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), name, str(APPENDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return tmp_path / "sessions.db"


async def test_two_processes_appending_to_one_store_lose_nothing(db: Path | str) -> None:
    writers = {name: _writer(db, name) for name in ("a", "b", "c")}
    for process in writers.values():
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    for process in writers.values():
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    outcomes: dict[str, list[list[object]]] = {}
    for name, process in writers.items():
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        outcomes[name] = [json.loads(line) for line in out.splitlines()]

    store: SessionStore = PgSessionStore(db) if isinstance(db, str) else SqliteSessionStore(db)
    try:
        shared = await store.history("sess_shared")
        own = {name: await store.history(f"sess_{name}") for name in writers}
    finally:
        await store.aclose()

    failed = [o for lines in outcomes.values() for o in lines if o[0] != "stored"]
    assert failed == []
    for name in writers:
        expected = [
            {"kind": kind, "who": name, "i": i}
            for i in range(APPENDS)
            for kind in ("user", "notice")
        ]
        assert own[name] == expected
        # In the shared session both writers interleave, but only between appends.
        assert [e for e in shared if e["who"] == name] == expected
    assert len(shared) == 2 * len(writers) * APPENDS
    for first, second in zip(shared[::2], shared[1::2], strict=True):
        assert (first["kind"], second["kind"]) == ("user", "notice")
        assert (first["who"], first["i"]) == (second["who"], second["i"])
