"""Webhook redirects over real HTTP: the notification token and credentials never leave the
origin the client registered; a redirect inside it is followed, one elsewhere is not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from a2a.push import PushDispatcher
from a2a.settings import PushSettings
from tests.transports.servers import serve_app

TOKEN = "notification-token-1234"
CREDENTIALS = "webhook-credentials-5678"
CONFIG = {
    "id": "c1",
    "token": TOKEN,
    "authentication": {"scheme": "Bearer", "credentials": CREDENTIALS},
}
EVENT = {"statusUpdate": {"taskId": "t1", "status": {"state": "TASK_STATE_WORKING"}}}


class Receiver:
    """A webhook server: answers each POST with `redirect_to` (a 307) when set, else 200; keeps
    the path and headers of every request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.redirect_to: str | None = None

    async def endpoint(self, request: Request) -> Response:
        self.seen.append((request.url.path, dict(request.headers)))
        if self.redirect_to is not None and request.url.path == "/hook":
            return Response(status_code=307, headers={"Location": self.redirect_to})
        return Response(status_code=200)


@asynccontextmanager
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hooks = Receiver()
    app = Starlette(routes=[Route("/{path:path}", hooks.endpoint, methods=["POST"])])
    async with serve_app(app) as base:
        yield hooks, base


@asynccontextmanager
async def dispatcher() -> AsyncIterator[PushDispatcher]:
    push = PushDispatcher(PushSettings(allow_insecure_loopback=True, max_attempts=1, timeout=5))
    try:
        yield push
    finally:
        await push.close()


async def deliver(push: PushDispatcher, url: str) -> None:
    """Queue one notification to `url` and wait until it is delivered or has failed."""
    done = push.delivered + push.failed
    push.notify("t1", [{**CONFIG, "url": url}], EVENT, {})
    async with asyncio.timeout(10):
        while push.delivered + push.failed == done:  # noqa: ASYNC110 (polling counters)
            await asyncio.sleep(0.01)


def carries_secrets(headers: dict[str, Any]) -> bool:
    return TOKEN in str(headers) or CREDENTIALS in str(headers)


async def test_a_redirect_to_another_origin_is_not_followed() -> None:
    async with receiver() as (first, first_base), receiver() as (second, second_base):
        first.redirect_to = f"{second_base}/stolen"
        async with dispatcher() as push:
            await deliver(push, f"{first_base}/hook")
            assert (push.delivered, push.failed) == (0, 1)
    assert [path for path, _ in first.seen] == ["/hook"]
    assert carries_secrets(first.seen[0][1])
    assert second.seen == []


async def test_a_redirect_within_the_origin_keeps_the_credentials() -> None:
    async with receiver() as (hooks, base):
        hooks.redirect_to = "/moved"
        async with dispatcher() as push:
            await deliver(push, f"{base}/hook")
            assert (push.delivered, push.failed) == (1, 0)
    assert [path for path, _ in hooks.seen] == ["/hook", "/moved"]
    moved = hooks.seen[1][1]
    assert moved["x-a2a-notification-token"] == TOKEN
    assert moved["authorization"] == f"Bearer {CREDENTIALS}"


@pytest.mark.parametrize(
    "location", ["http://[::1/x", "http://169.254.169.254/latest/meta-data/", "ftp://x/"]
)
async def test_a_bad_or_blocked_redirect_fails_that_delivery_only(location: str) -> None:
    async with receiver() as (hooks, base):
        hooks.redirect_to = location
        async with dispatcher() as push:
            await deliver(push, f"{base}/hook")
            assert (push.delivered, push.failed) == (0, 1)
            hooks.redirect_to = None  # the webhook worker is still there for the next one
            await deliver(push, f"{base}/hook")
            assert (push.delivered, push.failed) == (1, 1)
