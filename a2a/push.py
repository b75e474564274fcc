"""Webhook delivery of task updates: ordered per webhook, retried with backoff, SSRF-guarded,
durable across restarts.

Each webhook gets its own worker and queue, so a receiver that hangs or fails delays only its
own notifications. Connections go through a session whose resolver refuses blocked addresses,
and redirects are followed by hand, only within the webhook's origin and with the same check,
so neither DNS nor a redirect can steer a notification (or its token and credentials) to a
private or metadata address or to another receiver. When `HTTP_PROXY`/`HTTPS_PROXY` name a
proxy for a webhook (and `NO_PROXY` does not exempt it), the notification goes through it,
and the guard judges the webhook's own address before each hop (the proxy connects to it).

Durability (at-least-once): every notification is written to the store's outbox, in the same
batch as the task update that caused it, leased to this process, and removed once delivered
(or given up). A process that dies leaves its rows; when their lease (`a2a.push.lease`) runs
out, this process after a restart, or another replica, claims them and delivers them in
order. Each POST carries `X-Junction-Task-Id` and `X-Junction-Sequence` (increasing per task;
the same on a redelivery), so a receiver drops what it has already seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import aiohttp
import orjson

from a2a.errors import INVALID_PARAMS, A2aError
from a2a.netguard import BlockedTargetError, Guard, GuardedResolver, same_origin
from a2a.settings import PushSettings
from a2a.store import OutboxRow
from a2a.versions.common import V03
from a2a.versions.jsonrpc03 import task_to_rpc03
from router_core.proxies import proxy_configured
from router_core.redaction import redact_url, redact_urls
from transports import Backoff

if TYPE_CHECKING:
    from a2a.store import TaskStore

log = logging.getLogger(__name__)

CLAIM_BATCH = 100

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Webhook:
    __slots__ = ("config", "queue", "worker")

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.queue: deque[tuple[OutboxRow, asyncio.Future[None] | None]] = deque()
        """Deliveries in order, each with the write that put it in the outbox."""
        self.worker: asyncio.Task[None] | None = None


class PushDispatcher:
    """Sends task events to the webhooks registered for each task."""

    def __init__(
        self, settings: PushSettings | None = None, store: TaskStore | None = None
    ) -> None:
        self.settings = settings or PushSettings()
        self.store = store
        """Where pending deliveries are kept (None: memory only)."""
        self.owner = os.urandom(8).hex()
        """This process's name on the outbox rows it holds."""
        self._seq = 0
        self._resumer: asyncio.Task[None] | None = None
        self._proxied: aiohttp.ClientSession | None = None
        self._proxy_env = proxy_configured()
        self.guard = Guard(
            self.settings.allow_hosts, allow_loopback=self.settings.allow_insecure_loopback
        )
        self._session: aiohttp.ClientSession | None = None
        self._hooks: dict[tuple[str, str], _Webhook] = {}
        self.delivered = 0
        self.failed = 0

    async def validate(self, url: str) -> None:
        """Refuse a webhook URL at registration (-32602) when it is bad without a lookup; a
        name is judged at delivery (see `Guard.check_registration`)."""
        try:
            self.guard.check_registration(url)
        except BlockedTargetError as exc:
            raise A2aError(
                INVALID_PARAMS, f"push notification URL refused: {exc}", {"url": url}
            ) from None

    def notify(
        self,
        task_id: str,
        configs: list[dict[str, Any]],
        event: dict[str, Any],
        task: dict[str, Any],
    ) -> None:
        """Queue `event` (1.0 StreamResponse) for every config; 0.3 configs get the Task itself.

        The outbox rows are written in this turn's batch (with the task update that caused
        them); each worker waits for its row's write before it delivers."""
        rows: list[OutboxRow] = []
        queued: list[tuple[tuple[str, str], _Webhook, OutboxRow]] = []
        for config in configs:
            key = (task_id, str(config.get("id")))
            hook = self._hooks.get(key)
            if hook is None:
                hook = self._hooks[key] = _Webhook(config)
            hook.config = config
            if config.get("_version") == V03:
                body = orjson.dumps(task_to_rpc03(task))
            else:
                body = orjson.dumps(event)
            row = OutboxRow(
                task_id, key[1], self._next_seq(), body, 0, self.owner, time.time() + self._lease()
            )
            rows.append(row)
            queued.append((key, hook, row))
        written: asyncio.Future[None] | None = None
        if self.store is not None and rows:
            written = asyncio.ensure_future(self.store.enqueue_push(rows))
            written.add_done_callback(_report_failure)
        for key, hook, row in queued:
            self._queue(key, hook, row, written)

    def _queue(
        self,
        key: tuple[str, str],
        hook: _Webhook,
        row: OutboxRow,
        written: asyncio.Future[None] | None,
    ) -> None:
        if len(hook.queue) >= self.settings.queue_size:
            dropped, _ = hook.queue.popleft()
            self._forget_row(dropped)
            log.warning("push queue for task %s webhook %s is full; dropped the oldest", *key)
        hook.queue.append((row, written))
        if hook.worker is None or hook.worker.done():
            hook.worker = asyncio.get_running_loop().create_task(
                self._drain(key, hook), name=f"a2a-push:{key[0]}"
            )

    def _next_seq(self) -> int:
        """Increasing within this process, and across restarts (microseconds since the epoch,
        bumped past the last one handed out)."""
        self._seq = max(self._seq + 1, time.time_ns() // 1000)
        return self._seq

    def _lease(self) -> float:
        return self.settings.lease

    def _forget_row(self, row: OutboxRow) -> None:
        if self.store is not None:
            asyncio.ensure_future(self.store.ack_push(row)).add_done_callback(_report_failure)

    # -- resuming what a stopped process left

    def start(self) -> None:
        """Begin claiming outbox rows whose lease ran out (call once the store is open)."""
        if self.store is not None and self._resumer is None:
            self._resumer = asyncio.get_running_loop().create_task(
                self._resume_forever(), name="a2a-push-resume"
            )

    async def _resume_forever(self) -> None:
        while True:
            try:
                claimed = await self.resume_once()
            except Exception as exc:  # the store is down: try again later
                log.warning("push: cannot read pending deliveries: %s", exc)
                claimed = 0
            if claimed < CLAIM_BATCH:
                await asyncio.sleep(self.settings.resume_interval)

    async def resume_once(self) -> int:
        """Claim deliveries whose lease has run out and queue them in order; how many."""
        assert self.store is not None
        rows = await self.store.claim_push(self.owner, time.time() + self._lease(), CLAIM_BATCH)
        configs: dict[str, dict[str, dict[str, Any]]] = {}
        for row in rows:
            if row.task_id not in configs:
                found = await self.store.list_push(row.task_id)
                configs[row.task_id] = {str(c.get("id")): c for c in found}
            config = configs[row.task_id].get(row.config_id)
            if config is None:  # the config was deleted since: nobody to deliver to
                self._forget_row(row)
                continue
            key = (row.task_id, row.config_id)
            hook = self._hooks.get(key)
            if hook is None:
                hook = self._hooks[key] = _Webhook(config)
            if any(queued.seq == row.seq for queued, _ in hook.queue):
                continue
            log.info("push: resuming delivery %s of task %s", row.seq, row.task_id)
            self._queue(key, hook, row, None)
        return len(rows)

    def forget(self, task_id: str, config_id: str) -> None:
        hook = self._hooks.pop((task_id, config_id), None)
        if hook is not None and hook.worker is not None:
            hook.worker.cancel()

    async def _drain(self, key: tuple[str, str], hook: _Webhook) -> None:
        while hook.queue:
            row, written = hook.queue[0]
            if written is not None:
                with contextlib.suppress(Exception):  # not stored: still delivered from memory
                    await written
            if await self._deliver(hook.config, row):
                self.delivered += 1
            else:
                self.failed += 1
            if hook.queue and hook.queue[0][0] is row:
                hook.queue.popleft()
            self._forget_row(row)
        if self._hooks.get(key) is hook and not hook.queue:
            del self._hooks[key]

    def _client(self, url: str) -> aiohttp.ClientSession:
        """The guarded session, or for a webhook the environment sends through a proxy, a
        session that connects to the proxy (the guard has judged the webhook's own address)."""
        if self._proxy_env:
            from aiohttp.helpers import get_env_proxy_for_url
            from yarl import URL

            try:
                get_env_proxy_for_url(URL(url))
            except LookupError:
                pass  # no proxy for it, or NO_PROXY names it: connect directly, guarded
            else:
                if self._proxied is None or self._proxied.closed:
                    self._proxied = aiohttp.ClientSession(
                        headers={"User-Agent": "junction"}, trust_env=True
                    )
                return self._proxied
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.guard), limit=256)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": "junction"}
            )
        return self._session

    async def _deliver(self, config: dict[str, Any], row: OutboxRow) -> bool:
        body = row.body
        headers = {
            "Content-Type": "application/json",
            "X-Junction-Task-Id": row.task_id,
            "X-Junction-Sequence": str(row.seq),
        }
        if config.get("token"):
            headers["X-A2A-Notification-Token"] = str(config["token"])
        auth = config.get("authentication")
        if isinstance(auth, dict) and auth.get("scheme") and auth.get("credentials"):
            headers["Authorization"] = f"{auth['scheme']} {auth['credentials']}"
        url = str(config.get("url"))
        retries = Backoff(
            self.settings.backoff, self.settings.max_backoff, self.settings.max_attempts - 1
        )
        while True:
            try:
                status = await self._post(url, body, headers)
            except BlockedTargetError as exc:
                log.warning("push to %s refused: %s", redact_url(url), redact_urls(str(exc)))
                return False
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            else:
                error = f"HTTP {status}"
            if status is not None and 200 <= status < 300:
                return True
            if status is not None and status not in _RETRY_STATUSES:
                log.warning("push to %s failed with %s; not retrying", redact_url(url), error)
                return False
            delay = retries.next_delay()
            if delay is None:
                break
            if self.store is not None:  # still ours while it waits, and the attempt counted
                row.attempts += 1
                row.lease_until = time.time() + delay + self.settings.timeout + self._lease()
                written = asyncio.ensure_future(self.store.touch_push(row))
                written.add_done_callback(_report_failure)
            log.info(
                "push to %s failed (%s), retry %d in %.2f s",
                redact_url(url),
                error,
                retries.used,
                delay,
            )
            await asyncio.sleep(delay)
        log.warning(
            "push to %s failed after %d attempts", redact_url(url), self.settings.max_attempts
        )
        return False

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST one notification; its HTTP status.

        A 307/308 is followed only within the webhook's origin, each hop guarded like the
        first. A redirect to another origin is refused (BlockedTargetError), as webhook senders
        commonly do: the token, the credentials and the task itself are for the receiver the
        client registered, not for wherever it points.
        """
        origin = url
        for _ in range(4):
            await self.guard.check_url(url)
            async with asyncio.timeout(self.settings.timeout):
                async with self._client(url).post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    location = response.headers.get("Location")
                    if response.status not in (307, 308) or not location:
                        return response.status
            try:
                url = urljoin(url, location)
            except ValueError:
                raise BlockedTargetError(f"redirect to an invalid URL {location!r}") from None
            if not same_origin(url, origin):
                raise BlockedTargetError(
                    f"redirect to another origin ({redact_url(url)}) not followed"
                )
        return 310  # too many redirects: a non-retryable failure

    async def close(self) -> None:
        """Stop delivering; what is still queued stays in the outbox, its lease given up so
        the next start (or another replica) resumes it at once."""
        if self._resumer is not None:
            self._resumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._resumer
        for hook in list(self._hooks.values()):
            if hook.worker is not None:
                hook.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await hook.worker
        if self.store is not None:
            for hook in self._hooks.values():
                for row, _ in hook.queue:
                    row.lease_until = 0.0
                    touched = asyncio.ensure_future(self.store.touch_push(row))
                    touched.add_done_callback(_report_failure)
        self._hooks.clear()
        for session in (self._session, self._proxied):
            if session is not None:
                await session.close()


def _report_failure(future: asyncio.Future[Any]) -> None:
    """An outbox write that failed: logged (the delivery itself goes on from memory)."""
    if not future.cancelled() and future.exception() is not None:
        log.warning("push: outbox write failed: %s", future.exception())
