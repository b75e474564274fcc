"""Webhook delivery of task updates: ordered per webhook, retried with backoff, SSRF-guarded.

Each webhook gets its own worker and queue, so a receiver that hangs or fails delays only its
own notifications. Connections go through a session whose resolver refuses blocked addresses,
and redirects are followed by hand, only within the webhook's origin and with the same check,
so neither DNS nor a redirect can steer a notification (or its token and credentials) to a
private or metadata address or to another receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any
from urllib.parse import urljoin

import aiohttp
import orjson

from a2a.errors import INVALID_PARAMS, A2aError
from a2a.netguard import BlockedTargetError, Guard, GuardedResolver, same_origin
from a2a.settings import PushSettings
from a2a.versions.common import V03
from a2a.versions.jsonrpc03 import task_to_rpc03
from router_core.redaction import redact_url, redact_urls
from transports import Backoff

log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class _Webhook:
    __slots__ = ("config", "queue", "worker")

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.queue: deque[bytes] = deque()
        self.worker: asyncio.Task[None] | None = None


class PushDispatcher:
    """Sends task events to the webhooks registered for each task."""

    def __init__(self, settings: PushSettings | None = None) -> None:
        self.settings = settings or PushSettings()
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
        """Queue `event` (1.0 StreamResponse) for every config; 0.3 configs get the Task itself."""
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
            if len(hook.queue) >= self.settings.queue_size:
                hook.queue.popleft()
                log.warning("push queue for task %s webhook %s is full; dropped the oldest", *key)
            hook.queue.append(body)
            if hook.worker is None or hook.worker.done():
                hook.worker = asyncio.get_running_loop().create_task(
                    self._drain(key, hook), name=f"a2a-push:{task_id}"
                )

    def forget(self, task_id: str, config_id: str) -> None:
        hook = self._hooks.pop((task_id, config_id), None)
        if hook is not None and hook.worker is not None:
            hook.worker.cancel()

    async def _drain(self, key: tuple[str, str], hook: _Webhook) -> None:
        while hook.queue:
            body = hook.queue.popleft()
            if await self._deliver(hook.config, body):
                self.delivered += 1
            else:
                self.failed += 1
        if self._hooks.get(key) is hook and not hook.queue:
            del self._hooks[key]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.guard), limit=256)
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": "junction"}
            )
        return self._session

    async def _deliver(self, config: dict[str, Any], body: bytes) -> bool:
        headers = {"Content-Type": "application/json"}
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
                async with self._client().post(
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
        for hook in list(self._hooks.values()):
            if hook.worker is not None:
                hook.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await hook.worker
        self._hooks.clear()
        if self._session is not None:
            await self._session.close()
