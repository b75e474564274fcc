"""JSON-RPC round trips per second over stdio between two processes: Junction's peer vs a bare NDJSON echo.

The echo pair (a hand-written NDJSON client and server that only parse, match ids and write) is the
floor cost of the pipe and the interpreter; the ratio says what Junction's peer (jsonrpcserver
dispatch, pydantic-free echo handler, id correlation, task per request) costs on top of it.

    python benchmarks/jsonrpc_bench.py [--seconds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from transports import JsonRpcPeer, open_pipe_stream, open_stdio

PAYLOAD = {"sessionId": "bench", "text": "hello world " * 4}


# -- servers (run as child processes) -----------------------------------------------------------


async def serve_peer() -> None:
    peer = JsonRpcPeer(await open_stdio(), max_concurrency=256)

    async def echo(params: Any) -> Any:
        return params

    peer.on("echo", echo)
    await peer.run()


async def raw_pipes(
    read_fd: int, write_fd: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Plain asyncio streams on two fds: what the hand-written echo pair uses."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", 0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(write_fd, "wb", 0)
    )
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


async def serve_echo() -> None:
    reader, writer = await raw_pipes(0, 1)
    while line := await reader.readline():
        request = orjson.loads(line)
        response = {"jsonrpc": "2.0", "id": request["id"], "result": request["params"]}
        writer.write(orjson.dumps(response) + b"\n")
        await writer.drain()


# -- clients ------------------------------------------------------------------------------------

Call = Callable[[], Awaitable[Any]]
Close = Callable[[], Awaitable[None]]


async def spawn(kind: str) -> tuple[asyncio.subprocess.Process, int, int]:
    """Start a server child on two fresh pipes; return it with our read and write ends."""
    child_in, to_child = os.pipe()
    from_child, child_out = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable, os.path.abspath(__file__), "--serve", kind, stdin=child_in, stdout=child_out
    )
    os.close(child_in)
    os.close(child_out)
    return process, from_child, to_child


async def peer_client(read_fd: int, write_fd: int) -> tuple[Call, Close]:
    peer = JsonRpcPeer(await open_pipe_stream(read_fd, write_fd))
    runner = asyncio.create_task(peer.run())

    async def call() -> Any:
        return await peer.request("echo", PAYLOAD)

    async def close() -> None:
        await peer.aclose()
        await runner

    return call, close


async def echo_client(read_fd: int, write_fd: int) -> tuple[Call, Close]:
    reader, writer = await raw_pipes(read_fd, write_fd)
    waiters: dict[int, asyncio.Future[Any]] = {}
    ids = itertools.count()

    async def read() -> None:
        while line := await reader.readline():
            response = orjson.loads(line)
            waiters.pop(response["id"]).set_result(response["result"])

    read_task = asyncio.create_task(read())

    async def call() -> Any:
        request_id = next(ids)
        waiter = waiters[request_id] = asyncio.get_running_loop().create_future()
        request = {"jsonrpc": "2.0", "id": request_id, "method": "echo", "params": PAYLOAD}
        writer.write(orjson.dumps(request) + b"\n")
        await writer.drain()
        return await waiter

    async def close() -> None:
        writer.close()
        await read_task

    return call, close


async def measure(kind: str, concurrency: int, seconds: float) -> float:
    process, read_fd, write_fd = await spawn(kind)
    call, close = await (peer_client if kind == "peer" else echo_client)(read_fd, write_fd)
    for _ in range(200):  # warm up
        await call()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    await close()
    await process.wait()
    return done / elapsed


async def bench(seconds: float, as_json: bool) -> None:
    rows = []
    for concurrency in (1, 64):
        echo = await measure("echo", concurrency, seconds)
        peer = await measure("peer", concurrency, seconds)
        rows.append(
            {
                "concurrency": concurrency,
                "echo_rps": round(echo),
                "peer_rps": round(peer),
                "ratio": round(peer / echo, 3),
            }
        )
    if as_json:
        print(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"JSON-RPC over stdio, two processes, {seconds:g} s per cell")
    for column in ("concurrency", "bare NDJSON echo rt/s", "Junction peer rt/s", "ratio"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["concurrency"]),
            f"{row['echo_rps']:,}",
            f"{row['peer_rps']:,}",
            f"{row['ratio']:.2f}",
        )
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", choices=("peer", "echo"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_peer() if args.serve == "peer" else serve_echo())
        return
    asyncio.run(bench(args.seconds, args.json))


if __name__ == "__main__":
    main()
