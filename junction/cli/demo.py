"""`junction demo`: one ACP session end to end, on bundled examples, with no network and no keys.

README's "run" command for a newcomer. It starts, on 127.0.0.1 and on free ports, a scripted demo
model (OpenAI-compatible, not an LLM) and an example A2A agent; writes a throw-away config that
also names the example MCP server (stdio); launches `junction --mode stdio` as an editor would;
and plays the editor: three prompts, one using an MCP tool, one delegating to the A2A agent and
one writing a file (which asks permission; the demo answers "allow once"). The transcript is
printed with rich (plain text when stdout is not a terminal). Every step is checked, so a broken
build fails loudly with a non-zero exit instead of printing a plausible transcript; an overall
timeout means it never hangs; every process it started is gone when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import yaml
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

from junction.config import JunctionConfig
from transports import JsonRpcPeer, MessageStream, Oversized, RpcError, open_pipe_stream

log = logging.getLogger("junction.demo")

__all__ = ["OVERALL_TIMEOUT", "DemoError", "examples_dir", "run_demo"]

OVERALL_TIMEOUT = 120.0
"""The whole demo, start to clean exit; a hang anywhere becomes a clear failure."""
PROMPT_TIMEOUT = 60.0
STOP_GRACE = 8.0
"""How long Junction gets to exit after its stdin closes before it is terminated."""
MODEL_ID = "junction-demo-model"
PLAN_FILE = "PLAN.md"
RESOURCE_NOT_FOUND = -32002
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
"""Where the `junction` package sits (a checkout's root, or site-packages)."""


class DemoError(Exception):
    """A step of the demo did not do what it should; the message says which and why."""


@dataclass(frozen=True)
class _Step:
    heading: str
    prompt: str


STEPS = (
    _Step(
        "An MCP tool (the notes server, over stdio, behind Junction's gateway)",
        'Count the words in "Junction puts ACP, MCP and A2A behind one process."',
    ),
    _Step(
        "Delegating to an A2A agent (planner, over A2A 1.0 JSON-RPC)",
        'Ask the planner agent to plan "adding a dark mode to the settings page".',
    ),
    _Step(
        "Writing a file (the agent asks the editor for permission first)",
        f"Write that plan to the file {PLAN_FILE}.",
    ),
)


def examples_dir() -> Path:
    """The bundled `examples/` (next to the `junction` package in a checkout or editable install)."""
    return _SOURCE_ROOT / "examples"


def run_demo(config: JunctionConfig) -> int:
    """Run the demo; 0 when every step did what it should, 1 otherwise, 130 on Ctrl-C.

    `config` (the user's) is deliberately not used for the session: the demo builds its own, so
    it never touches the user's backends, keys or store, and works on a fresh machine.
    """
    del config
    console = Console(highlight=False)
    if not console.is_terminal:
        console.soft_wrap = True  # a log or a pipe: long lines stay whole, not cut at 80
    try:
        asyncio.run(_demo(console))
    except KeyboardInterrupt:
        console.print("\njunction demo: interrupted", style="yellow")
        return 130
    except DemoError as exc:
        console.print(Text(f"\njunction demo failed: {exc}", style="bold red"))
        return 1
    except Exception as exc:  # a bug: still one clear line and a non-zero exit
        log.debug("demo crashed", exc_info=True)
        console.print(
            Text(f"\njunction demo failed: {type(exc).__name__}: {exc}", style="bold red")
        )
        return 1
    return 0


# -- the whole run --------------------------------------------------------------------------------


async def _demo(console: Console) -> None:
    examples = examples_dir()
    needed = ("demo_model.py", "a2a_agent.py", "mcp_notes_server.py")
    missing = [name for name in needed if not (examples / name).is_file()]
    if missing:
        raise DemoError(
            f"the bundled examples are missing ({', '.join(missing)} in {examples}); "
            "run the demo from a Junction source checkout or an install that includes examples/"
        )
    with tempfile.TemporaryDirectory(prefix="junction-demo-") as tmp:
        root = Path(tmp)
        log_path = root / "junction-stderr.log"
        try:
            async with asyncio.timeout(OVERALL_TIMEOUT):
                await _run(console, examples, root, log_path)
        except TimeoutError:
            message = f"it did not finish within {OVERALL_TIMEOUT:g} s"
            raise DemoError(message + _tail(log_path)) from None
        except DemoError as exc:  # read Junction's stderr before the temp dir goes
            raise DemoError(f"{exc}{_tail(log_path)}") from None


def _tail(log_path: Path, lines: int = 15) -> str:
    """The last lines Junction wrote to stderr, for a failure message (empty if none)."""
    if not log_path.is_file():
        return ""
    text = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    if not text:
        return ""
    return "\nlast lines of junction's stderr:\n  " + "\n  ".join(text[-lines:])


async def _run(console: Console, examples: Path, root: Path, log_path: Path) -> None:
    workspace = root / "workspace"
    workspace.mkdir()
    model = _load(examples / "demo_model.py", "junction_demo_model")
    agent = _load(examples / "a2a_agent.py", "junction_demo_a2a_agent")
    async with contextlib.AsyncExitStack() as stack:
        model_url = await stack.enter_async_context(_serve(model.create_app()))
        agent_url = await stack.enter_async_context(_serve(agent.create_app()))
        notes = examples / "mcp_notes_server.py"
        config_path = _write_config(root, model_url, agent_url, notes)
        _header(
            console,
            model=model_url,
            agent=agent_url,
            notes=notes,
            workspace=workspace,
            config=config_path,
        )
        ide = _Editor(console, workspace)
        peer = await stack.enter_async_context(_junction(config_path, root, log_path, ide))
        await ide.session(peer)


# -- servers in this process ----------------------------------------------------------------------


def _load(path: Path, name: str) -> ModuleType:
    """Import an example by path (examples/ is not a package, and must not need to be)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DemoError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def _serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Any:  # Ctrl-C belongs to the demo, which stops everything
            yield

    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted sockets (no delayed-ACK stalls).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(
        uvicorn.Config(
            app, lifespan="off", log_level="warning", log_config=None, timeout_graceful_shutdown=1
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()
                    raise DemoError("a demo server stopped before it started")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await task
        if not task.done():
            task.cancel()
        sock.close()


def _write_config(root: Path, model_url: str, agent_url: str, notes: Path) -> Path:
    """The demo's own configuration; validated here so a mistake is caught before launching."""
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "store": {"url": f"sqlite:///{root / 'junction.db'}"},
        "backends": {
            "demo": {"type": "openai", "url": f"{model_url}/v1", "models": [MODEL_ID]},
        },
        "mcp_servers": {"notes": {"command": sys.executable, "args": [str(notes)]}},
        "a2a_agents": {"planner": {"url": agent_url}},
        "acp": {
            "default_model": MODEL_ID,
            "default_mode": "ask",
            # Reading tools and delegation run without asking; edits still ask (the default).
            "permissions": {"rules": [["notes__*", "allow"], ["a2a__*", "allow"]]},
        },
        "logging": {"level": "warning"},
    }
    JunctionConfig.model_validate(data)
    path = root / "junction.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# -- Junction as a child process ------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _junction(
    config_path: Path, root: Path, log_path: Path, editor: _Editor
) -> AsyncIterator[JsonRpcPeer]:
    """`junction --mode stdio` on a pipe pair, with this process as the editor on the other end.

    On the way out: close its stdin (an orderly exit: it ends its MCP children itself), then
    SIGTERM, then SIGKILL, so nothing outlives the demo.
    """
    env = dict(os.environ)
    env.pop("JUNCTION_CONFIG", None)
    # A source checkout run as `python -m junction` must find its packages from the temp cwd.
    paths = (str(_SOURCE_ROOT), env.get("PYTHONPATH"))
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    argv = [sys.executable, "-m", "junction", "--mode", "stdio", "--config", str(config_path)]
    to_child, child_stdin = os.pipe()
    child_stdout, from_child = os.pipe()
    with log_path.open("wb") as log:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=to_child,
                stdout=from_child,
                stderr=log,
                cwd=root,
                env=env,
                start_new_session=True,  # the terminal's Ctrl-C reaches the demo, which stops it
            )
        finally:
            os.close(to_child)
            os.close(from_child)
        stream = await open_pipe_stream(child_stdout, child_stdin)
        peer = JsonRpcPeer(_UpdateTap(stream, editor.on_update), request_timeout=PROMPT_TIMEOUT)
        editor.register(peer)
        reader = asyncio.create_task(peer.run())
        try:
            yield peer
        finally:
            await stream.aclose()  # EOF on Junction's stdin: it winds down on its own
            await _stop(process)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_GRACE):
                    await reader
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
            with contextlib.suppress(Exception):
                await peer.aclose()


