"""Fixtures shared by the A2A test modules (each module gets its own instance)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.a2a.harness import Webhooks, webhook_receiver


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def webhooks() -> AsyncIterator[tuple[Webhooks, str]]:
    async with webhook_receiver() as receiver:
        yield receiver
