"""2026-07-28 multi-round-trip requests (SEP-2322) through the gateway, over real HTTP.

The upstream (tests/fixtures/mcp_conformance_server.py, over stdio) answers some calls with an
input-required result; the gateway hands it to the client as it is, and the client's retry
(`inputResponses`, `requestState`) reaches the upstream unchanged. The official `mcp` SDK client
drives the rounds.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import pytest_asyncio
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway import Gateway, StdioUpstream, http_app
from tests.mcp_gateway.conftest import free_port, hosted
from tests.mcp_gateway.test_serving import _Serving

pytestmark = pytest.mark.asyncio(loop_scope="module")
FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "mcp_conformance_server.py")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def url() -> AsyncIterator[str]:
    upstream = StdioUpstream(name="fixture", command=sys.executable, args=(FIXTURE, "stdio"))
    gateway = Gateway([upstream])
    async with hosted(gateway):
        await gateway.wait_settled(20)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(http_app(gateway), host="127.0.0.1", port=port, log_level="warning")
        )
        async with hosted(_Serving(server)):
            yield f"http://127.0.0.1:{port}/mcp"


async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    """Answers each form with a value for every field it asks for."""
    assert isinstance(params, types.ElicitRequestFormParams)
    fields = params.requested_schema.get("properties", {})
    return types.ElicitResult(action="accept", content=dict.fromkeys(fields, "blue"))


def text(result: types.CallToolResult | types.GetPromptResult) -> str:
    content = (
        result.content[0]
        if isinstance(result, types.CallToolResult)
        else result.messages[0].content
    )
    assert isinstance(content, types.TextContent), result
    return content.text


async def test_rounds_of_input_requests_reach_the_client_and_its_answers_the_upstream(
    url: str,
) -> None:
    async with Client(
        streamable_http_client(url), mode="2026-07-28", elicitation_callback=answer
    ) as client:
        # Three rounds, a new requestState each: only an unchanged relay both ways gets here.
        three = await client.call_tool("fixture__test_input_required_result_multi_round", {})
        assert text(three) == "blue likes blue."
        state = await client.call_tool("fixture__test_input_required_result_request_state", {})
        assert text(state) == "state-ok: confirmation received"
        names = [p.name for p in (await client.list_prompts()).prompts]
        [name] = [n for n in names if n.endswith("test_input_required_result_prompt")]
        prompt = await client.get_prompt(name)
        assert text(prompt) == "Use the following context: blue"


async def test_the_upstream_asks_only_for_what_the_client_can_answer(url: str) -> None:
    async with Client(
        streamable_http_client(url), mode="2026-07-28", elicitation_callback=answer
    ) as client:
        first = await client.session.call_tool(
            "fixture__test_input_required_result_capabilities", {}, allow_input_required=True
        )
        assert isinstance(first, types.InputRequiredResult)
        assert set(first.input_requests or {}) == {"ask"}  # no sampling: this client has none
