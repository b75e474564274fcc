"""Who decides whether a tool call runs: the policy, the session's mode, and remembered answers.

Order of precedence: a `deny` rule always wins; then what the user answered "always" for this
tool earlier in the session; then the mode (`read-only` refuses anything that changes things,
`auto` allows everything else); then the policy (name globs first, then the tool's kind).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Literal

from acp.schema import SessionMode, ToolKind

Decision = Literal["allow", "ask", "deny"]

MUTATING_KINDS: frozenset[str] = frozenset({"edit", "delete", "move", "execute"})

DEFAULT_KIND_DECISIONS: Mapping[str, Decision] = {
    "read": "allow",
    "search": "allow",
    "think": "allow",
    "fetch": "allow",
    "edit": "ask",
    "delete": "ask",
    "move": "ask",
    "execute": "ask",
    "switch_mode": "ask",
    "other": "ask",
}

MODES: tuple[SessionMode, ...] = (
    SessionMode(id="ask", name="Ask", description="Ask before edits, deletes, moves and commands"),
    SessionMode(id="auto", name="Auto", description="Run every tool except those denied by policy"),
    SessionMode(
        id="read-only",
        name="Read-only",
        description="Never edit, delete, move or run commands",
    ),
)
MODE_IDS: frozenset[str] = frozenset(mode.id for mode in MODES)


@dataclass(frozen=True)
class PermissionPolicy:
    """`rules` map tool-name globs to a decision (first match wins); `kinds` cover the rest."""

    rules: Sequence[tuple[str, Decision]] = ()
    kinds: Mapping[str, Decision] = field(default_factory=lambda: dict(DEFAULT_KIND_DECISIONS))

    def base(self, tool: str, kind: ToolKind) -> Decision:
        for pattern, decision in self.rules:
            if fnmatchcase(tool, pattern):
                return decision
        return self.kinds.get(kind, DEFAULT_KIND_DECISIONS.get(kind, "ask"))

    def decide(
        self, tool: str, kind: ToolKind, *, mode: str, remembered: str | None
    ) -> tuple[Decision, str]:
        """The decision and a short reason (shown when a call is refused)."""
        base = self.base(tool, kind)
        if base == "deny":
            return "deny", f"the permission policy denies {tool}"
        if remembered == "reject":
            return "deny", f"you chose to always reject {tool} in this session"
        if mode == "read-only" and kind in MUTATING_KINDS:
            return "deny", f"the session is in read-only mode ({kind} tools are refused)"
        if remembered == "allow":
            return "allow", "always allowed in this session"
        if mode == "auto":
            return "allow", "auto mode"
        return base, "policy"


__all__ = [
    "DEFAULT_KIND_DECISIONS",
    "MODES",
    "MODE_IDS",
    "MUTATING_KINDS",
    "Decision",
    "PermissionPolicy",
]
