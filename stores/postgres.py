"""PostgreSQL under the stores: an asyncpg pool, the schema check, and group commit.

Driver: asyncpg, chosen by measurement (docs/performance.md, "Store"): on loopback a two-row
upsert transaction takes ~185-320 us and a primary-key read ~48 us, against ~250-450 us and
~100 us with psycopg 3 in pipeline mode, and it imports in 58 ms against 107 ms.

Writes are group-committed as the SQLite task store does: everything written in one event-loop
turn goes to the server as one batch (one `executemany` when it is one statement, else one
transaction), a writer's `await` returns once its write is committed, writes land in the order
they were issued, and a read first waits for the writes issued before it. While a batch is on
the wire the next one gathers, so under load a round trip carries many writes.

When the server cannot be reached (down, restarting, refusing connections), the operation
raises `StoreUnavailableError` at once: nothing is acknowledged that was not committed, the
process stays up, and the pool reconnects by itself when the server is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from stores.urls import redact_dsn

T = TypeVar("T")
Statement = tuple[str, tuple[Any, ...]]

log = logging.getLogger(__name__)


class StoreUnavailableError(ConnectionError):
    """The database cannot be reached now; the operation was not done (a write: not
    acknowledged). Try again later."""


class _Job:
    __slots__ = ("done", "idempotent", "statements")

    def __init__(
        self, statements: tuple[Statement, ...], done: asyncio.Future[None], idempotent: bool
    ) -> None:
        self.statements = statements
        self.done = done
        self.idempotent = idempotent


def _lost(exc: BaseException) -> bool:
    """Whether `exc` means the server is out of reach (as opposed to a bad statement)."""
    import asyncpg

    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError  # a connection the server closed while it sat idle
        | asyncpg.exceptions.OperatorInterventionError,
    )


def _settle(jobs: list[_Job], outcome: BaseException | None) -> None:
    for job in jobs:
        if job.done.done():
            continue  # its writer was cancelled; the write stands
        if outcome is None:
            job.done.set_result(None)
        else:
            job.done.set_exception(outcome)


class PgDatabase:
    """One pool per store URL and process; `write` batches, `read` queries."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.where = redact_dsn(dsn)
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: Any = None
        self._schema_ok = False
        self._schema_lock = asyncio.Lock()
        self._pending: list[_Job] = []
        self._scheduled = False
        self._writer: asyncio.Task[None] | None = None
        self._last: asyncio.Future[None] | None = None
        self.users = 0
        """Stores sharing this database (the last to close closes the pool)."""

    # -- lifecycle

    async def open(self) -> None:
        """Create the pool (no connection yet) and bring the schema up to date if the server
        answers; if it does not, that is logged and retried on the first operation."""
        await self.open_pool()
        try:
            await self.ensure_schema()
        except StoreUnavailableError as exc:
            log.error("%s; requests that need the store fail until it is back", exc)

    async def open_pool(self) -> None:
        if self._pool is None:
            import asyncpg

            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=0,
                max_size=self.pool_size,
                timeout=self.connect_timeout,
                command_timeout=self.command_timeout,
            )

    async def close(self) -> None:
        await self.flush()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"the store at {self.where} is unavailable ({type(exc).__name__}: {exc})"
        )

    async def ensure_schema(self) -> list[str]:
        """Migrate once per process (one version query when current)."""
        if self._schema_ok:
            return []
        async with self._schema_lock:
            if self._schema_ok:
                return []
            from stores.schema import migrate_postgres

            try:
                async with self._acquire() as conn:
                    applied = await migrate_postgres(conn, self.where)
            except Exception as exc:
                if _lost(exc):
                    raise self._unavailable(exc) from None
                raise
            self._schema_ok = True
            return applied

    def _acquire(self) -> Any:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool.acquire()

    # -- writes

    def write(self, *statements: Statement, idempotent: bool = True) -> asyncio.Future[None]:
        """Queue statements for this turn's batch; await the result to know they are
        committed. `idempotent`: safe to send again when the connection dropped mid-way."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append(_Job(statements, done, idempotent))
        self._last = done
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._kick)
        return done

    def _kick(self) -> None:
        self._scheduled = False
        if self._pending and (self._writer is None or self._writer.done()):
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await self._commit(batch)

    async def _commit(self, batch: list[_Job]) -> None:
        statements = [s for job in batch for s in job.statements]
        retry = all(job.idempotent for job in batch)
        try:
            await self._execute(statements, retry)
        except StoreUnavailableError as exc:
            _settle(batch, exc)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch, exc)
                return
            for job in batch:  # one bad write fails only its own writer
                try:
                    await self._execute(list(job.statements), job.idempotent)
                except Exception as single:
                    _settle([job], single)
                else:
                    _settle([job], None)
        else:
            _settle(batch, None)

    async def _execute(self, statements: list[Statement], retry: bool) -> None:
        groups: list[tuple[str, list[tuple[Any, ...]]]] = []
        for sql, args in statements:
            if groups and groups[-1][0] == sql:
                groups[-1][1].append(args)
            else:
                groups.append((sql, [args]))

        async def run(conn: Any) -> None:
            if len(groups) == 1:  # one statement: executemany is atomic on its own
                sql, rows = groups[0]
                if len(rows) == 1:  # the common case at low load: ~20 us cheaper
                    await conn.execute(sql, *rows[0])
                else:
                    await conn.executemany(sql, rows)
                return
            async with conn.transaction():
                for sql, rows in groups:
                    await conn.executemany(sql, rows)

        await self._with_connection(run, retry)

    async def flush(self) -> None:
        """Wait until every write issued so far is committed (or has failed)."""
        if self._pending and (self._writer is None or self._writer.done()):
            self._kick()
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    # -- reads

    async def read(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run `fn(connection)` once the writes issued before this call are committed (a
        failed one does not stop the read); a dropped connection is retried once."""
        last = self._last
        if last is not None and not last.done():
            if self._pending:
                self._kick()
            await asyncio.wait([last])
        return await self._with_connection(fn, True)

    async def _with_connection(self, fn: Callable[[Any], Awaitable[T]], retry: bool) -> T:
        await self.ensure_schema()
        for attempt in (1, 2):
            try:
                async with self._acquire() as conn:
                    try:
                        return await fn(conn)
                    except Exception as exc:
                        if _lost(exc):
                            conn.terminate()  # never back into the pool
                        raise
            except Exception as exc:
                if not _lost(exc):
                    raise
                if attempt == 2 or not retry:
                    raise self._unavailable(exc) from None
                log.debug("store: connection lost (%s); trying once more", exc)
        raise AssertionError("unreachable")
