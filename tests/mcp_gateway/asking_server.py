"""An upstream that asks its client things outside calls and with progress tokens (mcp SDK, stdio).

- On `notifications/roots/list_changed` (no call of the client's in flight) it asks its client
  `roots/list`, `sampling/createMessage` and `elicitation/create` on the session's own channel
  and keeps the answers (or errors), then logs "asked"; the tool `answers` returns them as
  JSON text.
- `elicit_with_progress` sends `elicitation/create` with `_meta.progressToken` "upstream-token"
  (its own token) and answers with the client's answer and the first two
  `notifications/progress` the client sent back (token and value), as JSON text.
- `work` reports progress 1/2 and 2/2 on the call, then answers "done".
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

TOKEN = "upstream-token"
_EMPTY: dict[str, Any] = {"type": "object", "properties": {}}
TOOLS = [
    types.Tool(name=name, description=name, input_schema=_EMPTY)
    for name in ("answers", "elicit_with_progress", "work")
]
FORM: dict[str, Any] = {"type": "object", "properties": {"colour": {"type": "string"}}}
ASKS: dict[str, dict[str, Any]] = {
    "roots/list": {},
    "sampling/createMessage": {
        "messages": [{"role": "user", "content": {"type": "text", "text": "hi"}}],
        "maxTokens": 5,
    },
    "elicitation/create": {"mode": "form", "message": "colour?", "requestedSchema": FORM},
}


async def main() -> None:
    heard: dict[str, Any] = {}
    heard_all = anyio.Event()
    progress: list[dict[str, Any]] = []
    two_steps = anyio.Event()

    async def on_roots_changed(ctx: ServerRequestContext[Any, Any], params: Any) -> None:
        outbound = ctx.session._connection.outbound  # the session's own channel
        for method, ask in ASKS.items():
            try:
                heard[method] = await outbound.send_raw_request(method, ask)
            except MCPError as exc:
                heard[method] = {"error": exc.error.code, "message": exc.error.message}
        heard_all.set()
        await outbound.notify("notifications/message", {"level": "info", "data": "asked"})

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name == "answers":
            with anyio.fail_after(10):
                await heard_all.wait()
            text = json.dumps(heard, sort_keys=True)
        elif params.name == "elicit_with_progress":
            answer = await ctx.session._request_outbound.send_raw_request(
                "elicitation/create",
                {**ASKS["elicitation/create"], "_meta": {"progressToken": TOKEN}},
            )
            with anyio.fail_after(10):  # the notifications may trail the answer
                await two_steps.wait()
            text = json.dumps({"answer": answer, "progress": progress[:2]}, sort_keys=True)
        else:
            for step in (1, 2):
                await ctx.session.report_progress(step, 2, f"step {step}")
            text = "done"
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=TOOLS)

    async def on_progress(
        ctx: ServerRequestContext[Any, Any], params: types.ProgressNotificationParams
    ) -> None:
        progress.append({"token": params.progress_token, "progress": params.progress})
        if len(progress) >= 2:
            two_steps.set()

    server: Server[Any] = Server(
        "asking",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_progress=on_progress,
        on_roots_list_changed=on_roots_changed,
    )
    async with stdio_server() as (read, write):  # 2025-11-25 only, as servers that ask are
        options = server.create_initialization_options()
        await serve_loop(server, read, write, lifespan_state=None, init_options=options)


if __name__ == "__main__":
    anyio.run(main)
