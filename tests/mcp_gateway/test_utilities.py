"""completion/complete, logging/setLevel and resource subscriptions through the gateway.

A handshake-era (2025-11-25) client over real HTTP; the upstream is the conformance fixture
(tests/fixtures/mcp_conformance_server.py) over stdio, which connects at 2026-07-28.
"""

from __future__ import annotations

import warnings

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.mcp_gateway.test_multi_round import url

pytestmark = pytest.mark.asyncio(loop_scope="module")
__all__ = ["url"]


async def test_completion_is_routed_to_the_prompts_owner(url: str) -> None:
    async with Client(streamable_http_client(url), mode="legacy") as client:
        names = [p.name for p in (await client.list_prompts()).prompts]
        [name] = [n for n in names if n.endswith("test_prompt_with_arguments")]
        done = await client.complete(
            types.PromptReference(type="ref/prompt", name=name), {"name": "arg1", "value": "a"}
        )
        assert done.completion.values == []
        template = types.ResourceTemplateReference(
            type="ref/resource", uri="test://template/{id}/data"
        )
        assert (
            await client.complete(template, {"name": "id", "value": "1"})
        ).completion.values == []


async def test_log_level_and_subscriptions_are_answered(url: str) -> None:
    async with Client(streamable_http_client(url), mode="legacy") as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated at 2026-07-28, current at 2025-11-25
            await client.set_logging_level("debug")
            await client.subscribe_resource("test://watched-resource")
            await client.unsubscribe_resource("test://watched-resource")
            with pytest.raises(Exception, match="Unknown resource"):
                await client.subscribe_resource("test://nothing-here")
