"""The stores under `junction --mode serve` as users run it, with a real A2A agent (the
official a2a-sdk, its own process): a PostgreSQL outage is an A2A error while it lasts and
nothing stored before is lost; webhook deliveries pending when serve mode is killed (SIGKILL)
arrive after it is started again, on either engine."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.a2a.harness import rpc, sdk_agent, send_params
from tests.postgres import PostgresServer, postgres_server
from tests.test_bridge import start_serve
from tests.transports.servers import serve_app


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


def _config(tmp_path: Path, store_url: str, agent_url: str) -> Path:
    path = tmp_path / "junction.yaml"
    path.write_text(
        f'store: {{url: "{store_url}", connect_timeout: 2}}\n'
        f'a2a_agents: {{echoer: {{url: "{agent_url}"}}}}\n'
        "a2a:\n"
        "  push: {allow_insecure_loopback: true, lease: 1, resume_interval: 0.2,"
        " backoff: 0.2, max_backoff: 0.5, max_attempts: 1000, timeout: 5}\n"
    )
    return path


async def test_an_outage_is_an_a2a_error_and_nothing_is_lost(
    tmp_path: Path, own_server: PostgresServer
) -> None:
    with sdk_agent("echoer") as agent:
        served, port = await start_serve(_config(tmp_path, own_server.database(), agent))
        base = f"http://127.0.0.1:{port}"
        try:
            sent = await rpc(base, "SendMessage", send_params("echo kept", "echoer"))
            task_id = sent["result"]["task"]["id"]
            own_server.stop()
            refused = await rpc(base, "SendMessage", send_params("echo refused", "echoer"))
            unread = await rpc(base, "GetTask", {"id": task_id})
            async with httpx.AsyncClient() as http:
                live = await http.get(f"{base}/health/live")
            own_server.start()
            read = await rpc(base, "GetTask", {"id": task_id})
            again = await rpc(base, "SendMessage", send_params("echo again", "echoer"))
        finally:
            await served.kill()
    for failed in (refused, unread):
        assert failed["error"]["code"] == -32603
        assert "the task store is unavailable" in failed["error"]["message"]
    assert live.status_code == 200  # the process stayed up
    assert read["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
    assert "result" in again


class Receiver:
    """A webhook answering `status`; keeps the status and headers of every attempt."""

    def __init__(self) -> None:
        self.status = 200
        self.attempts: list[tuple[int, dict[str, str]]] = []
        self.changed = asyncio.Event()

    async def endpoint(self, request: Request) -> Response:
        await request.body()
        self.attempts.append((self.status, dict(request.headers)))
        self.changed.set()
        return Response(status_code=self.status)

    async def until(self, done: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                self.changed.clear()
                await self.changed.wait()

    def sequences(self, status: int) -> set[str]:
        return {h["x-junction-sequence"] for s, h in self.attempts if s == status}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'junction.db'}"


async def test_deliveries_pending_at_sigkill_arrive_after_a_restart(
    tmp_path: Path, store_url: str
) -> None:
    hooks = Receiver()
    app = Starlette(routes=[Route("/hook", hooks.endpoint, methods=["POST"])])
    async with serve_app(app) as hook_base:
        with sdk_agent("echoer") as agent:
            config = _config(tmp_path, store_url, agent)
            hooks.status = 503  # refused: every notification is retrying
            served, port = await start_serve(config)
            try:
                params = send_params("steps 2", "echoer")
                params["configuration"] = {
                    "taskPushNotificationConfig": {"url": f"{hook_base}/hook", "token": "tok"}
                }
                sent = await rpc(f"http://127.0.0.1:{port}", "SendMessage", params)
                task_id = sent["result"]["task"]["id"]
                await hooks.until(lambda: bool(hooks.sequences(503)), 30)
                await asyncio.sleep(0.5)  # the task's later notifications are queued too
            finally:
                served.process.send_signal(signal.SIGKILL)
                await served.exit_code()
            pending = hooks.sequences(503)
            hooks.status = 200
            restarted, _ = await start_serve(config)
            try:
                await hooks.until(lambda: pending <= hooks.sequences(200), 60)
            finally:
                await restarted.kill()
    delivered = [h for s, h in hooks.attempts if s == 200]
    assert {h["x-junction-task-id"] for h in delivered} == {task_id}
    assert all(h["x-a2a-notification-token"] == "tok" for h in delivered)
    assert pending <= hooks.sequences(200)
