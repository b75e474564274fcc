"""A session's history: the entries stored for it, and the two things made from them.

Entries are JSON objects with a `kind`:

- `user`: the prompt's content blocks as the client sent them (`local` when it was a slash
  command answered without the model);
- `assistant`: one model response (`text`, `reasoning`, `signature`, `toolCalls` with the raw
  argument text the model produced);
- `tool`: one tool call's outcome (`toolCallId`, `name`, `title`, `toolKind`, `rawInput`,
  `status`, `content` as ACP tool-call content, `output` as the model saw it);
- `notice`: a message to the user that is not part of the model's context (a slash command's
  answer, an MCP server that failed to start, a backend error).

From them come the model's messages (`to_messages`) and the `session/update`s that replay the
conversation on `session/load` (`replay_updates`), so both stay faithful to one record.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from acp.prompt import decoded_size
from acp.schema import ContentBlock
from acp.store import Entry
from router_core.types import ImagePart, Message, TextPart, ToolCall

INTERRUPTED = "The tool call was interrupted before it produced a result."


def prompt_parts(blocks: Iterable[dict[str, Any]]) -> list[TextPart | ImagePart]:
    """What the model sees of a prompt (blocks as stored: wire JSON)."""
    parts: list[TextPart | ImagePart] = []
    for raw in blocks:
        kind = raw.get("type")
        if kind == "text":
            parts.append(TextPart(text=str(raw.get("text", ""))))
        elif kind == "image":
            parts.append(ImagePart.from_base64(str(raw["data"]), str(raw["mimeType"])))
        elif kind == "resource_link":
            label = raw.get("title") or raw.get("name") or raw.get("uri")
            line = f"[Resource: {label}]({raw.get('uri')})"
            if raw.get("description"):
                line += f" - {raw['description']}"
            parts.append(TextPart(text=line))
        elif kind == "resource":
            resource = raw.get("resource") or {}
            uri = resource.get("uri", "")
            if "text" in resource:
                parts.append(
                    TextPart(text=f'<resource uri="{uri}">\n{resource["text"]}\n</resource>')
                )
            else:
                mime = resource.get("mimeType") or "application/octet-stream"
                blob = str(resource.get("blob", ""))
                if mime.startswith("image/"):
                    parts.append(ImagePart.from_base64(blob, mime))
                else:
                    parts.append(
                        TextPart(
                            text=f'<resource uri="{uri}" mimeType="{mime}" '
                            f'bytes="{decoded_size(blob)}">(binary content omitted)</resource>'
                        )
                    )
    return parts


def prompt_text(blocks: Iterable[dict[str, Any]]) -> str:
    """The prompt's plain text (for titles and slash commands)."""
    return "\n".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


def to_messages(entries: Iterable[Entry], system: str | None) -> list[Message]:
    """The conversation for the model; every tool call gets a result, even an interrupted one."""
    messages: list[Message] = []
    if system:
        messages.append(Message(role="system", content=system))
    waiting: dict[str, str] = {}

    def settle() -> None:
        for call_id, name in waiting.items():
            messages.append(
                Message(role="tool", content=INTERRUPTED, tool_call_id=call_id, name=name)
            )
        waiting.clear()

    for entry in entries:
        kind = entry.get("kind")
        if kind == "tool":
            call_id = str(entry.get("toolCallId"))
            if call_id in waiting:
                name = waiting.pop(call_id)
                messages.append(
                    Message(
                        role="tool",
                        content=str(entry.get("output", "")),
                        tool_call_id=call_id,
                        name=name,
                    )
                )
            continue
        settle()
        if kind == "user" and not entry.get("local"):
            parts = prompt_parts(entry.get("blocks", []))
            if parts:
                messages.append(Message(role="user", content=list(parts)))
        elif kind == "assistant":
            calls = [
                ToolCall.parse(str(c["id"]), str(c["name"]), str(c.get("arguments", "")))
                for c in entry.get("toolCalls", [])
            ]
            if not calls and not entry.get("text"):
                continue
            messages.append(
                Message(
                    role="assistant",
                    content=entry.get("text") or None,
                    tool_calls=calls,
                    reasoning=entry.get("reasoning") or None,
                    reasoning_signature=entry.get("signature"),
                )
            )
            waiting.update({call.id: call.name for call in calls})
    settle()
    return messages


def _text_update(kind: str, text: str, message_id: str | None) -> dict[str, Any]:
    update: dict[str, Any] = {"sessionUpdate": kind, "content": {"type": "text", "text": text}}
    if message_id:
        update["messageId"] = message_id
    return update


def replay_updates(entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """The `update` objects that show the stored conversation again, in order."""
    updates: list[dict[str, Any]] = []
    for entry in entries:
        kind = entry.get("kind")
        message_id = entry.get("messageId")
        if kind == "user":
            for block in entry.get("blocks", []):
                update = {"sessionUpdate": "user_message_chunk", "content": block}
                if message_id:
                    update["messageId"] = message_id
                updates.append(update)
        elif kind == "assistant":
            if entry.get("reasoning"):
                updates.append(_text_update("agent_thought_chunk", entry["reasoning"], message_id))
            if entry.get("text"):
                updates.append(_text_update("agent_message_chunk", entry["text"], message_id))
        elif kind == "tool":
            update = {
                "sessionUpdate": "tool_call",
                "toolCallId": entry["toolCallId"],
                "title": entry.get("title") or entry.get("name") or "tool",
                "kind": entry.get("toolKind") or "other",
                "status": entry.get("status") or "completed",
                "content": entry.get("content") or [],
                "rawInput": entry.get("rawInput"),
            }
            if entry.get("locations"):
                update["locations"] = entry["locations"]
            updates.append(update)
        elif kind == "notice":
            updates.append(_text_update("agent_message_chunk", str(entry.get("text")), message_id))
    return updates


def block_json(block: ContentBlock) -> dict[str, Any]:
    """A content block as stored and replayed (its wire form)."""
    return block.wire()


__all__ = [
    "block_json",
    "prompt_parts",
    "prompt_text",
    "replay_updates",
    "to_messages",
]
