"""Server-to-client requests and log messages of an upstream, carried to the caller of the call.

The upstream is tests/fixtures/mcp_conformance_server.py (the `mcp` SDK) over stdio. Spoken to
at 2025-11-25 (`protocol: legacy`) it asks its client with `elicitation/create`,
`sampling/createMessage` and logs with `notifications/message` while a tool runs; spoken to at
2026-07-28 it answers some calls with an input-required result instead. Callers: the official
`mcp` SDK client over real HTTP (both generations), and an in-process caller of
`Gateway.call_tool(..., on_request=...)`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
import pytest_asyncio
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from mcp_gateway import Gateway, GatewayError, StdioUpstream, http_app
from tests.mcp_gateway.conftest import free_port, hosted
from tests.mcp_gateway.test_serving import _Serving, junction_mcp_command

pytestmark = pytest.mark.asyncio(loop_scope="module")
FIXTURE = str(Path(__file__).parents[1] / "fixtures" / "mcp_conformance_server.py")


def fixture(name: str, protocol: str, legacy_session: bool = True) -> StdioUpstream:
    return StdioUpstream(
        name=name,
        command=sys.executable,
        args=(FIXTURE, "stdio"),
        protocol=protocol,  # type: ignore[arg-type]
        legacy_session=legacy_session,
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway([fixture("old", "legacy"), fixture("new", "auto"), fixture("one", "auto", False)])
    async with hosted(gw):
        await gw.wait_settled(30)
        yield gw


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def url(gateway: Gateway) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(http_app(gateway), host="127.0.0.1", port=port, log_level="warning")
    )
    async with hosted(_Serving(server)):
        yield f"http://127.0.0.1:{port}/mcp"


def text(result: dict[str, Any] | types.CallToolResult) -> str:
    if isinstance(result, dict):
        return str(result["content"][0]["text"])
    content = result.content[0]
    assert isinstance(content, types.TextContent), result
    return content.text


async def answer_form(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    assert isinstance(params, types.ElicitRequestFormParams)
    fields = params.requested_schema.get("properties", {})
    return types.ElicitResult(action="accept", content=dict.fromkeys(fields, "blue"))


async def sample(context: Any, params: types.CreateMessageRequestParams) -> Any:
    first = params.messages[0].content
    said = first.text if isinstance(first, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"echo {said}"), model="m"
    )


async def test_in_process_on_request_answers_a_legacy_upstreams_requests(
    gateway: Gateway,
) -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append((method, params))
        if method == "elicitation/create":
            return {"action": "accept", "content": {"response": "yes"}}
        return {
            "role": "assistant",
            "content": {"type": "text", "text": "Paris"},
            "model": "test-model",
        }

    elicited = await gateway.call_tool(
        "old__test_elicitation", {"message": "Sure?"}, on_request=on_request
    )
    assert text(elicited) == 'User response: action=accept, content={"response":"yes"}'
    sampled = await gateway.call_tool(
        "old__test_sampling", {"prompt": "Capital?"}, on_request=on_request
    )
    assert text(sampled) == "LLM response: Paris"
    assert [m for m, _ in asked] == ["elicitation/create", "sampling/createMessage"]
    assert asked[0][1]["message"] == "Sure?"
    assert asked[1][1]["messages"][0]["content"]["text"] == "Capital?"


async def test_a_hook_error_reaches_the_upstream_and_no_hook_is_method_not_found(
    gateway: Gateway,
) -> None:
    async def refuse(method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise GatewayError(-32042, "the user closed the dialog")

    refused = await gateway.call_tool("old__test_elicitation", {"message": "?"}, on_request=refuse)
    assert "the user closed the dialog" in text(refused)  # the fixture reports what it got
    unanswered = await gateway.call_tool("old__test_elicitation", {"message": "?"})
    assert "the caller cannot answer it" in text(unanswered)


async def test_in_process_on_request_resolves_a_2026_upstreams_input_required_result(
    gateway: Gateway,
) -> None:
    asked: list[str] = []

    async def on_request(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append(str(params.get("message")))
        return {"action": "accept", "content": {"name": "Ada", "color": "green"}}

    result = await gateway.call_tool(
        "new__test_input_required_result_multi_round", {}, on_request=on_request
    )
    assert text(result) == "Ada likes green."
    assert asked == ["Step 1: What is your name?", "Step 2: What is your favorite color?"]
    raw = await gateway.call_tool("new__test_input_required_result_multi_round", {})
    assert raw["resultType"] == "input_required"  # no hook: handed back as it is


async def test_a_legacy_client_answers_a_legacy_upstream_and_hears_its_logs(url: str) -> None:
    logs: list[types.LoggingMessageNotificationParams] = []

    async def logged(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with Client(
        streamable_http_client(url),
        mode="legacy",
        elicitation_callback=answer_form,
        sampling_callback=sample,
        logging_callback=logged,
    ) as client:
        elicited = await client.call_tool("old__test_elicitation", {"message": "Sure?"})
        assert text(elicited) == 'User response: action=accept, content={"response":"blue"}'
        sampled = await client.call_tool("old__test_sampling", {"prompt": "hi"})
        assert text(sampled) == "LLM response: echo hi"
        await client.call_tool("old__test_tool_with_logging", {})
    said = [entry.data for entry in logs]
    assert said == ["Tool execution started", "Tool processing data", "Tool execution completed"]
    assert all((entry.meta or {}).get("junction/server") == "old" for entry in logs)


async def test_a_legacy_client_answers_a_2026_upstreams_input_requests(url: str) -> None:
    """Over the one 2026-07-28 session (`legacy_session` off): each input request of the
    upstream's input-required result is asked of the client, and the answers resume it."""
    async with Client(
        streamable_http_client(url), mode="legacy", elicitation_callback=answer_form
    ) as client:
        result = await client.call_tool("one__test_input_required_result_multi_round", {})
        assert text(result) == "blue likes blue."


