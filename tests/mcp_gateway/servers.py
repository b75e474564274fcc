"""Upstream MCP servers for the gateway tests, written with the `mcp` SDK: one healthy, many faulty.

Run as `python servers.py MODE`:

- `ok`: echo, add, slow, big (a result of N bytes), rich (structuredContent + image + embedded
  resource + isError), progress, pid, die (exits mid-call), grow (adds a tool and sends
  `tools/list_changed`); a resource and a prompt.
- `many`: 50 tools (for the tools/list benchmark).
- `garbage`: writes non-JSON lines to stdout before serving, then serves like `ok`.
- `exit`: exits with status 3 at start, after a line on stderr.
- `hang`: never answers anything (a handshake that never completes).
- `invalid`: lists tools with invalid input schemas next to one valid tool.
- `duplicate`: lists the same tool name twice.
"""

from __future__ import annotations

import base64
import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server import CacheHint, NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged

TINY_PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()


def _schema(**props: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": v} for k, v in props.items()},
        "required": list(props),
    }


BASE_TOOLS = [
    types.Tool(name="echo", description="Echo a message.", input_schema=_schema(message="string")),
    types.Tool(
        name="add", description="Add two integers.", input_schema=_schema(a="integer", b="integer")
    ),
    types.Tool(
        name="slow", description="Sleep, then answer.", input_schema=_schema(seconds="number")
    ),
    types.Tool(
        name="big",
        description="A text result of `size` bytes.",
        input_schema=_schema(size="integer"),
    ),
    types.Tool(
        name="rich",
        description="Structured content, an image and a resource.",
        input_schema=_schema(),
    ),
    types.Tool(name="progress", description="Report progress 3 times.", input_schema=_schema()),
    types.Tool(name="pid", description="This server's process id.", input_schema=_schema()),
    types.Tool(name="die", description="Exit mid-call.", input_schema=_schema()),
    types.Tool(
        name="grow", description="Add a tool; send tools/list_changed.", input_schema=_schema()
    ),
    types.Tool(name="sum.of:things", description="A name LLM APIs reject.", input_schema=_schema()),
    types.Tool(name="t" * 80, description="A name past 64 characters.", input_schema=_schema()),
]


def ok_server() -> Server[Any]:
    extra: list[types.Tool] = []
    bus = InMemorySubscriptionBus()

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=BASE_TOOLS + extra)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> Any:
        args = params.arguments or {}
        name = params.name
        if name == "echo":
            return types.CallToolResult(content=[types.TextContent(text=str(args["message"]))])
        if name == "add":
            total = int(args["a"]) + int(args["b"])
            return types.CallToolResult(
                content=[types.TextContent(text=str(total))], structured_content={"sum": total}
            )
        if name == "slow":
            await anyio.sleep(float(args["seconds"]))
            return types.CallToolResult(content=[types.TextContent(text="done")])
        if name == "big":
            return types.CallToolResult(content=[types.TextContent(text="x" * int(args["size"]))])
        if name == "rich":
            return types.CallToolResult(
                content=[
                    types.TextContent(text="see structuredContent"),
                    types.ImageContent(data=TINY_PNG, mime_type="image/png"),
                    types.EmbeddedResource(
                        resource=types.TextResourceContents(
                            uri="test://note", text="a note", mime_type="text/plain"
                        )
                    ),
                ],
                structured_content={"answer": 42, "nested": {"list": [1, 2, 3]}},
                is_error=True,
            )
        if name == "progress":
            for step in range(1, 4):
                await ctx.session.report_progress(step, 3, f"step {step}")
            return types.CallToolResult(content=[types.TextContent(text="progressed")])
        if name == "pid":
            return types.CallToolResult(content=[types.TextContent(text=str(os.getpid()))])
        if name == "die":
            os._exit(7)
        if name == "grow":
            extra.append(
                types.Tool(name=f"grown{len(extra)}", description="New.", input_schema=_schema())
            )
            await ctx.session.send_tool_list_changed()  # handshake-era clients
            await bus.publish(ToolsListChanged())  # 2026-07-28 clients, on their listen stream
            return types.CallToolResult(content=[types.TextContent(text=f"{len(extra)} extra")])
        return types.CallToolResult(content=[types.TextContent(text=f"called {name}")])

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: Any
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[types.Resource(uri="test://note", name="note")])

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(uri=str(params.uri), text=f"content of {params.uri}")
            ]
        )

    async def list_prompts(
        ctx: ServerRequestContext[Any, Any], params: Any
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(
            prompts=[types.Prompt(name="greet", description="Say hello.")]
        )

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        return types.GetPromptResult(
            messages=[types.PromptMessage(role="user", content=types.TextContent(text="hello"))]
        )

    return Server(
        "gateway-test-ok",
        version="1.0",
        # 2026-07-28 caching directives on its lists (tests/mcp_gateway/test_list_hints.py)
        cache_hints={
            "tools/list": CacheHint(ttl_ms=60_000, scope="public"),
            "prompts/list": CacheHint(ttl_ms=30_000, scope="private"),
        },
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_read_resource=read_resource,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_subscriptions_listen=ListenHandler(bus),
    )


def raw_tools_server(tools: list[dict[str, Any]]) -> Server[Any]:
    """A server whose tools/list is written raw, past the SDK's own output validation."""

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[])

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> Any:
        return types.CallToolResult(content=[types.TextContent(text=f"called {params.name}")])

    async def raw_list(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method == "tools/list":
            return {"tools": tools}
        return await call_next(ctx)

    server = Server("gateway-test-raw", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(raw_list)
    return server


def hang_server() -> Server[Any]:
    async def never(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        await anyio.sleep_forever()
        return None

    server = ok_server()
    server.middleware.insert(0, never)
    return server


async def serve(server: Server[Any]) -> None:
    async with stdio_server() as (read, write):
        options = server.create_initialization_options(NotificationOptions(tools_changed=True))
        await server.run(read, write, options)


def main() -> None:
    mode = sys.argv[1]
    if mode == "exit":
        print("fatal: this server refuses to start", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "garbage":
        sys.stdout.write("this is not JSON\n{broken json\n\x00\x01 binary junk\n")
        sys.stdout.flush()
        server = ok_server()
    elif mode == "ok":
        server = ok_server()
    elif mode == "many":
        server = raw_tools_server(
            [
                {
                    "name": f"tool_{i:02}",
                    "description": f"Tool {i}.",
                    "inputSchema": _schema(x="string"),
                }
                for i in range(50)
            ]
        )

    elif mode == "hang":
        server = hang_server()
    elif mode == "invalid":
        server = raw_tools_server(
            [
                {"name": "good", "inputSchema": {"type": "object"}},
                {"name": "no_schema"},
                {"name": "string_schema", "inputSchema": {"type": "string"}},
                {"name": "not_a_dict", "inputSchema": "object"},
                {"inputSchema": {"type": "object"}},
            ]
        )
    elif mode == "duplicate":
        server = raw_tools_server(
            [
                {"name": "twin", "description": "first", "inputSchema": {"type": "object"}},
                {"name": "twin", "description": "second", "inputSchema": {"type": "object"}},
            ]
        )
    else:
        raise SystemExit(f"unknown mode {mode}")
    anyio.run(serve, server)


if __name__ == "__main__":
    main()
