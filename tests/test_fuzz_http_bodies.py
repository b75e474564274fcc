"""Bounded, seeded fuzz of the HTTP bodies serve mode takes: mutated JSON (wrong types, missing
and extra members, cut and mangled bytes, invalid UTF-8) to `/v1/chat/completions`, `/a2a`
(JSON-RPC, 1.0 and 0.3), the REST binding, `/admin/backends`, `/admin/a2a/agents` and `/mcp`.
Every request gets an answer that is not a server error, and Junction keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from junction import Junction
from tests.router_core.llm_servers import openai_server
from tests.transports.servers import serve_app
from tests.transports.test_fuzz_peer import Mutator

PER_ROUTE = 150

ROUTES: dict[str, tuple[dict[str, str], list[Any]]] = {
    "/v1/chat/completions": (
        {},
        [
            {"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
            {
                "model": "m1",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
                "tool_choice": "auto",
                "max_tokens": 5,
            },
        ],
    ),
    "/a2a": (
        {"A2A-Version": "1.0"},
        [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "SendMessage",
                "params": {
                    "message": {
                        "messageId": "m",
                        "role": "ROLE_USER",
                        "parts": [{"text": "hi"}],
                        "metadata": {"agent": "nobody"},
                    }
                },
            },
            {"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": "t-1"}},
            {"jsonrpc": "2.0", "id": 3, "method": "ListTasks", "params": {"pageSize": 2}},
        ],
    ),
    "/a2a/message:send": (
        {"A2A-Version": "1.0"},
        [{"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}],
    ),
    "/admin/backends": (
        {},
        [{"name": "fuzzed", "type": "openai", "url": "http://127.0.0.1:9/v1", "models": ["z"]}],
    ),
    "/admin/a2a/agents": ({}, [{"name": "fuzzed", "url": "http://127.0.0.1:9"}]),
    "/mcp": (
        {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"},
        [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "fuzz", "version": "0"},
                },
            },
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}},
        ],
    ),
}
KEYS = ["model", "messages", "role", "content", "tools", "params", "message", "parts", "id"]
KEYS += ["method", "name", "url", "type", "stream", "metadata", "jsonrpc", "protocolVersion"]


@pytest.mark.parametrize("route", sorted(ROUTES))
async def test_mutated_bodies_get_an_answer_and_never_a_server_error(
    tmp_path: Path, route: str
) -> None:
    headers, seeds = ROUTES[route]
    mutator = Mutator(seed=sum(route.encode()), seeds=seeds, keys=KEYS)
    async with openai_server(models=["m1"]) as model:
        junction = Junction.from_config(
            {
                "store": {"url": f"sqlite:///{tmp_path}/junction.db"},
                "backends": {"fake": {"type": "openai", "url": f"{model.url}/v1"}},
                "a2a": {"card_timeout": 1},
            }
        )
        async with junction, serve_app(junction.asgi_app()) as base:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                bodies: set[bytes] = set()
                for _ in range(PER_ROUTE):
                    body = mutator.message()
                    bodies.add(body)
                    reply = await http.post(
                        route,
                        content=body,
                        headers={"Content-Type": "application/json", **headers},
                    )
                    assert reply.status_code < 500 or reply.status_code in (502, 503), (
                        route,
                        body[:300],
                        reply.status_code,
                        reply.text[:300],
                    )
                    if reply.headers.get("content-type", "").startswith("application/json"):
                        reply.json()  # a JSON answer is JSON
                health = await http.get("/health")
    assert health.status_code == 200
    assert len(bodies) > PER_ROUTE // 2  # the mutator varied the bodies
