"""The A2A hub: wire types (1.0, with 0.3 compatibility), endpoint, registry, task store, push
delivery, and the client library ACP sessions use to hand tasks to agents.

Layout: `core` (routing, ids, relays, store, push; no HTTP) under the bindings `jsonrpc`, `rest`,
`wellknown` (cards) and `admin`, assembled into Starlette routes by `app` (`Hub`); `versions`
translates 0.3 <-> 1.0; `upstream` calls agents, `registry` keeps them, `client` is for ACP.

Decisions:
- Translation works on dicts, not pydantic models. The hub relays the JSON it received, so
  fields a newer peer adds (or an extension's) survive the trip; models (`types`) only validate
  what callers send, on the way in (-32602 naming the field). Dumping through models would drop
  or rename unknown fields and add a serialisation per hop to the hot path, where validation
  and id rewriting are already what remains after the SQLite upsert (~20 us; see
  docs/performance.md, "A2A hub").
- The hub dispatches non-streaming methods from its own table (`HubCore.invoke`), not through
  jsonrpcserver: both bindings check their envelopes first and validate params with the same
  models, so the dispatcher did nothing they had not done, at ~25 us of a SendMessage's ~180 us
  (hub CPU per request went from 147-159 to 120-125 us with this and the bare ASGI endpoints).
- JSON-RPC and REST routes are bare ASGI endpoints and bodies are read off `receive`
  (`asgi.AsgiEndpoint`, `asgi.read_body`): Starlette's per-call adapter and `Request.body()`
  showed in the per-request profile.
"""

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from a2a.app import Hub, rest_routes
    from a2a.client import A2aClient, AgentInfo, AgentPool, TaskStream
    from a2a.errors import A2aError
    from a2a.registry import CardError, RegisteredAgent, Registry
    from a2a.rest import RestBinding
    from a2a.routing import ROUTING_KEYS
    from a2a.settings import AgentSpec, HubSettings, PushSettings
    from a2a.store import SqliteTaskStore, TaskPage, TaskRecord, TaskStore
    from a2a.upstream import AgentConnection, AgentFailure, AgentTransport, RestConnection
    from a2a.versions.common import SUPPORTED_VERSIONS, protocol_version

# The hub pulls in starlette and aiohttp; the configuration only needs `a2a.settings`. Names load
# on first use so that reading a config file does not pay for the whole hub.
__getattr__, _, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "app": ["Hub", "rest_routes"],
        "client": ["A2aClient", "AgentInfo", "AgentPool", "TaskStream"],
        "errors": ["A2aError"],
        "registry": ["CardError", "RegisteredAgent", "Registry"],
        "rest": ["RestBinding"],
        "routing": ["ROUTING_KEYS"],
        "settings": ["AgentSpec", "HubSettings", "PushSettings"],
        "store": ["SqliteTaskStore", "TaskPage", "TaskRecord", "TaskStore"],
        "upstream": ["AgentConnection", "AgentFailure", "AgentTransport", "RestConnection"],
        "versions.common": ["SUPPORTED_VERSIONS", "protocol_version"],
    },
)


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
