"""The tools a turn offers the model, behind one small interface.

Three sources: the client's own file system and terminal (`fs/*`, `terminal/*`, only when the
client advertised them), the aggregated MCP tools (a `ToolProvider`), and registered A2A agents
(an `AgentDirectory`, one tool per agent). Each tool says what kind it is (for permissions and
the IDE's icons), how to title a call, where it touches files, and how to run.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from acp.elicitation import Elicitor, mcp_requests
from acp.paths import PathDenied, Roots
from acp.protocols import AgentDirectory, AgentInfo, ToolInfo, ToolProvider
from acp.schema import (
    CreateTerminalResponse,
    ReadTextFileResponse,
    TerminalOutputResponse,
    ToolKind,
)
from transports import JsonRpcPeer, RpcError

log = logging.getLogger(__name__)

Content = dict[str, Any]
"""One ACP ToolCallContent item as wire JSON."""

_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
_KINDS = frozenset(
    {
        "read",
        "edit",
        "delete",
        "move",
        "search",
        "execute",
        "think",
        "fetch",
        "switch_mode",
        "other",
    }
)


class ToolFailed(Exception):
    """A tool call that could not do its job; the message goes to the model and the IDE."""


def text_content(text: str) -> Content:
    return {"type": "content", "content": {"type": "text", "text": text}}


@dataclass
class ToolResult:
    """What a finished call produced: `output` for the model, `content` for the IDE."""

    output: str
    content: list[Content] = field(default_factory=list)
    failed: bool = False
    raw_output: Any = None


@dataclass
class ToolContext:
    """What a running tool may use: the client connection, the session's roots, a progress sink."""

    session_id: str
    peer: JsonRpcPeer
    roots: Roots
    progress: Callable[[list[Content]], Awaitable[None]]
    command_timeout: float = 600.0
    command_output_limit: int = 256 * 1024
    elicitor: Elicitor | None = None
    """Asks the person in the editor (what an MCP upstream or an A2A agent asks mid-call)."""


class Tool(abc.ABC):
    """One tool as the model sees it, plus how to present and run a call of it."""

    name: str
    description: str
    parameters: dict[str, Any]
    kind: ToolKind = "other"

    def title(self, args: Mapping[str, Any]) -> str:
        return self.name

    def locations(self, args: Mapping[str, Any], roots: Roots) -> list[dict[str, Any]]:
        return []

    async def preview(self, args: Mapping[str, Any], ctx: ToolContext) -> list[Content]:
        """Content shown with the permission request (a diff before a write)."""
        return []

    @abc.abstractmethod
    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult: ...


def _path_arg(args: Mapping[str, Any]) -> str:
    path = args.get("path")
    if not isinstance(path, str) or not path:
        raise ToolFailed("the 'path' argument must be a non-empty string")
    return path


def _safe_location(args: Mapping[str, Any], roots: Roots) -> list[dict[str, Any]]:
    try:
        return [{"path": roots.resolve(_path_arg(args))}]
    except (ToolFailed, PathDenied):
        return []


# -- the client's file system and terminal --------------------------------------------------------


class ReadTextFile(Tool):
    name = "read_text_file"
    description = (
        "Read a text file from the user's workspace (including unsaved editor changes). "
        "Paths are absolute or relative to the working directory."
    )
    parameters = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "file path"},
            "line": {"type": "integer", "minimum": 1, "description": "first line (1-based)"},
            "limit": {"type": "integer", "minimum": 1, "description": "maximum lines"},
        },
        "required": ["path"],
    }
    kind: ToolKind = "read"

    def title(self, args: Mapping[str, Any]) -> str:
        return f"Read {args.get('path', '')}"

    def locations(self, args: Mapping[str, Any], roots: Roots) -> list[dict[str, Any]]:
        found = _safe_location(args, roots)
        if found and isinstance(args.get("line"), int):
            found[0]["line"] = args["line"]
        return found

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        path = _resolve(ctx.roots, _path_arg(args))
        params: dict[str, Any] = {"sessionId": ctx.session_id, "path": path}
        for key in ("line", "limit"):
            value = args.get(key)
            if value is not None:
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ToolFailed(f"the '{key}' argument must be a positive integer")
                params[key] = value
        result = ReadTextFileResponse.model_validate(
            await _client_call(ctx, "fs/read_text_file", params)
        )
        return ToolResult(output=result.content, content=[text_content(result.content)])


