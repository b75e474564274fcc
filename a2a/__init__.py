"""The A2A hub: wire types (1.0, with 0.3 compatibility), endpoint, registry, task store, push
delivery, and the client library ACP sessions use to hand tasks to agents."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from a2a.client import A2aClient, AgentInfo, AgentPool, TaskStream
    from a2a.errors import A2aError
    from a2a.hub import ROUTING_KEYS, Hub
    from a2a.registry import CardError, RegisteredAgent, Registry
    from a2a.rest import RestBinding, rest_routes
    from a2a.settings import AgentSpec, HubSettings, PushSettings
    from a2a.store import SqliteTaskStore, TaskPage, TaskRecord, TaskStore
    from a2a.upstream import AgentConnection, AgentFailure, AgentTransport, RestConnection
    from a2a.versions.common import SUPPORTED_VERSIONS, protocol_version

# The hub pulls in starlette and aiohttp; the configuration only needs `a2a.settings`. Names load
# on first use so that reading a config file does not pay for the whole hub.
_LAZY = {
    "A2aClient": "a2a.client",
    "AgentPool": "a2a.client",
    "AgentInfo": "a2a.client",
    "TaskStream": "a2a.client",
    "SUPPORTED_VERSIONS": "a2a.versions.common",
    "protocol_version": "a2a.versions.common",
    "A2aError": "a2a.errors",
    "ROUTING_KEYS": "a2a.hub",
    "Hub": "a2a.hub",
    "CardError": "a2a.registry",
    "RegisteredAgent": "a2a.registry",
    "Registry": "a2a.registry",
    "RestBinding": "a2a.rest",
    "rest_routes": "a2a.rest",
    "AgentSpec": "a2a.settings",
    "HubSettings": "a2a.settings",
    "PushSettings": "a2a.settings",
    "SqliteTaskStore": "a2a.store",
    "TaskPage": "a2a.store",
    "TaskRecord": "a2a.store",
    "TaskStore": "a2a.store",
    "AgentConnection": "a2a.upstream",
    "AgentFailure": "a2a.upstream",
    "AgentTransport": "a2a.upstream",
    "RestConnection": "a2a.upstream",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'a2a' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ROUTING_KEYS",
    "SUPPORTED_VERSIONS",
    "A2aClient",
    "A2aError",
    "AgentConnection",
    "AgentFailure",
    "AgentInfo",
    "AgentPool",
    "AgentSpec",
    "AgentTransport",
    "CardError",
    "Hub",
    "HubSettings",
    "PushSettings",
    "RegisteredAgent",
    "Registry",
    "RestBinding",
    "RestConnection",
    "SqliteTaskStore",
    "TaskPage",
    "TaskRecord",
    "TaskStore",
    "TaskStream",
    "protocol_version",
    "rest_routes",
]