async def _stop(process: asyncio.subprocess.Process) -> None:
    for signum in (None, signal.SIGTERM, signal.SIGKILL):
        if signum is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)  # its group: anything it spawned goes too
        try:
            async with asyncio.timeout(STOP_GRACE if signum is None else 3):
                await process.wait()
            return
        except TimeoutError:
            continue


class _UpdateTap:
    """The stream the editor's peer reads, with `session/update` notifications taken off it.

    Handled here, in wire order, before the prompt's response is routed: so a turn's last
    update is always printed before its stop reason (the peer runs notifications in tasks).
    """

    def __init__(self, inner: MessageStream, on_update: Callable[[dict[str, Any]], None]) -> None:
        self._inner = inner
        self._on_update = on_update

    async def receive(self) -> bytes | Oversized | None:
        while True:
            raw = await self._inner.receive()
            if not isinstance(raw, bytes) or b'"session/update"' not in raw:
                return raw
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return raw
            if not isinstance(message, dict) or message.get("method") != "session/update":
                return raw
            params = message.get("params")
            if isinstance(params, dict):
                self._on_update(params)

    async def send(self, message: bytes) -> None:
        await self._inner.send(message)

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- the editor -----------------------------------------------------------------------------------


@dataclass
class _Call:
    title: str
    kind: str
    status: str = "pending"
    progress: str = ""
    output: str = ""