class WriteTextFile(Tool):
    name = "write_text_file"
    description = (
        "Write a text file in the user's workspace (created if missing, replaced otherwise). "
        "Paths are absolute or relative to the working directory."
    )
    parameters = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "file path"},
            "content": {"type": "string", "description": "the complete new file content"},
        },
        "required": ["path", "content"],
    }
    kind: ToolKind = "edit"

    def __init__(self, *, can_read: bool) -> None:
        self._can_read = can_read

    def title(self, args: Mapping[str, Any]) -> str:
        return f"Write {args.get('path', '')}"

    def locations(self, args: Mapping[str, Any], roots: Roots) -> list[dict[str, Any]]:
        return _safe_location(args, roots)

    async def _old_text(self, path: str, ctx: ToolContext) -> str | None:
        if not self._can_read:
            return None
        try:
            raw = await ctx.peer.request(
                "fs/read_text_file", {"sessionId": ctx.session_id, "path": path}
            )
            return ReadTextFileResponse.model_validate(raw).content
        except (RpcError, ValueError):
            return None  # most often: the file does not exist yet

    def _diff(self, path: str, old: str | None, args: Mapping[str, Any]) -> Content:
        diff: Content = {"type": "diff", "path": path, "newText": str(args.get("content", ""))}
        if old is not None:
            diff["oldText"] = old
        return diff

    async def preview(self, args: Mapping[str, Any], ctx: ToolContext) -> list[Content]:
        try:
            path = _resolve(ctx.roots, _path_arg(args))
        except ToolFailed:
            return []
        return [self._diff(path, await self._old_text(path, ctx), args)]

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        path = _resolve(ctx.roots, _path_arg(args))
        content = args.get("content")
        if not isinstance(content, str):
            raise ToolFailed("the 'content' argument must be a string")
        old = await self._old_text(path, ctx)
        await _client_call(
            ctx,
            "fs/write_text_file",
            {"sessionId": ctx.session_id, "path": path, "content": content},
        )
        return ToolResult(
            output=f"Wrote {len(content.encode())} bytes to {path}",
            content=[self._diff(path, old, args)],
        )


class RunCommand(Tool):
    name = "run_command"
    description = (
        "Run a command in the user's terminal and return its output and exit status. "
        "`command` is the program, or a whole shell command line (run with `sh -c`) when "
        "`args` is empty or missing."
    )
    parameters = {
        "type": "object",
        "properties": {
            "command": {"type": "string"},
            "args": {"type": "array", "items": {"type": "string"}},
            "cwd": {"type": "string", "description": "working directory (default: the session's)"},
        },
        "required": ["command"],
    }
    kind: ToolKind = "execute"

    def title(self, args: Mapping[str, Any]) -> str:
        words = [str(args.get("command", "")), *(str(a) for a in args.get("args") or [])]
        return "Run " + " ".join(words)[:200]

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolFailed("the 'command' argument must be a non-empty string")
        argv = args.get("args") or []
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ToolFailed("the 'args' argument must be a list of strings")
        if not argv:  # one line, as models mostly give it: the shell splits and runs it
            command, argv = "sh", ["-c", command]
        cwd = _resolve(ctx.roots, str(args.get("cwd") or ctx.roots.cwd))
        created = CreateTerminalResponse.model_validate(
            await _client_call(
                ctx,
                "terminal/create",
                {
                    "sessionId": ctx.session_id,
                    "command": command,
                    "args": argv,
                    "cwd": cwd,
                    "outputByteLimit": ctx.command_output_limit,
                },
            )
        )
        terminal = {"sessionId": ctx.session_id, "terminalId": created.terminal_id}
        shown: Content = {"type": "terminal", "terminalId": created.terminal_id}
        try:
            await ctx.progress([shown])
            timed_out = False
            try:
                async with asyncio.timeout(ctx.command_timeout):
                    await _client_call(ctx, "terminal/wait_for_exit", terminal)
            except TimeoutError:
                timed_out = True
                await _client_call(ctx, "terminal/kill", terminal)
            output = TerminalOutputResponse.model_validate(
                await _client_call(ctx, "terminal/output", terminal)
            )
        finally:
            # Release even when the turn is cancelled: the client would keep the process.
            with contextlib.suppress(Exception):
                await asyncio.shield(ctx.peer.request("terminal/release", terminal, timeout=5))
        status = output.exit_status
        code = status.exit_code if status else None
        summary = f"exit code {code}" if code is not None else "no exit code"
        if status and status.signal:
            summary = f"killed by signal {status.signal}"
        if timed_out:
            summary = f"killed after {ctx.command_timeout:g} s ({summary})"
        truncated = " (output truncated to its end)" if output.truncated else ""
        return ToolResult(
            output=f"{output.output}\n[{summary}{truncated}]",
            content=[shown],
            failed=timed_out or (code not in (0, None)),
            raw_output={"exitCode": code, "signal": status.signal if status else None},
        )


