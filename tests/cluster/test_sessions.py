"""Sessions that live in one replica answer on all three behind HAProxy (round robin, no
stickiness): a legacy MCP `Mcp-Session-Id` session driven by the `mcp` SDK's Streamable HTTP
client, and remote ACP connections (`Acp-Connection-Id`) driven by the official ACP SDK 0.12.1
over HTTP and by the resumable WebSocket profile Junction's bridge speaks. Most requests land on
a replica that does not own the session and are carried to the one that does (owner
forwarding, junction/http/forward.py); `junction_sessions_forwarded_total` on each replica
proves they were."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import mcp_types as types
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_gateway._sdk import create_mcp_http_client
from tests.a2a.harness import free_port
from tests.cluster.harness import HANG_GUARD, Replica, haproxy
from tests.mcp_gateway.conftest import SERVERS
from tests.router_core.llm_servers import Call, OpenAIServer, Reply, openai_server
from tests.test_acp_remote import run_peer
from tests.test_bridge import KEY
from tests.test_limits_redis import RedisServer
from transports.remote_client import connect_remote

pytestmark = pytest.mark.timeout(180)
AUTH = {"Authorization": f"Bearer {KEY}"}


def cluster_config(path: Path, store: str, redis: str, model: str) -> Path:
    path.write_text(
        orjson.dumps(
            {
                "server": {"api_keys": [KEY], "shutdown_grace_seconds": 2},
                "store": {"url": store},
                "cluster": {"redis_url": redis},
                "mcp_servers": {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}},
                "backends": {"fake": {"type": "openai", "url": f"{model}/v1", "models": ["m1"]}},
                "acp": {"default_model": "m1"},
            }
        ).decode()
    )
    return path


@contextlib.asynccontextmanager
async def cluster(
    tmp: Path, store: str, redis: RedisServer, model: OpenAIServer
) -> AsyncIterator[tuple[str, list[Replica]]]:
    """Three replicas behind HAProxy: (the balancer's URL, the replicas)."""
    config = cluster_config(tmp / "junction.json", store, redis.url, model.url)
    replicas = [Replica(f"r{i}", free_port(), config) for i in (1, 2, 3)]
    await asyncio.gather(*(r.start() for r in replicas))
    try:
        async with haproxy(tmp, replicas) as lb:
            yield lb, replicas
    finally:
        for replica in replicas:
            if replica.proc is not None:
                await replica.proc.kill()


async def forwarded(http: httpx.AsyncClient, replicas: list[Replica], kind: str) -> int:
    """Requests of `kind` the live replicas carried to another one, from their /metrics."""
    total = 0
    for replica in replicas:
        if replica.proc is None or replica.proc.process.returncode is not None:
            continue
        text = (await http.get(f"{replica.url}/metrics", headers=AUTH)).text
        found = re.search(
            rf'^junction_sessions_forwarded_total\{{kind="{kind}"\}} (\S+)$', text, re.M
        )
        total += int(float(found.group(1))) if found else 0
    return total


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.fixture
async def model() -> AsyncIterator[OpenAIServer]:
    async with openai_server(models=["m1"]) as server:
        yield server


async def test_an_mcp_session_answers_on_every_replica_until_deleted_or_its_owner_dies(
    tmp_path: Path, postgres_url: str, redis: RedisServer, model: OpenAIServer
) -> None:
    answered: Counter[str] = Counter()
    carried: Counter[str] = Counter()
    opened: list[str] = []

    async def seen(response: httpx.Response) -> None:
        if (created := response.headers.get("mcp-session-id")) and created not in opened:
            opened.append(created)
        if "mcp-session-id" in response.request.headers:
            answered[response.headers.get("x-junction-replica", "?")] += 1
            carried[response.headers.get("x-junction-forwarded-by", "")] += 1

    async with (
        cluster(tmp_path, postgres_url, redis, model) as (lb, replicas),
        httpx.AsyncClient(timeout=10) as http,
    ):
        url = f"{lb}/mcp"
        async with create_mcp_http_client(headers=AUTH) as sdk_http:
            sdk_http.event_hooks["response"].append(seen)
            async with Client(
                streamable_http_client(url, http_client=sdk_http), mode="legacy"
            ) as client:
                steps: list[float] = []

                async def on_progress(
                    progress: float, total: float | None, message: str | None
                ) -> None:
                    steps.append(progress)

                for round_ in range(6):
                    names = {t.name for t in (await client.list_tools()).tools}
                    assert {"ok__echo", "ok__progress"} <= names
                    echoed = await client.call_tool("ok__echo", {"message": f"hi {round_}"})
                    assert text_of(echoed) == f"hi {round_}"
                    steps.clear()
                    streamed = await client.call_tool(
                        "ok__progress", {}, progress_callback=on_progress
                    )
                    assert text_of(streamed) == "progressed"
                    assert steps == [1, 2, 3]
                session = opened[-1]
            # one replica (the owner) answered every request of the session; the others carried
            assert len(answered) == 1, answered
            assert sum(n for by, n in carried.items() if by) >= 12, carried
        assert await forwarded(http, replicas, "mcp") >= 12
        # the client's DELETE on close ended the session everywhere
        for _ in replicas:
            gone = await http.post(url, json=_ping(), headers=_session_headers(session))
            assert gone.status_code == 404, gone.text
        assert redis.command(b"GET", f"junction:owner:mcp:{session}".encode()) in (None, b"$-1")

        # the owner is SIGKILLed: its session is gone for every replica, and the client
        # starts again
        answered.clear()
        async with create_mcp_http_client(headers=AUTH) as sdk_http:
            sdk_http.event_hooks["response"].append(seen)
            async with contextlib.AsyncExitStack() as stack:
                client = await stack.enter_async_context(
                    Client(streamable_http_client(url, http_client=sdk_http), mode="legacy")
                )
                assert text_of(await client.call_tool("ok__echo", {"message": "x"})) == "x"
                (owner_name,) = answered
                owner = next(r for r in replicas if r.name == owner_name)
                session = opened[-1]
                assert owner.proc is not None
                owner.proc.process.send_signal(signal.SIGKILL)
                await owner.proc.process.wait()
                for _ in range(3):  # whichever replica it lands on
                    lost = await http.post(url, json=_ping(), headers=_session_headers(session))
                    assert lost.status_code == 404, lost.text
                with pytest.raises((MCPError, httpx.HTTPError, ExceptionGroup)):
                    await client.call_tool("ok__echo", {"message": "y"})
                stack.pop_all()  # the dead session's client is abandoned, not closed
            async with Client(
                streamable_http_client(url, http_client=sdk_http), mode="legacy"
            ) as again:
                for _ in range(4):
                    assert text_of(await again.call_tool("ok__echo", {"message": "z"})) == "z"


def _ping() -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 99, "method": "ping"}