@dataclass
class _Turn:
    calls: dict[str, _Call] = field(default_factory=dict)
    text: str = ""
    permissions: list[str] = field(default_factory=list)
    writes: list[Path] = field(default_factory=list)


class _Editor:
    """The editor's side of ACP: answers `fs/*` and permission requests, prints the transcript."""

    def __init__(self, console: Console, workspace: Path) -> None:
        self.console = console
        self.workspace = workspace.resolve()
        self.turn = _Turn()
        self._line_open = False
        self._in_message = False

    def register(self, peer: JsonRpcPeer) -> None:
        peer.on("session/request_permission", self._permission)
        peer.on("fs/read_text_file", self._read)
        peer.on("fs/write_text_file", self._write)

    # -- printing

    def _say(self, text: Text | str, style: str = "") -> None:
        """One whole line, after ending any agent text still on the current line."""
        if self._line_open:
            self.console.print()
            self._line_open = False
        self._in_message = False
        self.console.print(text if isinstance(text, Text) else Text(text, style=style))

    def _stream(self, chunk: str) -> None:
        """Agent text as it arrives: a prefix on its first line, an indent on the others."""
        for piece in chunk.splitlines(keepends=True):
            if not self._line_open and not (self._in_message and piece == "\n"):
                lead = "junction ▸ " if not self._in_message else " " * len("junction ▸ ")
                self.console.print(Text(lead, style="bold green"), end="")
                self._in_message = True
            self.console.print(Text(piece.rstrip("\n")), end="", soft_wrap=True)
            self._line_open = not piece.endswith("\n")
            if not self._line_open:
                self.console.print()

    # -- the session

    async def session(self, peer: JsonRpcPeer) -> None:
        self.console.print(Rule("the editor's side of ACP", style="dim"))
        self._say(Text.assemble(("editor → junction  ", "dim"), "initialize (protocol 1)"))
        try:
            init = await peer.request(
                "initialize",
                {
                    "protocolVersion": 1,
                    "clientCapabilities": {
                        "fs": {"readTextFile": True, "writeTextFile": True},
                        "terminal": False,
                    },
                    "clientInfo": {
                        "name": "junction-demo",
                        "title": "Junction demo editor",
                        "version": "1",
                    },
                },
                timeout=30,
            )
        except (RpcError, ConnectionError, TimeoutError) as exc:
            raise DemoError(f"junction did not answer initialize: {exc}") from None
        info = init.get("agentInfo") or {}
        self._say(
            Text.assemble(
                ("junction → editor  ", "dim"),
                f"{info.get('name', '?')} {info.get('version', '')}, ACP protocol "
                f"{init.get('protocolVersion')}",
            )
        )
        try:
            created = await peer.request(
                "session/new", {"cwd": str(self.workspace), "mcpServers": []}, timeout=30
            )
        except (RpcError, ConnectionError, TimeoutError) as exc:
            raise DemoError(f"session/new failed: {exc}") from None
        session_id = str(created["sessionId"])
        mode = (created.get("modes") or {}).get("currentModeId", "?")
        self._say(Text.assemble(("editor → junction  ", "dim"), "session/new"))
        self._say(
            Text.assemble(("junction → editor  ", "dim"), f"session {session_id} (mode: {mode})")
        )
        stops = []
        for number, step in enumerate(STEPS, 1):
            stops.append(await self._prompt(peer, session_id, number, step))
        self._summary(stops)

    async def _prompt(self, peer: JsonRpcPeer, session_id: str, number: int, step: _Step) -> str:
        self._say("")
        self.console.print(Rule(f"{number}/{len(STEPS)}  {step.heading}", style="cyan"))
        self._say(Text.assemble(("you ▸ ", "bold cyan"), step.prompt))
        self.turn = _Turn()
        try:
            result = await peer.request(
                "session/prompt",
                {"sessionId": session_id, "prompt": [{"type": "text", "text": step.prompt}]},
            )
        except TimeoutError:
            raise DemoError(f"prompt {number} got no answer within {PROMPT_TIMEOUT:g} s") from None
        except (RpcError, ConnectionError) as exc:
            raise DemoError(f"prompt {number} failed: {exc}") from None
        stop = str((result or {}).get("stopReason"))
        self._say(Text(f"stop reason: {stop}", style="dim"))
        problem = self._check(number, stop)
        if problem:
            raise DemoError(f"step {number} ({step.heading}): {problem}")
        return stop

    def _check(self, number: int, stop: str) -> str | None:
        """What went wrong in this turn, if anything (the demo proves itself as it goes)."""
        if stop != "end_turn":
            return f"the turn ended with {stop!r}, not 'end_turn'"
        if "scripted demo model" not in self.turn.text:
            return "no answer from the demo model reached the editor"
        done = [c for c in self.turn.calls.values() if c.status == "completed"]
        if not done:
            failed = [f"{c.title}: {c.output}" for c in self.turn.calls.values()]
            return "no tool call completed" + (f" ({'; '.join(failed)})" if failed else "")
        if number == 1 and not any("word_count" in c.title for c in done):
            return "the MCP tool notes__word_count was not called"
        if number == 2 and not any("Plan for" in c.output for c in done):
            return "the planner agent's answer did not come back"
        if number == 3:
            target = self.workspace / PLAN_FILE
            if not self.turn.permissions:
                return "the write did not ask for permission"
            if not target.is_file() or "Plan for" not in target.read_text(encoding="utf-8"):
                return f"{PLAN_FILE} was not written with the plan"
        return None

    def _summary(self, stops: list[str]) -> None:
        target = self.workspace / PLAN_FILE
        self._say("")
        self.console.print(Rule(f"{PLAN_FILE} in the workspace now reads", style="dim"))
        self.console.print(Text(target.read_text(encoding="utf-8").rstrip()))
        self.console.print(Rule(style="dim"))
        self._say(
            Text(
                f"Done: {len(stops)} prompts, each ended with end_turn. An MCP tool ran, the A2A "
                "agent answered, and the file was written after permission was asked and granted.",
                style="bold green",
            )
        )
        self._say(
            "Everything ran on 127.0.0.1 and has been shut down. To use Junction from your "
            "editor, configure it to launch `junction --mode stdio` (see README and docs/ide.md)."
        )

    # -- notifications from Junction

    def on_update(self, params: dict[str, Any]) -> None:
        update = params.get("update")
        if not isinstance(update, dict):
            return
        kind = update.get("sessionUpdate")
        if kind == "agent_message_chunk":
            text = _content_text(update.get("content"))
            self.turn.text += text
            self._stream(text)
        elif kind == "agent_thought_chunk":
            self._say(Text(f"(thinking) {_content_text(update.get('content'))}", style="dim"))
        elif kind == "tool_call":
            self._tool_call(update)
        elif kind == "tool_call_update":
            self._tool_call_update(update)
        elif kind == "plan":
            entries = update.get("entries") or []
            self._say(Text(f"plan: {len(entries)} entries", style="dim"))

    def _tool_call(self, update: dict[str, Any]) -> None:
        call = _Call(str(update.get("title") or "?"), str(update.get("kind") or "other"))
        call.status = str(update.get("status") or "pending")
        self.turn.calls[str(update.get("toolCallId"))] = call
        raw = json.dumps(update.get("rawInput") or {}, ensure_ascii=False)
        if len(raw) > 160:
            raw = raw[:157] + "..."
        self._say(
            Text.assemble(
                ("  ⚙ tool call ", "yellow"),
                (call.title, "bold yellow"),
                (f"  [{call.kind}, {call.status}]  ", "yellow"),
                (raw, "dim"),
            )
        )

    def _tool_call_update(self, update: dict[str, Any]) -> None:
        call = self.turn.calls.setdefault(str(update.get("toolCallId")), _Call("?", "other"))
        status = update.get("status")
        text = "\n".join(
            _content_text(item.get("content"))
            for item in update.get("content") or []
            if isinstance(item, dict) and item.get("type") == "content"
        )
        if status is None and text:  # progress: each update carries everything so far
            new = text[len(call.progress) :] if text.startswith(call.progress) else text
            call.progress = text
            for line in new.strip().splitlines():
                self._say(Text(f"    ↳ {line}", style="dim"))
            return
        if status is None:
            return
        call.status = str(status)
        if status == "in_progress":
            self._say(Text(f"  ⚙ {call.title}: running", style="yellow"))
            return
        call.output = text or _diff_summary(update.get("content"))
        mark, style = ("✓", "green") if status == "completed" else ("✗", "red")
        self._say(Text(f"  {mark} {call.title}: {status}", style=style))
        output = call.output.strip() or "(no output)"
        if call.progress and output in call.progress:
            output = "(its answer, streamed above)"
        for line in output.splitlines()[:8]:
            self._say(Text(f"    │ {line}", style="dim"))

    # -- requests from Junction

    async def _permission(self, params: Any) -> dict[str, Any]:
        tool_call = params.get("toolCall") or {}
        options = [o for o in params.get("options") or [] if isinstance(o, dict)]
        title = str(tool_call.get("title") or "a tool call")
        self.turn.permissions.append(title)
        self._say(
            Text.assemble(
                ("  ? permission requested: ", "bold magenta"),
                (f"{title} [{tool_call.get('kind', 'other')}]", "magenta"),
            )
        )
        diff = _diff_summary(tool_call.get("content"))
        if diff:
            self._say(Text(f"    {diff}", style="magenta"))
        names = " · ".join(str(o.get("name") or o.get("optionId")) for o in options)
        self._say(Text(f"    options: {names}", style="magenta"))
        chosen = next((o for o in options if o.get("kind") == "allow_once"), None)
        if chosen is None:
            self._say(Text("    no 'allow once' option was offered: cancelling", style="red"))
            return {"outcome": {"outcome": "cancelled"}}
        self._say(
            Text(
                f"    the demo answers: {chosen.get('name') or 'Allow once'} "
                "(an editor would show this to you)",
                style="bold magenta",
            )
        )
        return {"outcome": {"outcome": "selected", "optionId": chosen["optionId"]}}

    def _inside(self, raw: Any) -> Path:
        """The path, if it is inside the workspace (an editor confines an agent to the project)."""
        path = Path(str(raw)).resolve()
        if not path.is_relative_to(self.workspace):
            raise RpcError(-32602, f"{raw} is outside the workspace")
        return path

    async def _read(self, params: Any) -> dict[str, Any]:
        path = self._inside(params.get("path"))
        try:
            return {"content": path.read_text(encoding="utf-8")}
        except FileNotFoundError:
            raise RpcError(RESOURCE_NOT_FOUND, f"{path.name} does not exist yet") from None

    async def _write(self, params: Any) -> None:
        path = self._inside(params.get("path"))
        content = str(params.get("content", ""))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        self.turn.writes.append(path)
        size = len(content.encode())
        self._say(
            Text(
                f"  ✎ the editor wrote {path.relative_to(self.workspace)} ({size} bytes)",
                style="blue",
            )
        )