def _resolve(roots: Roots, path: str) -> str:
    try:
        return roots.resolve(path)
    except PathDenied as exc:
        raise ToolFailed(str(exc)) from None


async def _client_call(ctx: ToolContext, method: str, params: dict[str, Any]) -> Any:
    try:
        return await ctx.peer.request(method, params)
    except RpcError as exc:
        # The client's details (what failed, e.g. a program not found) are the model's to see.
        detail = "" if exc.data is None else f" ({json.dumps(exc.data, default=str)[:2000]})"
        raise ToolFailed(f"the client refused {method}: {exc.message}{detail}") from None


# -- MCP tools ------------------------------------------------------------------------------------


def mcp_content(result: Mapping[str, Any]) -> tuple[str, list[Content]]:
    """An MCP CallToolResult as (text for the model, ACP content for the IDE)."""
    texts: list[str] = []
    shown: list[Content] = []
    for item in result.get("content") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text":
            text = str(item.get("text", ""))
            texts.append(text)
            shown.append(text_content(text))
        elif kind == "image" and isinstance(item.get("data"), str):
            texts.append(f"[image {item.get('mimeType', '')}]")
            shown.append(
                {
                    "type": "content",
                    "content": {
                        "type": "image",
                        "data": item["data"],
                        "mimeType": str(item.get("mimeType") or "image/png"),
                    },
                }
            )
        elif kind == "resource_link":
            texts.append(f"[{item.get('name', '')}]({item.get('uri', '')})")
            shown.append(
                {
                    "type": "content",
                    "content": {
                        "type": "resource_link",
                        "uri": str(item.get("uri", "")),
                        "name": str(item.get("name") or item.get("uri", "")),
                    },
                }
            )
        elif kind == "resource" and isinstance(item.get("resource"), dict):
            resource = item["resource"]
            if "text" in resource:
                texts.append(str(resource["text"]))
            shown.append({"type": "content", "content": {"type": "resource", "resource": resource}})
        else:
            texts.append(f"[{kind} content]")
    structured = result.get("structuredContent")
    if not texts and structured is not None:
        import json

        texts.append(json.dumps(structured))
    return "\n".join(texts), shown


def kind_of(annotations: Mapping[str, Any] | None) -> ToolKind:
    """The ACP kind of an MCP tool from its annotations, so the permission modes read them:
    `readOnlyHint` makes it `read` (`fetch` unless `openWorldHint` is false), allowed in every
    mode; a tool that says it is not read-only is `delete` when destructive (MCP's default
    once `readOnlyHint` is false) and `edit` when not, both asked about in `ask` mode and
    refused in `read-only`. A tool that says neither is `other` (asked about)."""
    if not annotations:
        return "other"
    read_only = annotations.get("readOnlyHint")
    if read_only is True:
        return "read" if annotations.get("openWorldHint") is False else "fetch"
    destructive = annotations.get("destructiveHint")
    if destructive is True or (read_only is False and destructive is None):
        return "delete"
    if destructive is False:
        return "edit"
    return "other"