def _session_headers(session: str) -> dict[str, str]:
    return {
        **AUTH,
        "Mcp-Session-Id": session,
        "Mcp-Protocol-Version": "2025-11-25",
        "Accept": "application/json, text/event-stream",
    }


async def wait_for(check: Any) -> Any:
    async with asyncio.timeout(HANG_GUARD):
        while not (found := await check()):  # noqa: ASYNC110 (another process's state)
            await asyncio.sleep(0.05)
        return found


async def test_remote_acp_connections_answer_on_every_replica(
    tmp_path: Path, postgres_url: str, redis: RedisServer, model: OpenAIServer
) -> None:
    target = tmp_path / "out.txt"
    story = " ".join(f"word{i}" for i in range(60))
    model.script(
        [
            Reply(text="Hello from far away."),
            Reply(tool_calls=[Call("write_text_file", {"path": str(target), "content": "x"})]),
            Reply(text="Written."),
            Reply(text="Once more."),
            Reply(text=story, chunk_size=3),
        ]
    )
    async with (
        cluster(tmp_path, postgres_url, redis, model) as (lb, replicas),
        httpx.AsyncClient(timeout=10) as http,
    ):
        # the SDK's own HTTP client: initialize, the stream, session/new, prompts with a
        # permission round trip, then a second connection loads the session
        spec: dict[str, Any] = {"url": f"{lb}/acp", "transport": "http", "scenario": "session"}
        report = await run_peer(tmp_path, spec)
        assert report["stops"] == ["end_turn", "end_turn", "end_turn"]
        assert acp_text_of(report["updates"]).startswith("Hello from far away.")
        assert report["permissions"] == 1
        assert target.read_text() == "x"
        assert "Hello from far away." in acp_text_of(report["replayed"])
        assert acp_text_of(report["after"]) == "Once more."
        by_sdk = await forwarded(http, replicas, "acp")
        assert by_sdk >= 4

        # the stream dropped mid-turn and reopened with Last-Event-ID, each request on the
        # next replica: every update once, in order; the retried prompt ran once
        spec = {"url": f"{lb}/acp", "transport": "http", "scenario": "resume", "drop_after": 3}
        report = await run_peer(tmp_path, spec)
        cursors = [int(cursor) for cursor, _ in report["events"]]
        assert cursors == list(range(1, len(cursors) + 1))
        messages = [message for _, message in report["events"]]
        updates = [m["params"]["update"] for m in messages if m.get("method") == "session/update"]
        assert acp_text_of(updates) == story
        assert len(model.chat_requests) == 5  # nothing ran twice
        assert report["posts"] == [[202, None], [202, None], [202, "true"]]
        assert report["resumed_status"] == 200
        assert report["delete_status"] == 202
        assert report["after_delete_status"] == 404  # DELETE ended it for every replica
        assert await forwarded(http, replicas, "acp") > by_sdk


