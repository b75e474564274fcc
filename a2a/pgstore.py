"""The task store on PostgreSQL (`store.url: postgresql://...`), for replicas sharing state.

Same behaviour as `SqliteTaskStore` (the tests run on both): writes are group-committed (one
round trip carries every write of an event-loop turn, and a `save_task` with its context is one
statement), reads wait for the writes issued before them, push configs are sealed with
`store.encryption_key`. The outbox is claimed with `FOR UPDATE SKIP LOCKED`, so with several
replicas each pending delivery goes to one of them.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from a2a.errors import INTERNAL_ERROR, A2aError
from a2a.store import (
    OutboxRow,
    StateTally,
    TaskPage,
    TaskRecord,
    context_row,
    decode_cursor,
    page_of,
    record_of,
    task_row,
)
from stores.postgres import PgDatabase, StoreUnavailableError
from stores.sealing import Sealer

_TASK_COLUMNS = (
    "id, caller, agent, remote_id, context_id, remote_context_id, created, updated, task"
)
_UPSERT_TASK = (
    "INSERT INTO a2a_tasks (id, caller, agent, remote_id, context_id, remote_context_id,"
    " state, created, updated, task) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
    " ON CONFLICT (id) DO UPDATE SET state=excluded.state, updated=excluded.updated,"
    " task=excluded.task, remote_id=excluded.remote_id,"
    " remote_context_id=excluded.remote_context_id, context_id=excluded.context_id"
)
_UPSERT_CONTEXT = (
    "INSERT INTO a2a_contexts (caller, context_id, agent, remote_context_id)"
    " VALUES ($1,$2,$3,$4) ON CONFLICT (caller, context_id)"
    " DO UPDATE SET agent=excluded.agent, remote_context_id=excluded.remote_context_id"
)
_UPSERT_TASK_AND_CONTEXT = (
    f"WITH c AS ({_UPSERT_CONTEXT.replace('$1', '$11').replace('$2', '$12').replace('$3', '$13').replace('$4', '$14')})"
    f" {_UPSERT_TASK}"
)
"""A new task and its context in one statement (one round trip even when alone in a batch)."""
_UPSERT_PUSH = (
    "INSERT INTO a2a_push_configs (caller, task_id, id, config) VALUES ($1,$2,$3,$4)"
    " ON CONFLICT (task_id, id) DO UPDATE SET caller=excluded.caller, config=excluded.config"
)
_ENQUEUE = (
    "INSERT INTO a2a_push_outbox (task_id, config_id, seq, body, attempts, lease_owner,"
    " lease_until) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT DO NOTHING"
)
_TOUCH = (
    "UPDATE a2a_push_outbox SET attempts = $1, lease_until = $2"
    " WHERE task_id = $3 AND config_id = $4 AND seq = $5"
)
_ACK = "DELETE FROM a2a_push_outbox WHERE task_id = $1 AND config_id = $2 AND seq = $3"
_CLAIM = (
    "UPDATE a2a_push_outbox o SET lease_owner = $1, lease_until = $2 FROM"
    " (SELECT task_id, config_id, seq FROM a2a_push_outbox WHERE lease_until < $3"
    "  AND NOT EXISTS (SELECT 1 FROM a2a_push_outbox e WHERE e.task_id = a2a_push_outbox.task_id"
    "   AND e.config_id = a2a_push_outbox.config_id AND e.seq < a2a_push_outbox.seq"
    "   AND e.lease_until >= $3)"
    "  ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED) c"
    " WHERE o.task_id = c.task_id AND o.config_id = c.config_id AND o.seq = c.seq"
    " RETURNING o.task_id, o.config_id, o.seq, o.body, o.attempts, o.lease_owner, o.lease_until"
)


class PgTaskStore:
    """`TaskStore` on PostgreSQL; an unreachable server is an A2A error (-32603, "the task
    store is unavailable"), never a lost acknowledgement."""

    def __init__(
        self, db: PgDatabase | str, *, encryption_key: str | None = None, **options: Any
    ) -> None:
        self.db = db if isinstance(db, PgDatabase) else PgDatabase(db, **options)
        self.sealer = Sealer(encryption_key)
        self._states = StateTally()

    async def open(self) -> None:
        await self.db.open()
        try:
            rows = await self.db.read(
                lambda c: c.fetch("SELECT state, COUNT(*) FROM a2a_tasks GROUP BY state")
            )
        except StoreUnavailableError:
            return  # logged by open(); the counts start from what this process writes
        self._states = StateTally({row[0]: int(row[1]) for row in rows})

    async def close(self) -> None:
        await self.db.close()

    async def flush(self) -> None:
        await self.db.flush()

    async def _wait(self, done: Any) -> Any:
        try:
            return await done
        except StoreUnavailableError as exc:
            raise A2aError(INTERNAL_ERROR, f"the task store is unavailable: {exc}") from None

    async def _read(self, fn: Any) -> Any:
        return await self._wait(self.db.read(fn))

    async def save_task(self, record: TaskRecord, *, with_context: bool = False) -> None:
        self._states.saved(record)
        if with_context:
            row = task_row(record) + context_row(record)
            await self._wait(self.db.write((_UPSERT_TASK_AND_CONTEXT, row)))
        else:
            await self._wait(self.db.write((_UPSERT_TASK, task_row(record))))

    def state_counts(self) -> dict[str, int]:
        return self._states.counts()

    async def get_task(self, task_id: str, caller: str) -> TaskRecord | None:
        row = await self._read(
            lambda c: c.fetchrow(
                f"SELECT {_TASK_COLUMNS} FROM a2a_tasks WHERE id = $1 AND caller = $2",
                task_id,
                caller,
            )
        )
        return None if row is None else record_of(row)

    async def get_task_any_caller(self, task_id: str) -> TaskRecord | None:
        row = await self._read(
            lambda c: c.fetchrow(f"SELECT {_TASK_COLUMNS} FROM a2a_tasks WHERE id = $1", task_id)
        )
        return None if row is None else record_of(row)

    async def list_tasks(
        self,
        caller: str,
        *,
        context_id: str | None = None,
        state: str | None = None,
        updated_after: float | None = None,
        page_size: int = 50,
        cursor: str | None = None,
    ) -> TaskPage:
        where = ["caller = $1"]
        args: list[Any] = [caller]
        for column, op, value in (
            ("context_id", "=", context_id or None),
            ("state", "=", state or None),
            ("updated", ">", updated_after),
        ):
            if value is not None:
                args.append(value)
                where.append(f"{column} {op} ${len(args)}")
        filters = " AND ".join(where)
        page_where, page_args = filters, list(args)
        if cursor:
            updated, last_id = decode_cursor(cursor)
            n = len(page_args)
            page_where += f" AND (updated < ${n + 1} OR (updated = ${n + 1} AND id < ${n + 2}))"
            page_args += [updated, last_id]
        page_args.append(page_size + 1)

        async def read(c: Any) -> tuple[list[Any], int]:
            rows = await c.fetch(
                f"SELECT {_TASK_COLUMNS} FROM a2a_tasks WHERE {page_where}"
                f" ORDER BY updated DESC, id DESC LIMIT ${len(page_args)}",
                *page_args,
            )
            total = await c.fetchval(f"SELECT COUNT(*) FROM a2a_tasks WHERE {filters}", *args)
            return list(rows), int(total)

        rows, total = await self._read(read)
        return page_of(rows, page_size, total)

    async def save_context(
        self, caller: str, context_id: str, agent: str, remote_context_id: str
    ) -> None:
        await self._wait(
            self.db.write((_UPSERT_CONTEXT, (caller, context_id, agent, remote_context_id)))
        )

    async def get_context(self, caller: str, context_id: str) -> tuple[str, str] | None:
        row = await self._read(
            lambda c: c.fetchrow(
                "SELECT agent, remote_context_id FROM a2a_contexts"
                " WHERE caller = $1 AND context_id = $2",
                caller,
                context_id,
            )
        )
        return None if row is None else (row[0], row[1])

    async def find_context(self, caller: str, agent: str, remote_context_id: str) -> str | None:
        value = await self._read(
            lambda c: c.fetchval(
                "SELECT context_id FROM a2a_contexts WHERE caller = $1 AND agent = $2"
                " AND remote_context_id = $3",
                caller,
                agent,
                remote_context_id,
            )
        )
        return None if value is None else str(value)

    def _config(self, blob: bytes) -> dict[str, Any]:
        return dict(orjson.loads(self.sealer.open(bytes(blob))))

    async def save_push(self, caller: str, task_id: str, config: dict[str, Any]) -> None:
        blob = self.sealer.seal(orjson.dumps(config))
        await self._wait(self.db.write((_UPSERT_PUSH, (caller, task_id, config["id"], blob))))

    async def get_push(self, caller: str, task_id: str, config_id: str) -> dict[str, Any] | None:
        blob = await self._read(
            lambda c: c.fetchval(
                "SELECT config FROM a2a_push_configs WHERE caller = $1 AND task_id = $2"
                " AND id = $3",
                caller,
                task_id,
                config_id,
            )
        )
        return None if blob is None else self._config(blob)

    async def list_push(self, task_id: str, caller: str | None = None) -> list[dict[str, Any]]:
        if caller is None:
            rows = await self._read(
                lambda c: c.fetch(
                    "SELECT config FROM a2a_push_configs WHERE task_id = $1 ORDER BY id", task_id
                )
            )
        else:
            rows = await self._read(
                lambda c: c.fetch(
                    "SELECT config FROM a2a_push_configs WHERE task_id = $1 AND caller = $2"
                    " ORDER BY id",
                    task_id,
                    caller,
                )
            )
        return [self._config(row[0]) for row in rows]

    async def delete_push(self, caller: str, task_id: str, config_id: str) -> None:
        await self._wait(
            self.db.write(
                (
                    "DELETE FROM a2a_push_configs WHERE caller = $1 AND task_id = $2 AND id = $3",
                    (caller, task_id, config_id),
                )
            )
        )

    def enqueue_push(self, rows: list[OutboxRow]) -> Any:
        return self.db.write(
            *(
                (
                    _ENQUEUE,
                    (
                        r.task_id,
                        r.config_id,
                        r.seq,
                        r.body,
                        r.attempts,
                        r.lease_owner,
                        r.lease_until,
                    ),
                )
                for r in rows
            )
        )

    def touch_push(self, row: OutboxRow) -> Any:
        args = (row.attempts, row.lease_until, row.task_id, row.config_id, row.seq)
        return self.db.write((_TOUCH, args))

    def ack_push(self, row: OutboxRow) -> Any:
        return self.db.write((_ACK, (row.task_id, row.config_id, row.seq)))

    async def claim_push(self, owner: str, lease_until: float, limit: int) -> list[OutboxRow]:
        now = time.time()
        rows = await self.db.read(lambda c: c.fetch(_CLAIM, owner, lease_until, now, limit))
        return sorted((OutboxRow(*row) for row in rows), key=lambda r: r.seq)
