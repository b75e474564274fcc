"""Push configs at rest: sealed with `store.encryption_key` on either engine (the token and
credentials are not in the stored bytes), read back whole, readable after a key rotation,
and a clear error, not a silent loss, without the key. The config checks the key and the URL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from a2a.pgstore import PgTaskStore
from a2a.store import SqliteTaskStore
from junction.config import ConfigError, JunctionConfig
from junction.config.loading import validate_config
from stores.sealing import SealError, generate_key

CONFIG = {
    "id": "c1",
    "url": "https://hooks.example.test/a2a",
    "token": "webhook-token-1234",
    "authentication": {"scheme": "Bearer", "credentials": "webhook-credentials-5678"},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "j.db")


def _store(where: str, key: str | None) -> SqliteTaskStore | PgTaskStore:
    if where.startswith("postgresql://"):
        return PgTaskStore(where, encryption_key=key)
    return SqliteTaskStore(where, encryption_key=key)


async def _raw(where: str) -> bytes:
    if where.startswith("postgresql://"):
        conn = await asyncpg.connect(where)
        try:
            return bytes(await conn.fetchval("SELECT config FROM a2a_push_configs"))
        finally:
            await conn.close()
    with sqlite3.connect(where) as db:
        return bytes(db.execute("SELECT config FROM a2a_push_configs").fetchone()[0])


async def test_push_configs_are_sealed_and_keys_rotate(where: str) -> None:
    old, new = generate_key(), generate_key()
    store = _store(where, old)
    await store.open()
    await store.save_push("alice", "task-1", CONFIG)
    await store.close()
    raw = await _raw(where)

    rotated = _store(where, f"{new},{old}")
    await rotated.open()
    try:
        read = await rotated.get_push("alice", "task-1", "c1")
    finally:
        await rotated.close()
    keyless = _store(where, None)
    await keyless.open()
    try:
        with pytest.raises(SealError, match=r"no store\.encryption_key"):
            await keyless.list_push("task-1")
    finally:
        await keyless.close()
    for secret in (b"webhook-token-1234", b"webhook-credentials-5678", b"hooks.example.test"):
        assert secret not in raw
    assert read == CONFIG


async def test_a_config_stored_before_a_key_was_set_is_still_read(tmp_path: Path) -> None:
    db = str(tmp_path / "j.db")
    plain = SqliteTaskStore(db)
    await plain.open()
    await plain.save_push("alice", "task-1", CONFIG)
    await plain.close()
    keyed = SqliteTaskStore(db, encryption_key=generate_key())
    await keyed.open()
    try:
        assert await keyed.list_push("task-1") == [CONFIG]
    finally:
        await keyed.close()


def test_the_config_takes_postgresql_and_checks_url_and_key() -> None:
    config = JunctionConfig.model_validate(
        {"store": {"url": "postgresql://j:pw@db:5432/junction", "encryption_key": generate_key()}}
    )
    assert config.store.engine == "postgresql"
    with pytest.raises(ConfigError) as scheme:
        validate_config({"store": {"url": "mysql://db/junction"}}, "test")
    assert "unsupported store URL scheme 'mysql'" in str(scheme.value)
    with pytest.raises(ConfigError) as key:
        validate_config({"store": {"encryption_key": "not-a-key"}}, "test")
    assert "store.encryption_key must be Fernet keys" in str(key.value)