async def test_a_websocket_resumed_on_another_replica_loses_no_update(
    tmp_path: Path, postgres_url: str, redis: RedisServer, model: OpenAIServer
) -> None:
    """The resumable WebSocket profile (what `junction --mode bridge` speaks): the socket to
    the replica that owns the connection drops mid-turn and the client resumes through
    another replica, which splices it to the owner."""
    story = " ".join(f"part{i}" for i in range(80))
    model.script([Reply(text=story, chunk_size=4)])
    async with (
        cluster(tmp_path, postgres_url, redis, model) as (_, replicas),
        httpx.AsyncClient(timeout=10) as http,
    ):
        owner, other = replicas[0], replicas[1]
        ws = f"ws://127.0.0.1:{owner.port}/acp"
        first = await connect_remote(ws, token=KEY)
        assert first.resumable and first.connection_id
        received: list[tuple[int, dict[str, Any]]] = []

        async def call(stream: Any, n: int, method: str, params: dict[str, Any]) -> None:
            request = {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
            await stream.send(orjson.dumps(request))

        async def next_message(stream: Any) -> dict[str, Any] | None:
            async with asyncio.timeout(HANG_GUARD):
                raw = await stream.receive()
            if raw is None:
                return None
            message: dict[str, Any] = orjson.loads(raw)
            received.append((stream.cursor, message))
            return message

        await call(first, 1, "initialize", {"protocolVersion": 1})
        assert (await next_message(first) or {}).get("id") == 1
        await call(first, 2, "session/new", {"cwd": str(tmp_path), "mcpServers": []})
        created = await next_message(first)
        assert created is not None
        sid = created["result"]["sessionId"]
        prompt = {"sessionId": sid, "prompt": [{"type": "text", "text": "go"}]}
        await call(first, 3, "session/prompt", prompt)
        updates = 0
        while updates < 5:
            message = await next_message(first)
            assert message is not None
            updates += message.get("method") == "session/update"
        first._ws.transport.abort()  # the socket is lost (a close with 1000 would end it)

        again = await connect_remote(
            f"ws://127.0.0.1:{other.port}/acp",
            token=KEY,
            resume=(first.connection_id, first.cursor),
        )
        assert again.resumed, again.refusal
        while True:
            message = await next_message(again)
            assert message is not None
            if message.get("id") == 3:
                break
        await again.aclose()
        cursors = [cursor for cursor, _ in received]
        assert cursors == list(range(1, len(cursors) + 1))  # no gap, nothing twice
        chunks = [m["params"]["update"] for _, m in received if m.get("method") == "session/update"]
        assert acp_text_of(chunks) == story
        assert received[-1][1]["result"] == {"stopReason": "end_turn"}
        assert await forwarded(http, [other], "acp") == 1
        # a resumption naming no live connection is refused by every replica alike
        stale = await connect_remote(
            f"ws://127.0.0.1:{replicas[2].port}/acp", token=KEY, resume=("no-such-id", 0)
        )
        assert not stale.resumed and stale.refusal == "unknown or ended connection"
        await stale.aclose()


def acp_text_of(updates: list[dict[str, Any]]) -> str:
    return "".join(
        u["content"]["text"] for u in updates if u.get("sessionUpdate") == "agent_message_chunk"
    )


async def raw(port: int, request: bytes, *, cut: bool = False) -> bytes:
    """Send `request` as is on a new connection; what came back before the server closed it
    (or, with `cut`, close after sending and return nothing)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if cut:
            return b""
        async with asyncio.timeout(HANG_GUARD):
            return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def mcp_session(http: httpx.AsyncClient, base: str) -> dict[str, str]:
    """Open a 2025-11-25 session on `base` by hand; the headers of its later requests."""
    mcp = {**AUTH, "Accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "by-hand", "version": "1"},
        },
    }
    opened = await http.post(f"{base}/mcp", json=init, headers=mcp)
    assert opened.status_code == 200, opened.text
    session = opened.headers["mcp-session-id"]
    headers = {**mcp, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"}
    done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(f"{base}/mcp", json=done, headers=headers)).status_code == 202
    return headers


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


async def test_hostile_input_on_the_forwarding_path_keeps_every_replica_up(
    tmp_path: Path, postgres_url: str, redis: RedisServer, model: OpenAIServer
) -> None:
    rng = random.Random(17)
    async with (
        cluster(tmp_path, postgres_url, redis, model) as (_, replicas),
        httpx.AsyncClient(timeout=10) as http,
    ):
        owner, other = replicas[0], replicas[1]
        headers = await mcp_session(http, owner.url)
        session = headers["Mcp-Session-Id"]
        acp_init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": 1},
        }
        connection = (await http.post(f"{owner.url}/acp", json=acp_init, headers=AUTH)).headers[
            "acp-connection-id"
        ]

        # a forged marker only turns forwarding off: the session is unknown on the other
        forged = await http.post(
            f"{other.url}/mcp", json=_ping(), headers={**headers, "Junction-Forwarded": "1"}
        )
        assert forged.status_code == 404
        # odd session ids: never looked up, answered as unknown (or refused by the server)
        alphabet = [chr(c) for c in range(0x20, 0x7F)] + ["\x01", "\x7f", "\xff", "\t", "é"]
        for _ in range(40):
            size = rng.choice([1, 8, 33, 129, 4000])
            ident = "".join(rng.choice(alphabet) for _ in range(size)).strip() or "x"
            path, header = rng.choice([("/mcp", "Mcp-Session-Id"), ("/acp", "Acp-Connection-Id")])
            method = rng.choice(["POST", "GET", "DELETE"])
            body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
            request = (
                (
                    f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                    f"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                    f"Connection: close\r\n{header}: "
                ).encode()
                + ident.encode("utf-8")
                + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            answer = await raw(rng.choice([other, replicas[2]]).port, request)
            assert status_of(answer) in (0, 400, 404, 405, 406, 409, 415, 431), answer[:200]
        # truncated bodies on the forwarded path: the client goes away mid-body
        for cut in (0, 5, 30):
            body = orjson.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list"})
            head = (
                f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
                "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
                f"Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-11-25\r\n"
                f"Content-Length: {len(body) + 100}\r\n\r\n"
            ).encode()
            await raw(other.port, head + body[:cut], cut=True)
        # records pointing somewhere odd are deleted, never followed
        for odd in (
            "file:///etc/passwd",
            "http://127.0.0.1:1/x?y=1",
            "http://user@127.0.0.1:9",
            "junk",
        ):
            key = b"junction:owner:mcp:odd-record"
            assert redis.command(b"SET", key, odd.encode()) == b"+OK"
            refused = await http.post(
                f"{other.url}/mcp",
                json=_ping(),
                headers={**headers, "Mcp-Session-Id": "odd-record"},
            )
            assert refused.status_code == 404
            assert redis.command(b"EXISTS", key) == b":0"
        # resumptions naming odd connection ids are refused like unknown ones
        for ident in ("", "x" * 5000, "é\u2028", connection + "\x00"):
            stale = await connect_remote(
                f"ws://127.0.0.1:{other.port}/acp", token=KEY, resume=(ident, 0)
            )
            assert not stale.resumed and stale.refusal
            await stale.aclose()

        for replica in replicas:
            assert (await http.get(f"{replica.url}/health/live")).status_code == 200
            assert replica.proc is not None and replica.proc.process.returncode is None
        # and the real session still answers through a replica that does not own it
        listed = await http.post(
            f"{other.url}/mcp",
            json={"jsonrpc": "2.0", "id": 8, "method": "tools/list"},
            headers=headers,
        )
        assert listed.status_code == 200 and "ok__echo" in listed.text
        assert listed.headers["x-junction-forwarded-by"] == other.name


async def test_a_session_answers_on_every_worker_of_one_replica(
    tmp_path: Path, redis: RedisServer
) -> None:
    """`server.workers: 2` share one port, so the kernel hands a connection to either: each
    worker listens on a port of its own too, and forwards to the worker that owns a session."""
    from tests.cluster.test_workers import logged, start

    path = tmp_path / "junction.json"
    doc = {
        "server": {"port": 0, "workers": 2, "api_keys": [KEY]},
        "store": {"url": f"sqlite:///{tmp_path / 'j.db'}"},
        "cluster": {"redis_url": redis.url},
        "mcp_servers": {"ok": {"command": sys.executable, "args": [SERVERS, "ok"]}},
    }
    path.write_bytes(orjson.dumps(doc))
    proc = await start(path)
    try:
        port = (await logged(proc, r"listening on http://127\.0\.0\.1:(\d+)")).group(1)
        await logged(proc, r"2 workers serving")
        url = f"http://127.0.0.1:{port}/mcp"
        mcp = {**AUTH, "Accept": "application/json, text/event-stream"}
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "workers", "version": "1"},
            },
        }
        async with httpx.AsyncClient(timeout=10) as http:
            opened = await http.post(url, json=init, headers=mcp)
        session = opened.headers["mcp-session-id"]
        owner = opened.headers["x-junction-replica"]
        headers = {**mcp, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"}
        carried, n = 0, 1
        async with asyncio.timeout(HANG_GUARD):  # which worker accepts is the kernel's choice
            while carried < 3:  # a new connection each time, until the other worker took some
                n += 1
                async with httpx.AsyncClient(timeout=10) as http:
                    answer = await http.post(
                        url, json={"jsonrpc": "2.0", "id": n, "method": "ping"}, headers=headers
                    )
                assert answer.status_code == 200, answer.text
                assert answer.headers["x-junction-replica"] == owner
                carried += "x-junction-forwarded-by" in answer.headers
    finally:
        proc.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(HANG_GUARD):
            await proc.process.wait()


async def test_a_replica_no_other_can_reach_refuses_to_start(
    tmp_path: Path, redis: RedisServer
) -> None:
    from junction.config import ConfigError, load_config
    from tests.test_bridge import JUNCTION

    path = tmp_path / "junction.yaml"
    path.write_text(
        f"server: {{host: 0.0.0.0, port: 0, api_keys: [{KEY}]}}\n"
        f"cluster: {{redis_url: '{redis.url}'}}\n"
    )
    process = await asyncio.create_subprocess_exec(
        JUNCTION, "--mode", "serve", "--config", str(path),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(HANG_GUARD):
        _, err = await process.communicate()
    assert process.returncode == 2
    assert "set cluster.advertise_url" in err.decode()
    path.write_text(
        f"cluster: {{redis_url: '{redis.url}', advertise_url: 'http://10.0.0.1:8765/base'}}\n"
    )
    with pytest.raises(ConfigError, match=r"cluster\.advertise_url: expected http://host:port"):
        load_config(path)


async def test_with_redis_down_each_replica_serves_its_own_sessions(
    tmp_path: Path, postgres_url: str, redis: RedisServer, model: OpenAIServer
) -> None:
    """Redis down: the owner serves its sessions; a replica that already carried requests for
    one remembers its owner; another answers 404 as for an unknown session. A session opened
    meanwhile is recorded once Redis is back."""
    async with (
        cluster(tmp_path, postgres_url, redis, model) as (_, replicas),
        httpx.AsyncClient(timeout=10) as http,
    ):
        owner, carrier, stranger = replicas
        early = await mcp_session(http, owner.url)

        async def ping(replica: Replica, headers: dict[str, str]) -> int:
            answer = await http.post(f"{replica.url}/mcp", json=_ping(), headers=headers)
            return answer.status_code

        assert await ping(carrier, early) == 200  # looked up once, remembered
        redis.kill()
        try:
            assert await ping(owner, early) == 200
            assert await ping(carrier, early) == 200
            assert await ping(stranger, early) == 404
            meanwhile = await mcp_session(http, owner.url)  # recorded nowhere yet
            assert await ping(owner, meanwhile) == 200
            assert await ping(stranger, meanwhile) == 404
        finally:
            redis.ensure_running()  # empty: every record is gone with it

        async def recorded() -> bool:
            return await ping(stranger, meanwhile) == 200

        await wait_for(recorded)  # the owner's renewal wrote its sessions again
        assert await ping(stranger, early) == 200
