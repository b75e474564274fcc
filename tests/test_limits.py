"""Rate limits and quotas in one process (counters in memory), over real HTTP with the official
clients: `openai` gets a 429 with `Retry-After` on `/v1`, the `mcp` SDK a JSON-RPC error on a
tool call, the A2A hub answers a refused message in JSON-RPC and with 429 on HTTP+JSON, and
usage shows in `/admin/usage` and `/metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from junction import Junction
from junction.config import ConfigError, validate_config
from router_core.quota import RATE_LIMITED
from tests.router_core.llm_servers import FakeLLMServer, openai_server
from tests.transports.servers import serve_app

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def clear_of_minute_boundary() -> None:
    """Limits count in clock minutes: start a test's calls early in one, so they share it."""
    into = time.time() % 60
    if into > 50:
        await asyncio.sleep(60.5 - into)


def config(tmp: Path, model: FakeLLMServer, **extra: Any) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{tmp}/junction.db"},
        "backends": {"fake": {"type": "openai", "url": f"{model.url}/v1", "models": ["m1", "m2"]}},
        **extra,
    }


@contextlib.asynccontextmanager
async def served(doc: dict[str, Any]) -> AsyncIterator[str]:
    junction = Junction.from_config(doc)
    async with junction, serve_app(junction.asgi_app()) as base:
        yield base


