"""The ACP agent an IDE launches: ACP v1 sessions, the turn loop, permissions, session store.

    runtime = AgentRuntime(AgentSettings(), SqliteSessionStore(path), lifespan)
    await serve_connection(stream, runtime)     # one client on any MessageStream

`lifespan` starts the `Services` (a `ModelClient`, optional `ToolProvider`, `SessionTools` and
`AgentDirectory`: the Protocols in `acp.protocols`) after the first `initialize` is answered.
Importing this package loads only pydantic and the transports; the turn loop, router_core and
anything the services need load later, so `initialize` answers fast.

Decisions:
- The ACP wire types are our own subset of the v1 schema (`schema.py`), not the official SDK's:
  the official Python SDK imports as `acp` too (so the two cannot share a process), and the agent
  side needs only the requests a client sends, our answers and notifications, and the answers to
  what we ask the client. Unknown keys and `_meta` are kept, so a newer client's additions
  survive. Cold start, spawn to the `initialize` answer, is ~0.2 s with this package at ~37 ms of
  it (docs/performance.md, "ACP agent").
- The agent speaks through `transports.JsonRpcPeer`, which carries requests both ways on one
  connection (permission prompts, `fs/*`, `terminal/*` go back to the client mid-turn);
  `jsonrpcserver` only dispatches one direction.
- Everything it needs from Junction is a Protocol of its own (`protocols.py`); it imports none of
  `mcp_gateway` and `a2a`, so the composition root (`junction.bridges.acp_services`) adapts them.
"""

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from acp.agent import (
        AUTH_REQUIRED,
        RESOURCE_NOT_FOUND,
        AgentConnection,
        ServiceScope,
        serve_connection,
    )
    from acp.permissions import Decision, PermissionPolicy
    from acp.protocols import (
        AgentDirectory,
        AgentInfo,
        ModelClient,
        SessionToolProvider,
        SessionTools,
        ToolInfo,
        ToolProvider,
    )
    from acp.runtime import AgentRuntime, Lifespan, Services, ServicesUnavailable
    from acp.settings import AgentSettings, Credential
    from acp.store import MemorySessionStore, SessionRecord, SessionStore, SqliteSessionStore

# Loaded on first use: `junction --mode stdio` answers `initialize` from `acp.handshake` before
# pydantic, the wire types or the transports are imported (see `junction.modes.acp_early`).
__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "agent": [
            "AUTH_REQUIRED",
            "RESOURCE_NOT_FOUND",
            "AgentConnection",
            "ServiceScope",
            "serve_connection",
        ],
        "permissions": ["Decision", "PermissionPolicy"],
        "protocols": [
            "AgentDirectory",
            "AgentInfo",
            "ModelClient",
            "SessionToolProvider",
            "SessionTools",
            "ToolInfo",
            "ToolProvider",
        ],
        "runtime": ["AgentRuntime", "Lifespan", "Services", "ServicesUnavailable"],
        "settings": ["AgentSettings", "Credential"],
        "store": ["MemorySessionStore", "SessionRecord", "SessionStore", "SqliteSessionStore"],
    },
)

__all__ = [
    "AUTH_REQUIRED",
    "RESOURCE_NOT_FOUND",
    "AgentConnection",
    "AgentDirectory",
    "AgentInfo",
    "AgentRuntime",
    "AgentSettings",
    "Credential",
    "Decision",
    "Lifespan",
    "MemorySessionStore",
    "ModelClient",
    "PermissionPolicy",
    "ServiceScope",
    "Services",
    "ServicesUnavailable",
    "SessionRecord",
    "SessionStore",
    "SessionToolProvider",
    "SessionTools",
    "SqliteSessionStore",
    "ToolInfo",
    "ToolProvider",
    "serve_connection",
]