class ProviderTool(Tool):
    """A tool of the MCP aggregate."""

    def __init__(self, info: ToolInfo, provider: ToolProvider) -> None:
        self.name = info.name
        self.description = info.description
        self.parameters = dict(info.parameters) or {"type": "object", "properties": {}}
        kind = getattr(info, "kind", None)
        self.kind = kind if kind in _KINDS else kind_of(getattr(info, "annotations", None))
        self._title = getattr(info, "title", None)
        self._provider = provider

    def title(self, args: Mapping[str, Any]) -> str:
        return str(self._title or self.name)

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            done = f"{progress:g}/{total:g}" if total else f"{progress:g}"
            await ctx.progress([text_content(f"{message or 'progress'} ({done})")])

        on_request = mcp_requests(ctx.elicitor, ctx.roots) if ctx.elicitor is not None else None
        try:
            result = await self._provider.call_tool(
                self.name, dict(args), on_progress=on_progress, on_request=on_request
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ToolFailed(f"{self.name} failed: {exc}") from None
        text, shown = mcp_content(result)
        return ToolResult(
            output=text, content=shown, failed=bool(result.get("isError")), raw_output=result
        )


# -- A2A agents -----------------------------------------------------------------------------------


def agent_tool_name(agent: str) -> str:
    """`a2a__<agent>`, the name the agent has as an MCP tool too (one name on every surface, so
    permission rules and key globs read the same); a directory may give its own (`tool_name`)."""
    return ("a2a__" + _TOOL_NAME.sub("_", agent))[:64]


class AgentTool(Tool):
    """A remote A2A agent: the model sends it a task, its streamed progress shows in the IDE."""

    kind: ToolKind = "other"
    parameters = {
        "type": "object",
        "properties": {"message": {"type": "string", "description": "the task for the agent"}},
        "required": ["message"],
    }

    def __init__(self, info: AgentInfo, directory: AgentDirectory) -> None:
        self.agent = info.name
        self.name = getattr(info, "tool_name", None) or agent_tool_name(info.name)
        self.description = f"Ask the remote agent {info.name!r}: {info.description}"
        self._directory = directory

    def title(self, args: Mapping[str, Any]) -> str:
        return f"Ask agent {self.agent}"

    async def run(self, args: Mapping[str, Any], ctx: ToolContext) -> ToolResult:
        message = args.get("message")
        if not isinstance(message, str) or not message:
            raise ToolFailed("the 'message' argument must be a non-empty string")
        progress: list[str] = []

        async def on_progress(text: str) -> None:
            progress.append(text)
            await ctx.progress([text_content("".join(progress))])

        elicitor = ctx.elicitor

        async def on_input(question: str) -> str | None:
            return None if elicitor is None else await elicitor.question(self.agent, question)

        try:
            answer = await self._directory.send_task(
                self.agent,
                message,
                on_progress=on_progress,
                on_input=on_input,
                session_id=ctx.session_id,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ToolFailed(f"agent {self.agent} failed: {exc}") from None
        return ToolResult(output=answer, content=[text_content(answer)])


# -- the set offered in one turn ------------------------------------------------------------------


async def collect_tools(
    *,
    read: bool,
    write: bool,
    terminal: bool,
    provider: ToolProvider | None,
    agents: AgentDirectory | None,
) -> dict[str, Tool]:
    """Every tool for the next model call, by name; built-in names win over MCP ones."""
    tools: dict[str, Tool] = {}
    if agents is not None:
        try:
            for agent in await agents.list_agents():
                agent_tool = AgentTool(agent, agents)
                tools[agent_tool.name] = agent_tool
        except Exception as exc:
            log.warning("could not list A2A agents: %s", exc)
    if provider is not None:
        try:
            for info in await provider.llm_tools():
                tools[info.name] = ProviderTool(info, provider)
        except Exception as exc:
            log.warning("could not list MCP tools: %s", exc)
    builtin: list[Tool] = []
    if read:
        builtin.append(ReadTextFile())
    if write:
        builtin.append(WriteTextFile(can_read=read))
    if terminal:
        builtin.append(RunCommand())
    for tool in builtin:
        if tool.name in tools:
            log.warning("MCP tool %r is shadowed by the built-in tool of that name", tool.name)
        tools[tool.name] = tool
    return tools


def describe_tools(tools: Sequence[Tool]) -> str:
    lines = [
        f"- `{t.name}` ({t.kind}): {t.description.splitlines()[0] if t.description else ''}"
        for t in tools
    ]
    return "\n".join(lines) if lines else "No tools are available."


__all__ = [
    "AgentTool",
    "Content",
    "ProviderTool",
    "ReadTextFile",
    "RunCommand",
    "Tool",
    "ToolContext",
    "ToolFailed",
    "ToolResult",
    "WriteTextFile",
    "agent_tool_name",
    "collect_tools",
    "describe_tools",
    "kind_of",
    "mcp_content",
    "text_content",
]