def client(base: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


def test_limits_config_is_checked_with_key_paths() -> None:
    with pytest.raises(ConfigError) as bad:
        validate_config(
            {
                "limits": {"models": {"m1": {"requests_per_minute": -1}}},
                "server": {"api_keys": [{"key": "k", "limits": {"tokens_per_hour": 5}}]},
                "cluster": {"redis_url": "http://127.0.0.1:6379"},
            },
            "test.yaml",
        )
    text = str(bad.value)
    assert "limits.models.m1.requests_per_minute" in text
    assert "server.api_keys.0.limits" in text and "tokens_per_hour" in text
    assert "cluster.redis_url" in text


async def test_openai_client_gets_429_with_retry_after(tmp_path: Path) -> None:
    keys = [
        {"key": "ci-key", "name": "ci", "limits": {"requests_per_minute": 2}},
        {"key": "other-key", "name": "other"},
    ]
    async with openai_server(models=["m1"]) as model:
        async with served(config(tmp_path, model, server={"api_keys": keys})) as base:
            await clear_of_minute_boundary()
            for _ in range(2):
                answer = await client(base, "ci-key").chat.completions.create(
                    model="m1", messages=MESSAGES
                )
                assert answer.choices[0].message.content
            with pytest.raises(openai.RateLimitError) as refused:
                await client(base, "ci-key").chat.completions.create(model="m1", messages=MESSAGES)
            retry_after = int(refused.value.response.headers["retry-after"])
            assert 1 <= retry_after <= 60
            assert refused.value.code == "rate_limit_exceeded"
            assert "requests_per_minute of 'ci' (2)" in refused.value.message
            # Another key counts on its own; the refused call never reached the model.
            await client(base, "other-key").chat.completions.create(model="m1", messages=MESSAGES)
            assert len(model.chat_requests) == 3


async def test_token_quota_per_model_and_the_usage_it_reports(tmp_path: Path) -> None:
    keys = [{"key": "ci-key", "name": "ci", "scopes": ["openai"]}, {"key": "root", "name": "root"}]
    limits = {"models": {"m1": {"tokens_per_minute": 20}}}
    async with openai_server(models=["m1", "m2"]) as model:
        doc = config(tmp_path, model, server={"api_keys": keys}, limits=limits)
        async with served(doc) as base:
            await clear_of_minute_boundary()
            ci = client(base, "ci-key")
            for _ in range(2):  # 15 tokens each: the second starts under 20
                await ci.chat.completions.create(model="m1", messages=MESSAGES)
            with pytest.raises(openai.RateLimitError) as refused:
                await ci.chat.completions.create(model="m1", messages=MESSAGES)
            assert "tokens_per_minute of model 'm1' for 'ci' (20)" in refused.value.message
            await ci.chat.completions.create(model="m2", messages=MESSAGES)  # another model

            async with httpx.AsyncClient(base_url=base) as http:
                denied = await http.get("/admin/usage", headers={"Authorization": "Bearer ci-key"})
                assert denied.status_code == 403
                usage = (
                    await http.get("/admin/usage", headers={"Authorization": "Bearer root"})
                ).json()
                metrics = (
                    await http.get("/metrics", headers={"Authorization": "Bearer root"})
                ).text
    assert usage["counters"] == "memory"
    ci_usage = usage["principals"]["ci"]
    assert ci_usage["models"]["m1"] == {"requests": 2, "refused": 1, "tokens": 30}
    assert ci_usage["models"]["m2"] == {"requests": 1, "refused": 0, "tokens": 15}
    assert ci_usage["tokens"] == 45
    assert 'junction_caller_tokens_total{model="m1",principal="ci"} 30.0' in metrics
    assert 'junction_caller_refusals_total{kind="models",name="m1",principal="ci"} 1.0' in metrics


async def test_mcp_client_gets_a_json_rpc_error_over_a_tool_limit(tmp_path: Path) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from mcp_gateway._sdk import create_mcp_http_client
    from tests.peers import python_peer

    time_server = {
        "command": str(python_peer("mcp-server-time")),
        "args": ["-m", "mcp_server_time"],
    }
    doc = {
        "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
        "server": {"api_keys": [{"key": "k", "name": "tools"}]},
        "mcp_servers": {"time": time_server},
        "limits": {"mcp_tools": {"time__*": {"requests_per_minute": 1}}},
    }
    junction = Junction.from_config(doc)
    async with junction, serve_app(junction.asgi_app()) as base:
        await junction.gateway.wait_settled(30)
        await clear_of_minute_boundary()
        http = create_mcp_http_client(headers={"Authorization": "Bearer k"})
        async with http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as c:
            arguments = {"timezone": "UTC"}
            first = await c.call_tool("time__get_current_time", arguments)
            assert not first.is_error
            with pytest.raises(MCPError) as refused:
                await c.call_tool("time__get_current_time", arguments)
            error = refused.value.error
            assert error.code == RATE_LIMITED
            assert "requests_per_minute of tool 'time__get_current_time'" in error.message
            assert isinstance(error.data, dict) and 1 <= error.data["retryAfter"] <= 60
            # Listing is no call: it still answers.
            assert "time__get_current_time" in {t.name for t in (await c.list_tools()).tools}


async def test_a2a_message_over_an_agent_limit(tmp_path: Path) -> None:
    from tests.a2a.harness import sdk_agent

    with sdk_agent("pub", "1.0") as pub:
        doc = {
            "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
            "server": {"api_keys": [{"key": "k", "name": "caller"}]},
            "a2a": {"card_timeout": 5},
            "a2a_agents": {"pub": {"url": pub}},
            "limits": {"a2a_agents": {"pub": {"requests_per_minute": 1}}},
        }
        async with served(doc) as base, httpx.AsyncClient(base_url=base) as http:
            await clear_of_minute_boundary()
            headers = {"Authorization": "Bearer k", "A2A-Version": "1.0"}
            message = {
                "message": {"role": "ROLE_USER", "messageId": "m-1", "parts": [{"text": "hi"}]}
            }
            rpc = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": message}
            first = await http.post("/a2a/agents/pub", json=rpc, headers=headers)
            assert "result" in first.json(), first.text
            second = await http.post("/a2a/agents/pub", json=rpc, headers=headers)
            error = second.json()["error"]
            assert (
                error["code"] == RATE_LIMITED
                and "requests_per_minute of agent 'pub'" in (error["message"])
            )
            rest = await http.post("/a2a/agents/pub/message:send", json=message, headers=headers)
            assert rest.status_code == 429
            assert 1 <= int(rest.headers["retry-after"]) <= 60


async def test_acp_prompt_over_a_model_limit_answers_a_json_rpc_error(tmp_path: Path) -> None:
    from tests.acp.wire import ClientError
    from tests.test_key_scopes import acp

    keys = [{"key": "k", "name": "ide", "limits": {"models": {"m1": {"requests_per_minute": 1}}}}]
    async with openai_server(models=["m1"]) as model:
        doc = config(tmp_path, model, server={"api_keys": keys}, acp={"default_model": "m1"})
        async with served(doc) as base, acp(base, "websocket", "k") as client:
            await clear_of_minute_boundary()
            session = await client.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
            prompt = {"sessionId": session["sessionId"], "prompt": [{"type": "text", "text": "hi"}]}
            first = await client.call("session/prompt", prompt)
            assert first["stopReason"] == "end_turn"
            with pytest.raises(ClientError) as refused:
                await client.call("session/prompt", prompt)
            assert refused.value.code == RATE_LIMITED
            assert "requests_per_minute of model 'm1' for 'ide' (1)" in refused.value.message
            assert 1 <= refused.value.data["retryAfter"] <= 60
            assert refused.value.data["resetAt"].endswith("+00:00")
            assert len(model.chat_requests) == 1


async def test_oauth_subjects_have_their_own_limits(tmp_path: Path) -> None:
    """`server.oauth.limits` holds for every token holder, each on its own counters, and
    `limits.principals.SUBJECT` overrides it for one; tokens from a real OpenID provider."""
    from tests.identity.oidc import oidc_provider
    from tests.identity.test_oauth import bearer, junction_with_oauth

    async with (
        oidc_provider() as provider,
        openai_server(models=["m1"]) as model,
        junction_with_oauth(
            tmp_path,
            provider,
            oauth={"limits": {"requests_per_minute": 1}},
            limits={"principals": {"limited": {"requests_per_minute": 2}}},
            backends={"local": {"type": "openai", "url": f"{model.url}/v1", "models": ["m1"]}},
        ) as base,
        httpx.AsyncClient(base_url=base, timeout=20) as http,
    ):
        service = await provider.client_token("service", scope="openai", resource=base)
        limited = await provider.client_token("limited", scope="openai", resource=base)
        body = {"model": "m1", "messages": MESSAGES}
        await clear_of_minute_boundary()

        async def status(token: str) -> int:
            reply = await http.post("/v1/chat/completions", json=body, headers=bearer(token))
            return reply.status_code

        assert [await status(service) for _ in range(2)] == [200, 429]
        assert [await status(limited) for _ in range(3)] == [200, 200, 429]
        assert await status("ops-key") == 200  # a key without limits


async def test_a_reload_applies_new_limits_at_once(tmp_path: Path) -> None:
    keys = [{"key": "k", "name": "ci"}]
    async with openai_server(models=["m1"]) as model:
        doc = config(tmp_path, model, server={"api_keys": keys})
        junction = Junction.from_config(doc)
        async with junction, serve_app(junction.asgi_app()) as base:
            await clear_of_minute_boundary()
            unlimited = client(base, "k")
            for _ in range(3):
                await unlimited.chat.completions.create(model="m1", messages=MESSAGES)
            await junction.replace_config({**doc, "limits": {"requests_per_minute": 1}})
            await unlimited.chat.completions.create(model="m1", messages=MESSAGES)
            with pytest.raises(openai.RateLimitError):
                await unlimited.chat.completions.create(model="m1", messages=MESSAGES)
            await junction.replace_config(doc)  # limits removed: admitted again
            await unlimited.chat.completions.create(model="m1", messages=MESSAGES)


async def test_anthropic_messages_and_embeddings_count_too(tmp_path: Path) -> None:
    import anthropic

    keys = [{"key": "k", "name": "ci", "limits": {"requests_per_minute": 2}}]
    async with openai_server(models=["m1"]) as model:
        async with served(config(tmp_path, model, server={"api_keys": keys})) as base:
            await clear_of_minute_boundary()
            claude = anthropic.AsyncAnthropic(base_url=base, api_key="k", max_retries=0)
            hello: Any = [{"role": "user", "content": "hi"}]
            answer = await claude.messages.create(model="m1", max_tokens=16, messages=hello)
            assert answer.content
            await client(base, "k").embeddings.create(model="m1", input="hi")
            with pytest.raises(anthropic.RateLimitError) as refused:
                await claude.messages.create(model="m1", max_tokens=16, messages=hello)
            assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
            with pytest.raises(openai.RateLimitError):
                await client(base, "k").embeddings.create(model="m1", input="hi")


async def test_an_acp_turns_tool_calls_over_a_limit_fail_for_the_model(tmp_path: Path) -> None:
    from tests.peers import npm_bin
    from tests.router_core.llm_servers import Call, Reply
    from tests.test_key_scopes import acp

    keys = [{"key": "k", "name": "ide"}]
    async with openai_server(models=["m1"]) as model:
        doc = config(
            tmp_path,
            model,
            server={"api_keys": keys},
            acp={"default_model": "m1"},
            mcp_servers={"everything": {"command": str(npm_bin("mcp-server-everything"))}},
            limits={"mcp_tools": {"everything__echo": {"requests_per_minute": 1}}},
        )
        twice = [
            Call("everything__echo", {"message": "one"}),
            Call("everything__echo", {"message": "two"}),
        ]
        model.script([Reply(tool_calls=twice), Reply(text="done")])
        junction = Junction.from_config(doc)
        async with junction, serve_app(junction.asgi_app()) as base:
            await junction.gateway.wait_settled(30)
            await clear_of_minute_boundary()
            async with acp(base, "websocket", "k") as client:
                created = await client.call("session/new", {"cwd": str(tmp_path), "mcpServers": []})
                await client.prompt(created["sessionId"], "echo twice")
    results = [m for m in model.chat_requests[1].body["messages"] if m["role"] == "tool"]
    assert "one" in str(results[0]["content"])
    assert "requests_per_minute of tool 'everything__echo' for 'ide' (1)" in str(
        results[1]["content"]
    )


async def test_streamed_answers_count_their_tokens(tmp_path: Path) -> None:
    """A relayed stream charges the usage the upstream reports when the client asks for it,
    and an estimate when it does not (else streaming would go around token limits)."""
    keys = [{"key": "asks", "name": "asks"}, {"key": "silent", "name": "silent"}, "root"]
    limits = {"models": {"m1": {"tokens_per_minute": 1}}}
    async with openai_server(models=["m1"]) as model:
        doc = config(tmp_path, model, server={"api_keys": keys}, limits=limits)
        async with served(doc) as base:
            await clear_of_minute_boundary()
            for key, options in (("asks", {"include_usage": True}), ("silent", None)):
                stream = await client(base, key).chat.completions.create(
                    model="m1", messages=MESSAGES, stream=True, stream_options=options
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in stream if c.choices]
                )
                assert text == "Hello from the fake model."
                with pytest.raises(openai.RateLimitError):
                    await client(base, key).chat.completions.create(model="m1", messages=MESSAGES)
            async with httpx.AsyncClient(base_url=base) as http:
                reply = await http.get("/admin/usage", headers={"Authorization": "Bearer root"})
    usage = reply.json()["principals"]
    assert usage["asks"]["models"]["m1"]["tokens"] == 15  # as the upstream reported
    estimate = usage["silent"]["models"]["m1"]["tokens"]
    assert 15 < estimate < 100  # ~a token per 4 request bytes and per event