async def test_a_legacy_client_gets_a_2025_session_of_a_server_speaking_both(url: str) -> None:
    """A tool written for 2025-11-25 clients asks its client with a request, which a
    2026-07-28 session cannot carry: the legacy client's call goes over a 2025-11-25 one."""
    async with Client(
        streamable_http_client(url),
        mode="legacy",
        elicitation_callback=answer_form,
        sampling_callback=sample,
    ) as client:
        sampled = await client.call_tool("new__test_sampling", {"prompt": "hi"})
        assert text(sampled) == "LLM response: echo hi"
        shared = await client.call_tool("one__test_sampling", {"prompt": "hi"})
        assert "no back-channel" in text(shared)  # legacy_session off: the 2026 session's limit


async def test_a_client_without_the_capability_is_never_asked(url: str) -> None:
    async with Client(streamable_http_client(url), mode="legacy") as client:
        result = await client.call_tool("old__test_elicitation", {"message": "?"})
    assert "did not declare the elicitation capability" in text(result)


async def test_a_2026_client_answers_a_legacy_upstream_through_input_required_rounds(
    url: str,
) -> None:
    async with Client(
        streamable_http_client(url),
        mode="2026-07-28",
        elicitation_callback=answer_form,
        sampling_callback=sample,
    ) as client:
        first = await client.session.call_tool(
            "old__test_elicitation", {"message": "Sure?"}, allow_input_required=True
        )
        assert isinstance(first, types.InputRequiredResult)
        [request] = (first.input_requests or {}).values()
        assert isinstance(request, types.ElicitRequest)
        assert request.params.message == "Sure?"
        # The SDK's driver answers the rounds and retries with the state: the call completes.
        elicited = await client.call_tool("old__test_elicitation", {"message": "Sure?"})
        assert text(elicited) == 'User response: action=accept, content={"response":"blue"}'
        sampled = await client.call_tool("old__test_sampling", {"prompt": "hi"})
        assert text(sampled) == "LLM response: echo hi"
        with pytest.raises(Exception, match="unknown or expired"):
            await client.session.call_tool(
                "old__test_elicitation",
                {"message": "?"},
                input_responses={"junction-1": types.ElicitResult(action="cancel")},
                request_state="junction-round:forged",
            )


