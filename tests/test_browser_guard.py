"""No way in from a web page: a browser's `Origin` (`null` included) is refused on every route
and upgrade unless configured, and state-changing routes take JSON bodies only.

A real `junction --mode serve` process, real HTTP and WebSocket, with no API keys (the default)
and with keys.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from junction.config import ConfigError, load_config
from tests.test_serve_mode import start, stop

BACKEND = {"name": "planted", "type": "openai", "url": "http://127.0.0.1:9/v1", "models": ["m"]}
AGENT = {"name": "planted", "url": "http://127.0.0.1:9"}


async def _probe_every_surface(base: str, headers: dict[str, str]) -> dict[str, int]:
    """Status of one request per surface (and the state-changing admin routes)."""
    async with httpx.AsyncClient(headers=headers) as http:
        return {
            "v1 models": (await http.get(f"{base}/v1/models")).status_code,
            "v1 chat": (
                await http.post(f"{base}/v1/chat/completions", json={"model": "m", "messages": []})
            ).status_code,
            "admin backends": (await http.post(f"{base}/admin/backends", json=BACKEND)).status_code,
            "admin agents": (await http.post(f"{base}/admin/a2a/agents", json=AGENT)).status_code,
            "a2a": (
                await http.post(f"{base}/a2a", json={"jsonrpc": "2.0", "id": 1, "method": "x"})
            ).status_code,
            "card": (await http.get(f"{base}/.well-known/agent-card.json")).status_code,
            "mcp": (
                await http.post(
                    f"{base}/mcp",
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"Accept": "application/json, text/event-stream"},
                )
            ).status_code,
            "acp http": (
                await http.post(f"{base}/acp", json={"jsonrpc": "2.0", "id": 1, "method": "x"})
            ).status_code,
        }


async def _websocket_status(port: int, origin: str | None, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    try:
        async with connect(
            f"ws://127.0.0.1:{port}/acp",
            origin=origin,  # type: ignore[arg-type]
            additional_headers=headers,
            open_timeout=10,
        ):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("origin", ["null", "http://evil.example", "http://localhost:3000"])
async def test_a_browser_origin_is_refused_everywhere_without_keys(
    tmp_path: Path, origin: str
) -> None:
    served = await start(tmp_path)
    try:
        statuses = await _probe_every_surface(served.base, {"Origin": origin})
        assert statuses == dict.fromkeys(statuses, 403), statuses
        assert await _websocket_status(served.port, origin) == 403
        # Nothing was registered by the refused requests, and a plain client still gets in.
        async with httpx.AsyncClient() as http:
            backends = (await http.get(f"{served.base}/admin/backends")).json()
            agents = (await http.get(f"{served.base}/admin/a2a/agents")).json()
        assert "planted" not in str(backends) and "planted" not in str(agents)
        assert await _websocket_status(served.port, None) == 101
    finally:
        await stop(served)


async def test_the_servers_own_origin_is_not_a_foreign_page(tmp_path: Path) -> None:
    """`Origin` equal to the server itself (its scheme and the Host asked for) is same-origin;
    the same origin with another port, or under another Host, is not."""
    served = await start(tmp_path)
    try:
        own = f"http://127.0.0.1:{served.port}"
        async with httpx.AsyncClient() as http:
            same = await http.get(f"{served.base}/v1/models", headers={"Origin": own})
            other_port = await http.get(
                f"{served.base}/v1/models",
                headers={"Origin": f"http://127.0.0.1:{served.port + 1}"},
            )
            rebound = await http.get(
                f"{served.base}/v1/models",
                headers={
                    "Origin": f"http://evil.example:{served.port}",
                    "Host": f"evil.example:{served.port}",
                },
            )
        assert same.status_code == 200
        assert other_port.status_code == 403 and rebound.status_code == 403
    finally:
        await stop(served)


async def test_origin_null_is_refused_with_a_valid_key(tmp_path: Path) -> None:
    served = await start(tmp_path, "server: {api_keys: [k-one]}\n")
    try:
        statuses = await _probe_every_surface(
            served.base, {"Origin": "null", "Authorization": "Bearer k-one"}
        )
        assert statuses == dict.fromkeys(statuses, 403), statuses
        assert await _websocket_status(served.port, "null", token="k-one") == 403
        assert await _websocket_status(served.port, None, token="k-one") == 101
    finally:
        await stop(served)


async def test_state_changing_routes_take_json_bodies_only(tmp_path: Path) -> None:
    served = await start(tmp_path)
    try:
        async with httpx.AsyncClient() as http:
            for path, body in (
                ("/admin/backends", BACKEND),
                ("/admin/a2a/agents", AGENT),
                ("/v1/chat/completions", {"model": "m", "messages": []}),
            ):
                for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
                    reply = await http.post(
                        f"{served.base}{path}",
                        content=orjson.dumps(body),
                        headers={"Content-Type": content_type},
                    )
                    assert reply.status_code == 415, (path, content_type, reply.text)
                    error = reply.json()["error"]  # OpenAI's shape on /v1
                    assert "JSON" in (error["message"] if isinstance(error, dict) else error)
            assert "planted" not in (await http.get(f"{served.base}/admin/backends")).text
            assert "planted" not in (await http.get(f"{served.base}/admin/a2a/agents")).text
            # JSON with a charset parameter, and a +json media type, are JSON.
            accepted = await http.post(
                f"{served.base}/admin/backends",
                content=orjson.dumps(BACKEND),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            assert accepted.status_code == 201, accepted.text
    finally:
        await stop(served)


async def test_a_configured_origin_gets_cors_and_others_do_not(tmp_path: Path) -> None:
    served = await start(
        tmp_path, "server: {allowed_origins: ['https://App.example:8443/'], api_keys: [k]}\n"
    )
    try:
        async with httpx.AsyncClient() as http:
            preflight = await http.options(
                f"{served.base}/v1/models",
                headers={
                    "Origin": "https://app.example:8443",
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "https://app.example:8443"
            allowed = await http.get(
                f"{served.base}/v1/models",
                headers={"Origin": "https://app.example:8443", "Authorization": "Bearer k"},
            )
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == "https://app.example:8443"
            # The allowed origin still needs the key; other origins are refused with it.
            keyless = await http.get(
                f"{served.base}/v1/models", headers={"Origin": "https://app.example:8443"}
            )
            assert keyless.status_code == 401
            for origin in ("https://app.example", "null", "https://evil.example:8443"):
                other = await http.get(
                    f"{served.base}/v1/models",
                    headers={"Origin": origin, "Authorization": "Bearer k"},
                )
                assert other.status_code == 403, origin
    finally:
        await stop(served)


@pytest.mark.parametrize("origin", ["null", "*", "https://app.example/path", "app.example"])
def test_allowed_origins_must_be_origins(tmp_path: Path, origin: str) -> None:
    path = tmp_path / "junction.yaml"
    path.write_text(f"server: {{allowed_origins: ['{origin}']}}\n")
    with pytest.raises(ConfigError, match=r"server\.allowed_origins"):
        load_config(path)


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_bracketed_ipv6_loopback_host_binds(tmp_path: Path) -> None:
    served = await start(tmp_path, "", "--host", "[::1]")
    try:
        assert served.base == f"http://[::1]:{served.port}"
        async with httpx.AsyncClient() as http:
            reply = await http.get(f"{served.base}/health")
        assert reply.status_code == 200
    finally:
        await stop(served)


async def test_the_default_message_limit_refuses_a_huge_message_and_serves_others(
    tmp_path: Path,
) -> None:
    """A 17 MiB message (over the 16 MiB default) is refused on `/acp` with the close code for
    it (1009, message too big), and the server goes on serving others."""
    from websockets.exceptions import ConnectionClosed

    served = await start(tmp_path)
    huge = b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"' + b"a" * (17 << 20)
    huge += b'"}}'
    try:
        async with connect(f"ws://127.0.0.1:{served.port}/acp", max_size=None) as big:
            await big.send(huge.decode())
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(big.recv(), 30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{served.base}/health")).status_code == 200
        assert await _websocket_status(served.port, None) == 101
    finally:
        await stop(served)
