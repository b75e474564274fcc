"""An IDE played by the official ACP Python SDK (`agent-client-protocol`), in its own venv.

    python sdk_client.py SPEC.json      (prints one JSON report on stdout)

SPEC: {"agent": [argv...], "cwd": DIR, "phase": "first" | "second", "session": ID}.
"first": initialize, session/new, a streamed prompt, a write + read through fs/* with a permission
round trip, then a prompt cancelled mid-stream. "second" (a new agent process on the same store):
session/list, session/load (replay) handing the agent the MCP server in SPEC["mcp"] (a
session-scoped server: {"name", "command", "args"}), and one more prompt, whose tool call on that
server asks permission.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from acp.stdio import spawn_agent_process

from acp import text_block
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    FileSystemCapabilities,
    Implementation,
    McpServerStdio,
    ReadTextFileResponse,
    RequestPermissionResponse,
    WriteTextFileResponse,
)


class Ide:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.permissions: list[dict[str, Any]] = []
        self.reads: list[str] = []
        self.writes: list[str] = []
        self.chunk = asyncio.Event()

    async def request_permission(
        self, session_id: str, tool_call: Any, options: Any, **kw: Any
    ) -> Any:
        self.permissions.append(
            {
                "toolCall": tool_call.model_dump(by_alias=True, exclude_none=True, mode="json"),
                "options": [o.option_id for o in options],
            }
        )
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id="allow_once")
        )

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        data = update.model_dump(by_alias=True, exclude_none=True, mode="json")
        self.updates.append(data)
        if data.get("sessionUpdate") == "agent_message_chunk":
            self.chunk.set()

    async def read_text_file(
        self, session_id: str, path: str, line: Any = None, limit: Any = None, **kw: Any
    ) -> Any:
        self.reads.append(path)
        return ReadTextFileResponse(content=await asyncio.to_thread(Path(path).read_text))

    async def write_text_file(self, session_id: str, path: str, content: str, **kw: Any) -> Any:
        self.writes.append(path)
        await asyncio.to_thread(Path(path).write_text, content)
        return WriteTextFileResponse()

    def on_connect(self, conn: Any) -> None:
        pass


async def first(conn: Any, ide: Ide, cwd: str) -> dict[str, Any]:
    init = await conn.initialize(
        protocol_version=1,
        client_capabilities=ClientCapabilities(
            fs=FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=False
        ),
        client_info=Implementation(name="sdk-test", version="1"),
    )
    session = await conn.new_session(cwd=cwd, mcp_servers=[])
    sid = session.session_id
    stops = []
    stops.append((await conn.prompt(session_id=sid, prompt=[text_block("hello")])).stop_reason)
    after_hello = len(ide.updates)
    stops.append(
        (await conn.prompt(session_id=sid, prompt=[text_block("edit the file")])).stop_reason
    )
    after_edit = len(ide.updates)
    ide.chunk.clear()
    running = asyncio.create_task(conn.prompt(session_id=sid, prompt=[text_block("long story")]))
    await asyncio.wait_for(ide.chunk.wait(), 20)
    await conn.cancel(session_id=sid)
    stops.append((await asyncio.wait_for(running, 20)).stop_reason)
    return {
        "init": init.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "session": sid,
        "new": session.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "stops": stops,
        "hello_updates": ide.updates[:after_hello],
        "edit_updates": ide.updates[after_hello:after_edit],
        "cancel_updates": ide.updates[after_edit:],
        "permissions": ide.permissions,
        "reads": ide.reads,
        "writes": ide.writes,
    }


async def second(
    conn: Any, ide: Ide, cwd: str, sid: str, mcp: dict[str, Any] | None
) -> dict[str, Any]:
    await conn.initialize(protocol_version=1, client_capabilities=ClientCapabilities())
    listed = await conn.list_sessions()
    servers = [McpServerStdio(env=[], **mcp)] if mcp else []
    await conn.load_session(cwd=cwd, session_id=sid, mcp_servers=servers)
    replayed = list(ide.updates)
    stop = (await conn.prompt(session_id=sid, prompt=[text_block("after restart")])).stop_reason
    return {
        "listed": listed.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "replayed": replayed,
        "stop": stop,
        "after": ide.updates[len(replayed) :],
        "permissions": ide.permissions,
    }


async def main() -> None:
    spec = json.loads(await asyncio.to_thread(Path(sys.argv[1]).read_text))
    ide = Ide()
    command, *args = spec["agent"]
    async with spawn_agent_process(ide, command, *args, cwd=spec.get("workdir")) as (
        conn,
        _process,
    ):
        if spec["phase"] == "first":
            report = await first(conn, ide, spec["cwd"])
        else:
            report = await second(conn, ide, spec["cwd"], spec["session"], spec.get("mcp"))
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
