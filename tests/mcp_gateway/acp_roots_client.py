"""An IDE played by the official ACP Python SDK (its own venv), for the roots of session servers.

    python acp_roots_client.py SPEC.json      (prints one JSON report on stdout)

SPEC: {"agent": [argv...], "workdir": DIR, "cwd": DIR, "extra": [DIR...], "fs": {"name",
"command", "args"}, "prompts": [text...], "ready": {"file": PATH, "text": TEXT}}. It opens a
session with `cwd`, `extra` as additionalDirectories and the MCP server `fs` (session-scoped),
waits (with "ready") until FILE holds TEXT (the server says it took its roots: it asks for them
on its own after it is initialized, so a first prompt could otherwise overtake them), sends each
prompt in turn, allows every permission asked, and reports each prompt's session updates.
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
    McpServerStdio,
    RequestPermissionResponse,
)


class Ide:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    async def request_permission(
        self, session_id: str, tool_call: Any, options: Any, **kw: Any
    ) -> Any:
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id="allow_once")
        )

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        self.updates.append(update.model_dump(by_alias=True, exclude_none=True, mode="json"))

    def on_connect(self, conn: Any) -> None:
        pass


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""


async def main() -> None:
    spec = json.loads(await asyncio.to_thread(Path(sys.argv[1]).read_text))
    ide = Ide()
    command, *args = spec["agent"]
    report: dict[str, Any] = {"turns": []}
    async with spawn_agent_process(ide, command, *args, cwd=spec["workdir"]) as (conn, _):
        await conn.initialize(protocol_version=1, client_capabilities=ClientCapabilities())
        session = await conn.new_session(
            cwd=spec["cwd"],
            additional_directories=spec["extra"],
            mcp_servers=[McpServerStdio(env=[], **spec["fs"])],
        )
        if ready := spec.get("ready"):
            async with asyncio.timeout(30):
                while ready["text"] not in await asyncio.to_thread(_read, ready["file"]):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        for prompt in spec["prompts"]:
            before = len(ide.updates)
            done = await conn.prompt(session_id=session.session_id, prompt=[text_block(prompt)])
            report["turns"].append({"stop": done.stop_reason, "updates": ide.updates[before:]})
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main())
