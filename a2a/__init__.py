"""The A2A hub: wire types (1.0, with 0.3 compatibility), endpoint, registry, task store, push
delivery, and the client library ACP sessions use to hand tasks to agents."""

from a2a.client import A2aClient, AgentInfo, TaskStream
from a2a.compat import SUPPORTED_VERSIONS, protocol_version
from a2a.errors import A2aError
from a2a.hub import ROUTING_KEYS, Hub
from a2a.registry import CardError, RegisteredAgent, Registry
from a2a.rest import RestBinding, rest_routes
from a2a.settings import AgentSpec, HubSettings, PushSettings
from a2a.store import SqliteTaskStore, TaskPage, TaskRecord, TaskStore

__all__ = [
    "ROUTING_KEYS",
    "SUPPORTED_VERSIONS",
    "A2aClient",
    "A2aError",
    "AgentInfo",
    "AgentSpec",
    "CardError",
    "Hub",
    "HubSettings",
    "PushSettings",
    "RegisteredAgent",
    "Registry",
    "RestBinding",
    "SqliteTaskStore",
    "TaskPage",
    "TaskRecord",
    "TaskStore",
    "TaskStream",
    "protocol_version",
    "rest_routes",
]
