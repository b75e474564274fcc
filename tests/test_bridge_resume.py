"""`junction --mode bridge` resumes its remote connection across a dropped socket.

Between the bridge and a real `junction --mode serve` sits a TCP relay the test can cut (every
open connection reset, as a network blip or a proxy restart would) while the remote lives on.
The IDE, played over the bridge's stdin/stdout, must notice nothing: the turn streams on, every
update arrives once, a permission dialog open across the cut is answered, nothing runs twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.acp.wire import HANG_GUARD
from tests.router_core.llm_servers import Call, OpenAIServer, Reply, openai_server
from tests.test_bridge import (
    Proc,
    held,
    ide_over_bridge,
    no_traceback,
    serve_config,
    start_bridge,
    start_serve,
)


class Relay:
    """A TCP relay to `port` whose open connections the test can reset at once."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.cuts = 0

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        self._writers |= {writer, up_writer}
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.close()

    def cut(self) -> None:
        """Reset every open connection (both sides see the TCP connection die)."""
        self.cuts += 1
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
        for task in list(self._pipes):
            task.cancel()


@pytest.fixture
async def model() -> AsyncIterator[OpenAIServer]:
    async with openai_server(models=["m1"]) as server:
        yield server


@pytest.fixture
async def relayed(tmp_path: Path, model: OpenAIServer) -> AsyncIterator[tuple[Proc, Relay]]:
    served, port = await start_serve(serve_config(tmp_path, model))
    relay = Relay(port)
    await relay.start()
    yield served, relay
    await relay.close()
    await served.kill()


@pytest.mark.parametrize("scheme", ["ws", "http"])
async def test_a_cut_mid_turn_is_resumed_and_the_ide_misses_nothing(
    tmp_path: Path, model: OpenAIServer, relayed: tuple[Proc, Relay], scheme: str
) -> None:
    """ws://: the WebSocket profile, resumed by the bridge with `stream/resume`; http://:
    Streamable HTTP, whose client reopens its stream with `Last-Event-ID` and sends a POST
    that died in the cut again."""
    served, relay = relayed
    story = " ".join(f"w{i}" for i in range(80))
    target = tmp_path / "out.txt"
    model.script(
        [
            Reply(text=story, chunk_size=2, chunk_delay=0.01),
            Reply(tool_calls=[Call("write_text_file", {"path": str(target), "content": "x"})]),
            Reply(text="Done."),
        ]
    )
    url = f"{scheme}://127.0.0.1:{relay.port}/acp"
    async with ide_over_bridge(url, attempts=20) as ide:
        client = ide.client
        await client.initialize()
        sid = await client.new_session(tmp_path)

        # 1. the socket dies while the reply streams; the remote keeps the turn running
        prompt = client.start_request(
            "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "tell"}]}
        )
        await client.wait_for(lambda: bool(client.text()))
        relay.cut()
        at_cut = client.text()
        response = await asyncio.wait_for(prompt, HANG_GUARD)
        assert response["result"] == {"stopReason": "end_turn"}, response
        assert len(at_cut) < len(story) and client.text() == story  # every chunk once, in order
        if scheme == "ws":
            await ide.bridge.wait_log(r"resumed the connection to \S+ after message \d+")

        # 2. the socket dies while the IDE's permission dialog is open; the answer still counts
        release, asked = asyncio.Event(), asyncio.Event()
        client.handlers["session/request_permission"] = held(release, asked)
        second = client.start_request(
            "session/prompt", {"sessionId": sid, "prompt": [{"type": "text", "text": "write"}]}
        )
        async with asyncio.timeout(HANG_GUARD):
            await asked.wait()
        relay.cut()
        release.set()
        answer = await asyncio.wait_for(second, HANG_GUARD)
        assert answer["result"] == {"stopReason": "end_turn"}, answer
        assert target.read_text() == "x"
        assert client.text().endswith("Done.")

        assert relay.cuts == 2
        assert len(model.chat_requests) == 3  # nothing was run twice
        errors = [m for m in ide.wire.seen if "error" in m]
        assert errors == []
        cancels = [m for m in ide.wire.seen if m.get("method") == "$/cancel_request"]
        assert cancels == []
        assert all("_meta" not in m or "acp/cursor" not in m["_meta"] for m in ide.wire.seen)
        assert ide.bridge.process.returncode is None
    no_traceback(ide.bridge)
    no_traceback(served)


async def test_an_http_url_with_a_refused_token_exits_1_with_one_clear_line(
    relayed: tuple[Proc, Relay],
) -> None:
    _, relay = relayed
    bridge = await start_bridge(f"http://127.0.0.1:{relay.port}/acp", token="not-a-key")
    assert await bridge.exit_code() == 1
    assert "refused the token (HTTP 401)" in bridge.log, bridge.log
    no_traceback(bridge)
