"""The prompt turn: model calls and tool calls until the model stops, streamed to the IDE.

Every update goes out from inside the turn, in order, before the prompt's response. A cancel
(session/cancel, $/cancel_request, session/close) cancels the turn's task: that closes the
model's HTTP stream, cancels tool calls (MCP and A2A calls, and `session/request_permission`
waits, which the peer answers with `$/cancel_request`), and the turn records what it had and
answers `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from acp.elicitation import Elicitor
from acp.history import prompt_text, to_messages
from acp.permissions import MODE_IDS, Decision
from acp.runtime import Services, ServicesUnavailable
from acp.schema import RequestPermissionResponse, StopReason, ToolKind
from acp.session import COMMANDS, Session
from acp.tools import (
    Content,
    Tool,
    ToolContext,
    ToolFailed,
    ToolResult,
    collect_tools,
    describe_tools,
    text_content,
)
from router_core.audit import audit
from router_core.types import (
    BackendError,
    ChatRequest,
    Finish,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    ToolCallDone,
    ToolDefinition,
    Usage,
)
from transports import PeerClosedError, RpcError

log = logging.getLogger(__name__)

TITLE_LENGTH = 80

PERMISSION_OPTIONS = [
    {"optionId": "allow_once", "name": "Allow once", "kind": "allow_once"},
    {"optionId": "allow_always", "name": "Always allow", "kind": "allow_always"},
    {"optionId": "reject_once", "name": "Reject", "kind": "reject_once"},
    {"optionId": "reject_always", "name": "Always reject", "kind": "reject_always"},
]


COMMAND_NAMES = frozenset(name for name, _, _ in COMMANDS)


class TurnCancelled(Exception):
    """The client answered a permission request with `cancelled`: the turn is over."""


class TurnFailed(Exception):
    """The turn could not get an answer from a model: `session/prompt` answers with an error
    saying why, not with a stop reason (a failure is no `end_turn`)."""


@dataclass
class _Response:
    """What one model call produced so far (kept for a cancel in the middle of it)."""

    message_id: str
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    signature: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    usage: Usage | None = None
    finish: str | None = None
    error: str | None = None

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kind": "assistant",
            "messageId": self.message_id,
            "text": "".join(self.text),
        }
        if self.reasoning:
            entry["reasoning"] = "".join(self.reasoning)
        if self.signature:
            entry["signature"] = self.signature
        if self.calls:
            entry["toolCalls"] = [
                {"id": c.id, "name": c.name, "arguments": c.raw_arguments} for c in self.calls
            ]
        return entry


@dataclass
class _Call:
    """A tool call announced to the IDE and not yet finished."""

    call: ToolCall
    title: str
    kind: ToolKind
    locations: list[dict[str, Any]]


async def run_turn(session: Session, blocks: list[dict[str, Any]]) -> StopReason:
    """Run one prompt turn to its stop reason; never raises for a cancel."""
    return await Turn(session, blocks).run()


class Turn:
    def __init__(self, session: Session, blocks: list[dict[str, Any]]) -> None:
        self.session = session
        self.blocks = blocks
        self.settings = session.runtime.settings
        self._response: _Response | None = None
        self._open: dict[str, _Call] = {}

    async def run(self) -> StopReason:
        session = self.session
        stop: StopReason
        try:
            stop = await self._run()
        except (asyncio.CancelledError, TurnCancelled):
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            stop = "cancelled"
            await self._settle_cancelled()
        except PeerClosedError:
            stop = "cancelled"
            await self._settle_cancelled(notify=False)
        except TurnFailed as exc:
            await self._finish()
            log.info("session %s: turn failed (%s)", session.id, exc)
            raise
        await self._finish()
        log.info("session %s: turn ended (%s)", session.id, stop)
        return stop

    async def _finish(self) -> None:
        """Title after the first real prompt, then make the turn durable."""
        session = self.session
        with contextlib.suppress(ConnectionError):
            if session.record.title is None:
                text = prompt_text(self.blocks).strip()
                if text and not text.startswith("/"):
                    title = text.splitlines()[0][:TITLE_LENGTH]
                    session.save(title=title)
                    await session.send(
                        {
                            "sessionUpdate": "session_info_update",
                            "title": title,
                            "updatedAt": session.record.updated_at,
                        }
                    )
                else:
                    session.save()
            else:
                session.save()
        await session.flush()

    # -- the loop -------------------------------------------------------------------------------

    async def _run(self) -> StopReason:
        session = self.session
        message_id = f"msg_{uuid.uuid4().hex}"
        text = prompt_text(self.blocks).strip()
        words = text[1:].split(maxsplit=1) if text.startswith("/") else []
        local = bool(words) and words[0] in COMMAND_NAMES
        session.remember(
            {"kind": "user", "messageId": message_id, "blocks": self.blocks, "local": local}
        )
        await self._deliver_notices()
        try:
            services = await session.services()
        except ServicesUnavailable as exc:
            raise TurnFailed(
                f"Junction cannot answer: its services did not start ({exc})"
            ) from None
        if local:
            await self._command(text, services)
            return "end_turn"
        provider = await session.tools_provider(services.tools)
        await self._deliver_notices()
        requests = 0
        while True:
            if requests >= self.settings.max_model_requests:
                await self._say(
                    f"Stopped after {requests} model requests in this turn "
                    f"(the limit is {self.settings.max_model_requests})."
                )
                return "max_turn_requests"
            requests += 1
            tools = await collect_tools(
                read=session.client.fs.read_text_file,
                write=session.client.fs.write_text_file,
                terminal=session.client.terminal,
                provider=provider,
                agents=services.agents if session.agents_on else None,
            )
            response = await self._call_model(services, tools)
            if response.error is not None:
                raise TurnFailed(f"The model request failed: {response.error}")
            if response.finish == "length":
                return "max_tokens"
            if response.finish == "content_filter":
                return "refusal"
            if not response.calls:
                return "end_turn"
            for call in response.calls:
                await self._tool_call(call, tools)
            await self._deliver_notices()

    def _system_prompt(self) -> str:
        roots = self.session.roots
        return self.settings.system_prompt.replace("{cwd}", roots.cwd).replace(
            "{roots}", roots.describe()
        )

    async def _call_model(self, services: Services, tools: Mapping[str, Tool]) -> _Response:
        session = self.session
        request = ChatRequest(
            model=session.model,
            messages=to_messages(session.entries, self._system_prompt()),
            tools=[
                ToolDefinition(name=t.name, description=t.description, parameters=t.parameters)
                for t in tools.values()
            ],
            max_tokens=self.settings.max_tokens,
            stream=True,
        )
        response = self._response = _Response(message_id=f"msg_{uuid.uuid4().hex}")
        stream = services.models.stream(request, key=session.id)
        try:
            async for event in stream:
                if isinstance(event, TextDelta):
                    if event.text:
                        response.text.append(event.text)
                        await session.send(
                            {
                                "sessionUpdate": "agent_message_chunk",
                                "messageId": response.message_id,
                                "content": {"type": "text", "text": event.text},
                            }
                        )
                elif isinstance(event, ReasoningDelta):
                    if event.signature:
                        response.signature = event.signature
                    if event.text:
                        response.reasoning.append(event.text)
                        await session.send(
                            {
                                "sessionUpdate": "agent_thought_chunk",
                                "messageId": response.message_id,
                                "content": {"type": "text", "text": event.text},
                            }
                        )
                elif isinstance(event, ToolCallDone):
                    response.calls.append(event.call)
                    await self._announce(event.call, tools)
                elif isinstance(event, Usage):
                    response.usage = event
                elif isinstance(event, Finish):
                    response.finish = event.reason
                elif isinstance(event, StreamError):
                    response.error = event.message
                    break
        except BackendError as exc:
            response.error = str(exc)
        except (asyncio.CancelledError, PeerClosedError, RpcError):
            raise  # an RpcError (a rate limit) answers session/prompt with that error
        except Exception as exc:
            log.exception("session %s: the model stream failed", session.id)
            response.error = f"{type(exc).__name__}: {exc}"
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        if response.error is None and response.finish is None:
            response.error = "the model's stream ended without finishing"
        self._response = None
        if response.error is not None:
            # The calls of a broken response never run; what was said stays in the history.
            for call in response.calls:
                await self._close_call(call.id, "failed", "The model response broke off.")
            response.calls.clear()
        session.remember(response.entry())
        if response.usage is not None:
            used = response.usage.total_tokens or (
                response.usage.prompt_tokens + response.usage.completion_tokens
            )
            await session.send(
                {
                    "sessionUpdate": "usage_update",
                    "used": used,
                    "size": self.settings.context_window,
                }
            )
        return response

    # -- tool calls -----------------------------------------------------------------------------

    async def _announce(self, call: ToolCall, tools: Mapping[str, Tool]) -> None:
        """`tool_call` (pending) as soon as the model has finished producing the call."""
        tool = tools.get(call.name)
        title = tool.title(call.arguments) if tool is not None and call.error is None else call.name
        kind: ToolKind = tool.kind if tool is not None else "other"
        locations = tool.locations(call.arguments, self.session.roots) if tool else []
        self._open[call.id] = _Call(call, title or call.name, kind, locations)
        update: dict[str, Any] = {
            "sessionUpdate": "tool_call",
            "toolCallId": call.id,
            "title": title or call.name,
            "kind": kind,
            "status": "pending",
            "rawInput": call.arguments if call.error is None else call.raw_arguments,
        }
        if locations:
            update["locations"] = locations
        await self.session.send(update)

    async def _tool_call(self, call: ToolCall, tools: Mapping[str, Tool]) -> None:
        session = self.session
        tool = tools.get(call.name)
        if call.error is not None:
            await self._fail(call, f"Invalid arguments for {call.name}: {call.error}")
            return
        if tool is None:
            known = ", ".join(sorted(tools)) or "none"
            await self._fail(call, f"Unknown tool {call.name!r}. Available tools: {known}.")
            return
        ctx = ToolContext(
            session_id=session.id,
            peer=session.peer,
            roots=session.roots,
            progress=lambda content: self._progress(call.id, content),
            command_timeout=self.settings.command_timeout,
            command_output_limit=self.settings.command_output_limit,
            elicitor=Elicitor(session.peer, session.client, session.id, call.id),
        )
        decision, reason = self.settings.permissions.decide(
            tool.name,
            tool.kind,
            mode=session.mode,
            remembered=session.record.permissions.get(tool.name),
        )
        decided_by = "policy"  # the permission policy, the session's mode or a remembered answer
        if decision == "ask" and self.settings.unattended:
            decision, reason, decided_by = "deny", self.settings.unattended, "unattended"
        elif decision == "ask":
            decision, reason = await self._ask(call, tool, ctx)
            decided_by = "person"
        audit(
            "permission",
            decision,
            surface="acp",
            session=session.id,
            tool=tool.name,
            kind=tool.kind,
            mode=session.mode,
            decided_by=decided_by,
            reason=reason,
        )
        if decision == "deny":
            await self._fail(call, f"Permission denied: {reason}.")
            return
        await session.send(
            {"sessionUpdate": "tool_call_update", "toolCallId": call.id, "status": "in_progress"}
        )
        try:
            result = await tool.run(call.arguments, ctx)
        except ToolFailed as exc:
            result = ToolResult(
                output=f"Error: {exc}", content=[text_content(str(exc))], failed=True
            )
        except (asyncio.CancelledError, PeerClosedError):
            raise
        except Exception as exc:
            log.exception("session %s: tool %s crashed", session.id, tool.name)
            message = f"{tool.name} failed unexpectedly: {type(exc).__name__}: {exc}"
            result = ToolResult(
                output=f"Error: {message}", content=[text_content(message)], failed=True
            )
        await self._complete(call, result)

    async def _ask(self, call: ToolCall, tool: Tool, ctx: ToolContext) -> tuple[Decision, str]:
        """Ask the user through `session/request_permission`; remember "always" answers."""
        session = self.session
        opened = self._open.get(call.id)
        preview = await tool.preview(call.arguments, ctx)
        tool_call: dict[str, Any] = {
            "toolCallId": call.id,
            "title": opened.title if opened else tool.name,
            "kind": tool.kind,
            "status": "pending",
            "rawInput": call.arguments,
        }
        if preview:
            tool_call["content"] = preview
        if opened and opened.locations:
            tool_call["locations"] = opened.locations
        try:
            raw = await session.peer.request(
                "session/request_permission",
                {"sessionId": session.id, "toolCall": tool_call, "options": PERMISSION_OPTIONS},
            )
            answer = RequestPermissionResponse.model_validate(raw)
        except RpcError as exc:
            return "deny", f"the permission request failed ({exc.message})"
        except ValidationError:
            return "deny", "the client's answer to the permission request was not understood"
        outcome = answer.outcome
        if outcome.outcome == "cancelled":
            raise TurnCancelled
        option = outcome.option_id
        if option in ("allow_always", "reject_always"):
            remembered = "allow" if option == "allow_always" else "reject"
            session.save(permissions={**session.record.permissions, tool.name: remembered})
        if option in ("allow_once", "allow_always"):
            return "allow", "you allowed it"
        if option in ("reject_once", "reject_always"):
            return "deny", "you rejected it"
        log.warning("session %s: unknown permission option %r", session.id, option)
        return "deny", f"the client chose an option that was not offered ({option!r})"

    async def _progress(self, call_id: str, content: list[Content]) -> None:
        await self.session.send(
            {"sessionUpdate": "tool_call_update", "toolCallId": call_id, "content": content}
        )

    async def _fail(self, call: ToolCall, message: str) -> None:
        await self._complete(
            call, ToolResult(output=message, content=[text_content(message)], failed=True)
        )

    async def _complete(self, call: ToolCall, result: ToolResult) -> None:
        opened = self._open.pop(call.id, None)
        status = "failed" if result.failed else "completed"
        update: dict[str, Any] = {
            "sessionUpdate": "tool_call_update",
            "toolCallId": call.id,
            "status": status,
            "content": result.content,
        }
        if result.raw_output is not None:
            update["rawOutput"] = result.raw_output
        await self.session.send(update)
        self.session.remember(
            {
                "kind": "tool",
                "toolCallId": call.id,
                "name": call.name,
                "title": opened.title if opened else call.name,
                "toolKind": opened.kind if opened else "other",
                "locations": opened.locations if opened else [],
                "rawInput": call.arguments if call.error is None else call.raw_arguments,
                "status": status,
                "content": result.content,
                "output": result.output,
            }
        )

    async def _close_call(self, call_id: str, status: str, message: str) -> None:
        opened = self._open.get(call_id)
        if opened is not None:
            await self._complete(
                opened.call,
                ToolResult(output=message, content=[text_content(message)], failed=True),
            )

    async def _settle_cancelled(self, *, notify: bool = True) -> None:
        """Record what the cancelled turn had produced; close its open tool calls."""
        response, self._response = self._response, None
        if response is not None:
            self.session.remember(response.entry())
        for call_id in list(self._open):
            if notify:
                with contextlib.suppress(ConnectionError):
                    await self._close_call(call_id, "failed", "Cancelled.")
            else:
                opened = self._open.pop(call_id)
                self.session.remember(
                    {
                        "kind": "tool",
                        "toolCallId": call_id,
                        "name": opened.call.name,
                        "title": opened.title,
                        "toolKind": opened.kind,
                        "rawInput": opened.call.arguments,
                        "status": "failed",
                        "content": [text_content("Cancelled.")],
                        "output": "Cancelled.",
                    }
                )
        self._open.clear()

    # -- messages to the user -------------------------------------------------------------------

    async def _say(self, text: str) -> None:
        """An agent message that is not part of the model's context (kept as a notice)."""
        message_id = f"msg_{uuid.uuid4().hex}"
        self.session.remember({"kind": "notice", "messageId": message_id, "text": text})
        await self.session.send(
            {
                "sessionUpdate": "agent_message_chunk",
                "messageId": message_id,
                "content": {"type": "text", "text": text},
            }
        )

    async def _deliver_notices(self) -> None:
        while self.session.notices:
            await self._say(self.session.notices.pop(0) + "\n\n")

    # -- slash commands -------------------------------------------------------------------------

    async def _command(self, text: str, services: Services) -> None:
        session = self.session
        name, *rest = text[1:].split(maxsplit=1)
        arg = rest[0].strip() if rest else ""
        if name == "model":
            models = await _models(services, self.settings.models_timeout)
            if not arg:
                listing = "\n".join(
                    f"- {m}{' (current)' if m == session.model else ''}"
                    for m in dict.fromkeys([*models, session.model])
                )
                await self._say(f"Models:\n{listing}\n\nSwitch with `/model NAME`.")
                return
            if models and arg not in models:
                await self._say(f"Unknown model {arg!r}. Available: {', '.join(models)}.")
                return
            session.save(config={**session.record.config, "model": arg})
            await session.send(
                {
                    "sessionUpdate": "config_option_update",
                    "configOptions": [o.wire() for o in session.config_options(models)],
                }
            )
            await self._say(f"Model set to {arg}.")
        elif name == "mode":
            if not arg:
                await self._say(
                    f"Current mode: {session.mode}. Modes: ask, auto, read-only. "
                    "Switch with `/mode ID`."
                )
                return
            if arg not in MODE_IDS:
                await self._say(f"Unknown mode {arg!r}. Modes: ask, auto, read-only.")
                return
            session.save(mode=arg)
            await session.send({"sessionUpdate": "current_mode_update", "currentModeId": arg})
            models = await _models(services, self.settings.models_timeout)
            await session.send(
                {
                    "sessionUpdate": "config_option_update",
                    "configOptions": [o.wire() for o in session.config_options(models)],
                }
            )
            await self._say(f"Mode set to {arg}.")
        elif name == "tools":
            provider = await session.tools_provider(services.tools)
            tools = await collect_tools(
                read=session.client.fs.read_text_file,
                write=session.client.fs.write_text_file,
                terminal=session.client.terminal,
                provider=provider,
                agents=None,
            )
            await self._say("Tools:\n" + describe_tools(list(tools.values())))
        elif name == "agents":
            if services.agents is None:
                await self._say("No A2A agents are configured.")
                return
            try:
                agents = await services.agents.list_agents()
            except Exception as exc:
                await self._say(f"Could not list the A2A agents: {exc}")
                return
            lines = [f"- {a.name}: {a.description}" for a in agents]
            off = (
                ""
                if session.agents_on
                else " (switched off for this session: the model is not offered them)"
            )
            await self._say(f"A2A agents{off}:\n" + ("\n".join(lines) or "none"))


async def _models(services: Services, timeout: float) -> list[str]:
    try:
        async with asyncio.timeout(timeout):
            return list(await services.models.models())
    except Exception as exc:
        log.warning("could not list models: %s", exc)
        return []


__all__ = ["Turn", "TurnCancelled", "TurnFailed", "run_turn"]
