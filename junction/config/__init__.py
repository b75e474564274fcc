"""Junction's configuration: YAML with `${VAR}` substitution, validated by pydantic.

Every problem becomes one line of a `ConfigError`, `<file>: <dotted.key.path>: <message>`, so a
user sees exactly which key to fix and never a traceback.

Decisions:
- Sections are the packages' own settings models where there is one (`routing` is router_core's
  `RouterSettings`, `a2a` extends a2a's `HubSettings`, each `backends` entry is a `BackendSpec`
  and each `a2a_agents` entry an `AgentSpec`), so a field is declared once; this package adds
  only what a file needs on top (unknown keys refused, URLs checked, names from map keys).
- The YAML loader is PyYAML's SafeLoader with duplicate keys refused (PyYAML keeps the last one
  silently); `${VAR}` substitution is hand-written and runs after parsing, so a value can never
  change the structure and an unset variable names its key path (`substitution.py`).
- Pydantic's error text is rewritten, never shown (`errors.py`): it names union members and
  links to its docs, where a user needs the key and a close match for a typo.
- Everything here is imported eagerly: loading a config needs all of it, and `yaml` (8 ms) and
  pydantic are already paid for before `initialize` is answered (docs/performance.md).

Modules: `models` (the root and the small sections), `server`, `backends`, `mcp`, `agents`,
`sessions` (one per section), `loading`, `substitution`, `mcp_file`, `errors`, `redaction`,
`fields` (the shared base model and field types).
"""

from __future__ import annotations

from junction.config.agents import A2aAgentConfig, A2aConfig, SelfAgentConfig, SelfAgentSkill
from junction.config.backends import BackendConfig
from junction.config.errors import ConfigError
from junction.config.loading import (
    DEFAULT_CONFIG_NAME,
    ENV_SOURCE,
    find_config_path,
    load_config,
    validate_config,
)
from junction.config.mcp import (
    McpGatewayConfig,
    McpServerConfig,
    McpToolFilterConfig,
    RemoteMcpServerConfig,
    StdioMcpServerConfig,
)
from junction.config.mcp_file import load_mcp_servers_file
from junction.config.models import JunctionConfig, LoggingConfig, StoreConfig
from junction.config.server import (
    API_KEY_SCOPES,
    ApiKeyConfig,
    ApiKeyScope,
    ServerConfig,
    unnamed_key_name,
)
from junction.config.sessions import AcpConfig, PermissionsConfig
from junction.config.substitution import substitute_env

__all__ = [
    "API_KEY_SCOPES",
    "DEFAULT_CONFIG_NAME",
    "ENV_SOURCE",
    "A2aAgentConfig",
    "A2aConfig",
    "AcpConfig",
    "ApiKeyConfig",
    "ApiKeyScope",
    "BackendConfig",
    "ConfigError",
    "JunctionConfig",
    "LoggingConfig",
    "McpGatewayConfig",
    "McpServerConfig",
    "McpToolFilterConfig",
    "PermissionsConfig",
    "RemoteMcpServerConfig",
    "SelfAgentConfig",
    "SelfAgentSkill",
    "ServerConfig",
    "StdioMcpServerConfig",
    "StoreConfig",
    "find_config_path",
    "load_config",
    "load_mcp_servers_file",
    "substitute_env",
    "unnamed_key_name",
    "validate_config",
]
