"""The ACP agent an IDE launches: ACP v1 sessions, the turn loop, permissions, session store.

    runtime = AgentRuntime(AgentSettings(), SqliteSessionStore(path), lifespan)
    await serve_connection(stream, runtime)     # one client on any MessageStream

`lifespan` starts the `Services` (a `ModelClient`, optional `ToolProvider`, `SessionTools` and
`AgentDirectory`: the Protocols in `acp.protocols`) after the first `initialize` is answered.
Importing this package loads only pydantic and the transports; the turn loop, router_core and
anything the services need load later, so `initialize` answers fast.
"""

from acp.agent import RESOURCE_NOT_FOUND, AgentConnection, ServiceScope, serve_connection
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
from acp.settings import AgentSettings
from acp.store import MemorySessionStore, SessionRecord, SessionStore, SqliteSessionStore

__all__ = [
    "RESOURCE_NOT_FOUND",
    "AgentConnection",
    "AgentDirectory",
    "AgentInfo",
    "AgentRuntime",
    "AgentSettings",
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
