"""`/v1` as OpenAI's official Python SDK sees it: every error in OpenAI's shape, so the SDK raises
the exception class it raises against OpenAI (bad key, a scope the key lacks, a malformed body,
an unknown route), and keys also accepted as `x-api-key`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from junction import Junction
from tests.router_core.llm_servers import Reply, openai_server
from tests.transports.servers import serve_app

KEYS = [{"key": "full-key"}, {"key": "mcp-only", "scopes": ["mcp"]}]


@contextlib.asynccontextmanager
async def served(tmp_path: Path) -> AsyncIterator[str]:
    async with openai_server(models=["m1"]) as model:
        model.script([Reply(text="hello from m1")] * 4)
        junction = Junction.from_config(
            {
                "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
                "server": {"api_keys": KEYS},
                "backends": {"fake": {"type": "openai", "url": f"{model.url}/v1"}},
            }
        )
        async with junction, serve_app(junction.asgi_app()) as base:
            yield base


def client(base: str, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


async def test_the_sdk_raises_what_it_raises_against_openai(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hi"}]
    async with served(tmp_path) as base:
        answer = await client(base, "full-key").chat.completions.create(
            model="m1",
            messages=messages,  # type: ignore[arg-type]
        )
        assert answer.choices[0].message.content == "hello from m1"

        with pytest.raises(openai.AuthenticationError) as bad_key:
            await client(base, "wrong").chat.completions.create(model="m1", messages=messages)  # type: ignore[arg-type]
        assert bad_key.value.code == "invalid_api_key"

        with pytest.raises(openai.PermissionDeniedError) as no_scope:
            await client(base, "mcp-only").models.list()
        assert "openai" in no_scope.value.message

        with pytest.raises(openai.BadRequestError) as malformed:
            await client(base, "full-key").chat.completions.create(
                model="m1",
                messages=messages,  # type: ignore[arg-type]
                tools=[1, 2],  # type: ignore[list-item]
            )
        assert malformed.value.param == "tools[0]"

        with pytest.raises(openai.NotFoundError) as unknown:
            await client(base, "full-key").get("/no/such/route", cast_to=object)
        assert "Invalid URL (GET /v1/no/such/route)" in unknown.value.message


async def test_errors_before_the_router_are_in_openais_shape(tmp_path: Path) -> None:
    async with served(tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        for reply in (
            await http.get("/v1/models"),
            await http.get("/v1/models", headers={"Authorization": "Bearer nope"}),
            await http.post(
                "/v1/chat/completions",
                content=b"{}",
                headers={"Authorization": "Bearer full-key", "Content-Type": "text/plain"},
            ),
        ):
            error = reply.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, reply.text
            assert reply.status_code in (401, 415)


async def test_a_key_in_x_api_key_is_accepted(tmp_path: Path) -> None:
    async with served(tmp_path) as base, httpx.AsyncClient(base_url=base) as http:
        assert (await http.get("/v1/models", headers={"x-api-key": "full-key"})).status_code == 200
        refused = await http.get("/v1/models", headers={"x-api-key": "nope"})
        assert refused.status_code == 401
