"""A remote IDE played by the official ACP Python SDK 0.12.1 with its `http` extra, in its own
venv (`$JUNCTION_CI_CACHE/peers/agent-client-protocol-http`), against Junction's `/acp`.

    python acp_remote_peer.py SPEC.json      (prints one JSON report on stdout)

SPEC: {"url": "http://.../acp" | "ws://.../acp", "token": T, "cwd": DIR, "transport": "http" |
"ws", "scenario": ...}.

- "session": the SDK's own client (`acp.http.create_http_stream` or
  `acp.ws.create_websocket_stream`): initialize, session/new, a streamed prompt with a permission
  round trip; then a second connection of the same kind loads the session (its history replayed)
  and prompts again: the session outlived its connection.
- "resume": the SDK 0.12.1 client does not resume (its `_sse.py`: "resumability is v2"), so
  this scenario speaks the wire with the httpx the SDK brings: initialize, the stream, session/new,
  a prompt; after `drop_after` updates the stream is dropped, the prompt is POSTed again (a retry),
  and the stream is reopened with `Last-Event-ID`. Reports every event's cursor and message.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx
from acp.http import create_http_stream
from acp.ws import create_websocket_stream

from acp import connect_to_agent, text_block
from acp.schema import (
    AllowedOutcome,
    ClientCapabilities,
    FileSystemCapabilities,
    Implementation,
    RequestPermissionResponse,
    WriteTextFileResponse,
)


class Ide:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.permissions = 0
        self.writes: list[str] = []

    async def request_permission(
        self, session_id: str, tool_call: Any, options: Any, **kw: Any
    ) -> Any:
        self.permissions += 1
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id="allow_once")
        )

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        self.updates.append(update.model_dump(by_alias=True, exclude_none=True, mode="json"))

    async def write_text_file(self, session_id: str, path: str, content: str, **kw: Any) -> Any:
        self.writes.append(path)
        await asyncio.to_thread(Path(path).write_text, content)
        return WriteTextFileResponse()

    def on_connect(self, conn: Any) -> None:
        pass


async def transport(spec: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {spec['token']}"} if spec.get("token") else {}
    if spec["transport"] == "ws":
        return await create_websocket_stream(spec["url"], headers=headers)
    return create_http_stream(spec["url"], headers=headers)


async def session(spec: dict[str, Any]) -> dict[str, Any]:
    ide = Ide()
    link = await transport(spec)
    conn = connect_to_agent(ide, link)
    caps = ClientCapabilities(fs=FileSystemCapabilities(read_text_file=False, write_text_file=True))
    init = await conn.initialize(
        protocol_version=1,
        client_capabilities=caps,
        client_info=Implementation(name="remote", version="1"),
    )
    created = await conn.new_session(cwd=spec["cwd"], mcp_servers=[])
    sid = created.session_id
    first = await conn.prompt(session_id=sid, prompt=[text_block("hello")])
    second = await conn.prompt(session_id=sid, prompt=[text_block("write it")])
    updates = list(ide.updates)
    await conn.close()

    again = Ide()
    link = await transport(spec)
    conn = connect_to_agent(again, link)
    await conn.initialize(protocol_version=1, client_capabilities=ClientCapabilities())
    await conn.load_session(cwd=spec["cwd"], session_id=sid, mcp_servers=[])
    replayed = list(again.updates)
    third = await conn.prompt(session_id=sid, prompt=[text_block("and again")])
    await conn.close()
    return {
        "init": init.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "session": sid,
        "stops": [first.stop_reason, second.stop_reason, third.stop_reason],
        "updates": updates,
        "permissions": ide.permissions,
        "writes": ide.writes,
        "replayed": replayed,
        "after": again.updates[len(replayed) :],
    }


async def events(response: httpx.Response) -> Any:
    """(cursor, event, data) per SSE event of a response (a plain parser: the SDK's drops ids)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield fields.get("id"), fields.get("event", "message"), fields["data"]
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            fields[name] = fields[name] + "\n" + value if name in fields else value


async def resume(spec: dict[str, Any]) -> dict[str, Any]:
    url = spec["url"]
    auth = {"Authorization": f"Bearer {spec['token']}"} if spec.get("token") else {}
    report: dict[str, Any] = {"events": [], "posts": []}
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http:
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}
        answer = await http.post(url, json=init, headers=auth)
        conn_id = answer.headers["acp-connection-id"]
        base = {**auth, "Acp-Connection-Id": conn_id}
        stream = {**base, "Accept": "text/event-stream"}

        async def post(message: dict[str, Any], **headers: str) -> None:
            sent = await http.post(url, json=message, headers={**base, **headers})
            report["posts"].append([sent.status_code, sent.headers.get("acp-duplicate")])

        prompt = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "session/prompt",
            "params": {"sessionId": "", "prompt": [{"type": "text", "text": "tell me"}]},
        }
        async with http.stream("GET", url, headers=stream) as live:
            await post(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "session/new",
                    "params": {"cwd": spec["cwd"], "mcpServers": []},
                }
            )
            updates = 0
            async for cursor, _kind, data in events(live):
                message = json.loads(data)
                report["events"].append([cursor, message])
                if message.get("id") == 2:
                    sid = message["result"]["sessionId"]
                    prompt["params"]["sessionId"] = sid
                    await post(prompt, **{"Acp-Session-Id": sid})
                elif message.get("method") == "session/update":
                    updates += 1
                    if updates == spec["drop_after"]:
                        break  # the stream drops mid-turn
        await post(prompt, **{"Acp-Session-Id": sid})  # a retry of the prompt: not run twice
        last = report["events"][-1][0]
        async with http.stream("GET", url, headers={**stream, "Last-Event-ID": last}) as again:
            report["resumed_status"] = again.status_code
            async for cursor, _kind, data in events(again):
                message = json.loads(data)
                report["events"].append([cursor, message])
                if message.get("id") == 3:
                    break
        beyond = await http.get(url, headers={**stream, "Last-Event-ID": str(int(last) + 10_000)})
        report["beyond_status"] = beyond.status_code
        report["beyond_body"] = beyond.json()
        closed = await http.delete(url, headers=base)
        report["delete_status"] = closed.status_code
        gone = await http.post(url, json=prompt, headers={**base, "Acp-Session-Id": sid})
        report["after_delete_status"] = gone.status_code
    return report


async def main() -> None:
    spec = json.loads(await asyncio.to_thread(Path(sys.argv[1]).read_text))
    run = {"session": session, "resume": resume}[spec["scenario"]]
    print(json.dumps(await asyncio.wait_for(run(spec), 60)))


if __name__ == "__main__":
    asyncio.run(main())
