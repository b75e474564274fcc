"""Rate limits with their counters in a real Redis (Debian's redis-server, installed by
.ci/peers.d/redis.sh, started once per test session on a free loopback port with no
persistence): two `junction --mode serve` processes enforce one limit together, and when Redis
dies a limited call is admitted (`limits_on_redis_down: open`) or refused (`closed`) until it is
back, which Junction notices by itself."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.router_core.llm_servers import FakeLLMServer, openai_server
from tests.test_limits import MESSAGES, clear_of_minute_boundary
from tests.test_serve_mode import Served, start, stop


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """A throwaway redis-server: loopback only, no RDB snapshots, no AOF, no config file."""

    def __init__(self, binary: str, port: int, data: Path) -> None:
        self.binary = binary
        self.port = port
        self.data = data
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.data)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            if self.command(b"PING") == b"+PONG":
                return
            assert self.process.poll() is None, "redis-server exited at start"
            subprocess.run(["sleep", "0.05"], check=True)
        raise AssertionError("redis-server did not answer PING")

    def command(self, *parts: bytes) -> bytes | None:
        """One command in RESP over a plain socket (None: nothing listens)."""
        request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
                conn.sendall(request)
                return conn.recv(65536).rstrip(b"\r\n")
        except OSError:
            return None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()
        assert self.command(b"FLUSHALL") == b"+OK"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: run `bash .ci/run` (.ci/peers.d/redis.sh)"
    server = RedisServer(binary, free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    redis_server.ensure_running()  # a test before may have killed it
    return redis_server


def junction_yaml(model: FakeLLMServer, redis: RedisServer, *, down: str = "open") -> str:
    doc: dict[str, Any] = {
        "server": {
            "api_keys": [
                {"key": "ci-key", "name": "ci", "limits": {"requests_per_minute": 3}},
                {"key": "admin-key", "name": "admin"},
            ]
        },
        "cluster": {"redis_url": redis.url, "limits_on_redis_down": down},
        "backends": {"fake": {"type": "openai", "url": f"{model.url}/v1", "models": ["m1"]}},
    }
    return yaml.safe_dump(doc)


def client(served: Served) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{served.base}/v1", api_key="ci-key", max_retries=0)


async def chat(served: Served) -> None:
    await client(served).chat.completions.create(model="m1", messages=MESSAGES)


@pytest.fixture
async def model() -> AsyncIterator[FakeLLMServer]:
    async with openai_server(models=["m1"]) as server:
        yield server


async def test_two_processes_enforce_one_limit(
    tmp_path: Path, redis: RedisServer, model: FakeLLMServer
) -> None:
    config = junction_yaml(model, redis)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = await start(tmp_path / "a", config)
    two = await start(tmp_path / "b", config)
    try:
        await clear_of_minute_boundary()
        await chat(one)
        await chat(two)
        await chat(one)
        for served in (two, one):  # the fourth call is over the limit, whichever replica
            with pytest.raises(openai.RateLimitError) as refused:
                await chat(served)
            assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
            assert "requests_per_minute of 'ci' (3)" in refused.value.message
        async with httpx.AsyncClient() as http:
            usage = (
                await http.get(
                    f"{one.base}/admin/usage", headers={"Authorization": "Bearer admin-key"}
                )
            ).json()
        assert usage["counters"] == "redis" and usage["counters_up"] is True
        ci = usage["principals"]["ci"]
        assert ci["windows"]["requests_per_minute"] == {
            "used": 3,
            "limit": 3,
            "resetAt": ci["windows"]["requests_per_minute"]["resetAt"],
        }
        assert ci["models"]["m1"]["requests"] == 2  # this replica's own share of the calls
        assert len(model.chat_requests) == 3
    finally:
        await stop(one)
        await stop(two)


async def until(check: Any, attempts: int = 100) -> Any:
    """Call `check()` until it returns something other than None (Redis is retried at most
    once a second)."""
    for _ in range(attempts):
        found = await check()
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("the condition never held")


async def test_redis_down_fails_open_and_limits_return_with_it(
    tmp_path: Path, redis: RedisServer, model: FakeLLMServer
) -> None:
    served = await start(tmp_path, junction_yaml(model, redis, down="open"))
    try:
        await clear_of_minute_boundary()
        for _ in range(3):
            await chat(served)
        with pytest.raises(openai.RateLimitError):
            await chat(served)
        redis.kill()
        for _ in range(3):  # over the limit, but nothing counts: admitted
            await chat(served)
        async with httpx.AsyncClient() as http:
            metrics = await http.get(
                f"{served.base}/metrics", headers={"Authorization": "Bearer admin-key"}
            )
        assert "junction_limits_store_up 0.0" in metrics.text
        redis.start()  # empty: the window starts again

        async def refused() -> bool | None:
            try:
                await chat(served)
            except openai.RateLimitError:
                return True
            return None

        assert await until(refused)
    finally:
        await stop(served)
    log = await served.stderr()
    assert log.count("Redis is unreachable") == 1, log
    assert "Redis is back" in log


async def test_redis_down_fails_closed_when_configured(
    tmp_path: Path, redis: RedisServer, model: FakeLLMServer
) -> None:
    served = await start(tmp_path, junction_yaml(model, redis, down="closed"))
    try:
        await clear_of_minute_boundary()
        await chat(served)
        redis.kill()
        for _ in range(2):
            with pytest.raises(openai.RateLimitError) as refused:
                await chat(served)
            assert "Redis is down" in refused.value.message
            assert refused.value.response.headers["retry-after"] == "5"
        redis.start()

        async def admitted() -> bool | None:
            try:
                await chat(served)
            except openai.RateLimitError:
                return None
            return True

        assert await until(admitted)
        assert len(model.chat_requests) == 2
    finally:
        await stop(served)


async def test_an_mcp_tool_limit_holds_across_processes(tmp_path: Path, redis: RedisServer) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.exceptions import MCPError

    from mcp_gateway._sdk import create_mcp_http_client
    from router_core.quota import RATE_LIMITED
    from tests.peers import python_peer

    doc = {
        "server": {
            "api_keys": [{"key": "k", "name": "tools"}],
            "ready_requires": ["mcp_servers.time"],
        },
        "cluster": {"redis_url": redis.url},
        "mcp_servers": {
            "time": {
                "command": str(python_peer("mcp-server-time")),
                "args": ["-m", "mcp_server_time"],
            }
        },
        "limits": {"mcp_tools": {"time__*": {"requests_per_minute": 1}}},
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    replicas = [await start(tmp_path / name, yaml.safe_dump(doc)) for name in ("a", "b")]
    try:
        async with httpx.AsyncClient() as http:
            for served in replicas:

                async def ready(served: Served = served) -> bool | None:
                    reply = await http.get(f"{served.base}/health/ready")
                    return True if reply.status_code == 200 else None

                await until(ready)
        await clear_of_minute_boundary()
        outcomes: list[Any] = []
        for served in replicas:
            mcp_http = create_mcp_http_client(headers={"Authorization": "Bearer k"})
            async with (
                mcp_http,
                Client(streamable_http_client(f"{served.base}/mcp", http_client=mcp_http)) as c,
            ):
                try:
                    outcomes.append(
                        await c.call_tool("time__get_current_time", {"timezone": "UTC"})
                    )
                except MCPError as exc:
                    outcomes.append(exc.error)
        assert not outcomes[0].is_error
        assert outcomes[1].code == RATE_LIMITED
        assert "requests_per_minute of tool 'time__get_current_time'" in outcomes[1].message
    finally:
        for served in replicas:
            await stop(served)