async def test_a_subscribed_client_hears_the_upstreams_resource_updates(url: str) -> None:
    updates: list[str] = []
    elsewhere: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    async def not_subscribed(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            elsewhere.append(str(message.params.uri))

    uri = "junction+old:test://watched-resource"  # three servers list it: each under its name
    legacy = {"mode": "legacy"}
    async with Client(streamable_http_client(url), **legacy, message_handler=on_message) as a:
        async with Client(
            streamable_http_client(url), **legacy, message_handler=not_subscribed
        ) as other:
            await a.subscribe_resource(uri)
            await other.call_tool("old__touch_watched_resource", {})
            with anyio.fail_after(10):
                while not updates:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            await a.unsubscribe_resource(uri)
    assert updates == [uri]
    assert elsewhere == []  # only the subscriber hears it


async def test_junction_mode_mcp_relays_over_stdio(tmp_path: Path) -> None:
    """The same relays with `junction --mode mcp` as the server, over its stdin/stdout."""
    config = tmp_path / "junction.yaml"
    server = {"command": sys.executable, "args": [FIXTURE, "stdio"], "legacy_session": True}
    config.write_text(json.dumps({"mcp_servers": {"fx": server}}))
    command = junction_mcp_command(config)
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with Client(
        params, mode="legacy", elicitation_callback=answer_form, sampling_callback=sample
    ) as old:
        elicited = await old.call_tool("fx__test_elicitation", {"message": "Sure?"})
        assert text(elicited) == 'User response: action=accept, content={"response":"blue"}'
    async with Client(params, mode="2026-07-28", elicitation_callback=answer_form) as new:
        rounds = await new.call_tool("fx__test_input_required_result_multi_round", {})
        assert text(rounds) == "blue likes blue."


async def test_an_upstream_giving_up_on_its_question_withdraws_it_from_the_client(
    url: str,
) -> None:
    """The upstream stops waiting for an answer (it sends `notifications/cancelled`): the
    question relayed to the client is withdrawn too, and the call still completes."""
    withdrawn = anyio.Event()

    async def never_answers(context: Any, params: types.ElicitRequestParams) -> Any:
        try:
            await anyio.sleep_forever()
        finally:
            withdrawn.set()

    async with Client(
        streamable_http_client(url), mode="legacy", elicitation_callback=never_answers
    ) as client:
        result = await client.call_tool("old__ask_with_deadline", {})
        assert text(result).startswith("gave up")
        with anyio.fail_after(10):
            await withdrawn.wait()


async def test_an_upstreams_error_reaches_the_caller_as_it_gave_it(gateway: Gateway) -> None:
    """Code, message and data unchanged (here -32021 with data.requiredCapabilities)."""
    caps = {"io.modelcontextprotocol/clientCapabilities": {}}
    with pytest.raises(GatewayError) as info:
        await gateway.call_tool("new__test_missing_capability", {}, meta=caps)
    assert info.value.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert info.value.message == "This tool requires the client 'sampling' capability"
    assert info.value.data == {"requiredCapabilities": {"sampling": {}}}


async def test_subscriptions_of_both_generations_share_the_upstreams_one(url: str) -> None:
    """A 2026-07-28 listen stream and two 2025-11-25 clients subscribe to one resource; the
    upstream is released only when the last one goes, so nobody silences another."""
    from mcp.shared.subscriptions import ResourceUpdated

    uri = "junction+old:test://watched-resource"
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            heard.append(str(message.params.uri))

    async def touched(client: Client) -> None:
        await client.call_tool("old__touch_watched_resource", {})

    async with (
        Client(streamable_http_client(url), mode="2026-07-28") as new,
        Client(streamable_http_client(url), mode="legacy", message_handler=on_message) as a,
        Client(streamable_http_client(url), mode="legacy") as b,
    ):
        await a.subscribe_resource(uri)
        await b.subscribe_resource(uri)
        await b.unsubscribe_resource(uri)  # a still holds it upstream
        async with new.listen(resource_subscriptions=[uri]) as stream:
            await touched(b)
            with anyio.fail_after(10):
                async for event in stream:
                    assert isinstance(event, ResourceUpdated)
                    assert event.uri == uri
                    break
        with anyio.fail_after(10):
            while not heard:  # noqa: ASYNC110
                await anyio.sleep(0.02)
    assert heard[0] == uri


async def test_a_2024_11_05_client_speaks_http_sse_beside_streamable_http(url: str) -> None:
    """`GET /mcp/sse` + `POST /mcp/messages/` (the SDK's SSE client): tools, calls and the
    relays work as over Streamable HTTP."""
    base = url.removesuffix("/mcp")
    async with Client(
        sse_client(f"{base}/mcp/sse"), mode="legacy", elicitation_callback=answer_form
    ) as client:
        listed = {t.name for t in (await client.list_tools()).tools}
        assert "old__test_elicitation" in listed
        elicited = await client.call_tool("old__test_elicitation", {"message": "Sure?"})
        assert text(elicited) == 'User response: action=accept, content={"response":"blue"}'


async def test_a_legacy_client_hears_only_the_levels_it_set(url: str) -> None:
    """The upstream logs at info whatever it was told; the client set warning: nothing."""
    logs: list[Any] = []

    async def logged(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async with Client(streamable_http_client(url), mode="legacy", logging_callback=logged) as c:
        await c.set_logging_level("warning")
        await c.call_tool("old__test_tool_with_logging", {})
        await c.set_logging_level("info")
        await c.call_tool("old__test_tool_with_logging", {})
    assert logs == ["Tool execution started", "Tool processing data", "Tool execution completed"]


async def test_a_2026_upstreams_resource_updates_reach_a_subscribed_legacy_client(
    url: str,
) -> None:
    """A 2026-07-28 upstream has no resources/subscribe: Junction watches the URI on a listen
    stream to it, and its updates reach the 2025-11-25 subscriber."""
    uri = "junction+new:test://watched-resource"
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            heard.append(str(message.params.uri))

    async with (
        Client(streamable_http_client(url), mode="legacy", message_handler=on_message) as a,
        Client(streamable_http_client(url), mode="2026-07-28") as b,
    ):
        await a.subscribe_resource(uri)
        with anyio.fail_after(10):
            while not heard:  # the watch opens in the background: touch until it is heard
                await b.call_tool("new__touch_watched_resource", {})
                await anyio.sleep(0.1)
        await a.unsubscribe_resource(uri)
    assert set(heard) == {uri}


async def test_progress_of_a_parked_call_reaches_the_round_open_now(url: str) -> None:
    """A 2026-07-28 client, a 2025-11-25 upstream that asks, then reports progress: the
    progress reaches the client on its retry (the request open then), not the first round's."""
    steps: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async with Client(
        streamable_http_client(url), mode="2026-07-28", elicitation_callback=answer_form
    ) as client:
        result = await client.call_tool("old__ask_then_progress", {}, progress_callback=on_progress)
    assert text(result) == "done after accept"
    assert steps == [1, 2, 3]


async def test_a_2026_client_is_never_asked_what_it_cannot_answer(url: str) -> None:
    """No sampling capability: a 2025-11-25 upstream's sampling request is refused for it,
    not turned into an input request it could not answer."""
    async with Client(
        streamable_http_client(url), mode="2026-07-28", elicitation_callback=answer_form
    ) as client:
        first = await client.session.call_tool(
            "old__test_sampling", {"prompt": "hi"}, allow_input_required=True
        )
    assert isinstance(first, types.CallToolResult)
    assert "did not declare the sampling capability" in text(first)