def _content_text(content: Any) -> str:
    if isinstance(content, dict) and content.get("type") == "text":
        return str(content.get("text", ""))
    return ""


def _diff_summary(content: Any) -> str:
    for item in content or []:
        if isinstance(item, dict) and item.get("type") == "diff":
            new = str(item.get("newText") or "")
            lines = len(new.splitlines())
            state = "new file" if item.get("oldText") in (None, "") else "changes a file"
            return f"diff: {Path(str(item.get('path'))).name} ({state}, {lines} lines)"
    return ""


def _header(
    console: Console, *, model: str, agent: str, notes: Path, workspace: Path, config: Path
) -> None:
    console.print(
        Text("Junction demo", style="bold"), Text("— one ACP session, as an editor drives it")
    )
    console.print(
        Text("No network and no API keys: everything below runs on 127.0.0.1.", style="dim")
    )
    rows = (
        ("model", f"{MODEL_ID} at {model}/v1 (a SCRIPTED demo model, not an LLM)"),
        ("MCP server", f"notes: {Path(sys.executable).name} {notes} (stdio)"),
        ("A2A agent", f"planner at {agent} (A2A 1.0, JSON-RPC)"),
        ("workspace", str(workspace)),
        ("agent", f"junction --mode stdio --config {config}"),
    )
    for name, value in rows:
        console.print(Text.assemble((f"  {name:<11}", "cyan"), value))
