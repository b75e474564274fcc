"""Span names and attributes of the OpenTelemetry semantic conventions for the surfaces other
than the model router (which has `router_core.model_spans`): an MCP request to an upstream
(MCP conventions: `{mcp.method.name} {target}`), an ACP prompt turn and an A2A relay (GenAI
agent conventions: `invoke_agent {gen_ai.agent.name}`).

The packages that own those calls decorate them with `tracing.traced(...)` using these, so
the conventions are kept in one place and each call site stays one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from router_core.tracing import Attributes, Span

__all__ = [
    "a2a_relay_attributes",
    "acp_turn_attributes",
    "acp_turn_result",
    "mcp_request_attributes",
    "mcp_request_name",
    "mcp_request_result",
]

JUNCTION_AGENT = "junction"
_MCP_TRACED = frozenset({"tools/call", "resources/read", "prompts/get", "completion/complete"})
"""What a caller asked for; lists, pings and subscriptions are the gateway's own upkeep."""


def _target(method: str, params: Mapping[str, Any] | None) -> str | None:
    if not params:
        return None
    value = params.get("uri" if method == "resources/read" else "name")
    return value if isinstance(value, str) and value else None


def mcp_request_name(method: str, params: Mapping[str, Any] | None) -> str | None:
    """`{method} {target}` for what a caller asked of an upstream; None (no span) otherwise."""
    if method not in _MCP_TRACED:
        return None
    target = _target(method, params)
    return f"{method} {target}" if target and method != "resources/read" else method


def mcp_request_attributes(
    server: str, method: str, params: Mapping[str, Any] | None
) -> dict[str, str]:
    attributes = {"mcp.method.name": method, "junction.mcp_server": server}
    target = _target(method, params)
    if method == "tools/call":
        attributes["gen_ai.operation.name"] = "execute_tool"
        if target:
            attributes["gen_ai.tool.name"] = target
    elif method == "prompts/get" and target:
        attributes["gen_ai.prompt.name"] = target
    elif method == "resources/read" and target:
        attributes["mcp.resource.uri"] = target
    return attributes


def mcp_request_result(span: Span, result: Any) -> None:
    """A tool's own error (`isError`) marks the span failed, as the MCP conventions ask."""
    if isinstance(result, Mapping) and result.get("isError") is True:
        span.fail("tool_error")


def acp_turn_attributes(session_id: str) -> Attributes:
    return {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": JUNCTION_AGENT,
        "gen_ai.conversation.id": session_id,
    }


def acp_turn_result(span: Span, result: Any) -> None:
    stop = getattr(result, "stop_reason", None)
    if stop is not None:
        span.set_attribute("gen_ai.response.finish_reasons", [str(stop)])


def a2a_relay_attributes(agent: str, url: str | None, method: str) -> Attributes:
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        "a2a.method": method,
    }
    if url:
        parts = urlsplit(url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    return attributes
