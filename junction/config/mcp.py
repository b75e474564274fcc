"""The `mcp_servers:` and `mcp:` sections: upstream MCP servers and how the aggregate names,
filters and times out what they offer.

These stay config models rather than mcp_gateway's specs: those are frozen dataclasses built
for the gateway (tuples, no validation, no unknown-key errors), and the common `mcpServers`
shape users paste (`command` or `url` in one mapping) is a file format, not the gateway's.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag
from pydantic_core import PydanticCustomError

from junction.config.fields import ConfigModel, HttpUrlStr, NonEmptyStr, Seconds

__all__ = [
    "ClientCredentialsAuthConfig",
    "LoginAuthConfig",
    "McpGatewayConfig",
    "McpServerConfig",
    "McpToolFilterConfig",
    "RemoteMcpServerConfig",
    "StdioMcpServerConfig",
    "TokenExchangeAuthConfig",
    "TokenStoreConfig",
    "UpstreamAuthConfig",
]


class McpToolFilterConfig(ConfigModel):
    """Glob filters over one server's tool names: a filtered tool is neither listed nor callable."""

    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)


class StdioMcpServerConfig(ConfigModel):
    """An upstream MCP server Junction launches as a child process and talks to over its stdio."""

    kind: ClassVar[str] = "stdio"
    command: NonEmptyStr
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    tools: McpToolFilterConfig = Field(default_factory=McpToolFilterConfig)
    timeout: Seconds | None = None
    connect_timeout: Seconds | None = None
    legacy_session: bool | None = None
    """2025-11-25 clients' calls to a server that speaks 2026-07-28 too go over a second,
    2025-11-25 session, where its tools can ask the client (elicitation, sampling, roots) the
    handshake-era way. Default: on for remote servers, off for stdio ones (a second process
    would not share the first one's state)."""


class ClientCredentialsAuthConfig(ConfigModel):
    """A service account: Junction gets its own tokens by the OAuth client credentials grant
    (kept in memory; a new one when it expires)."""

    type: Literal["client_credentials"]
    """`client_credentials`: a service account (the keys below down to `auth_method`)."""
    client_id: NonEmptyStr
    client_secret: NonEmptyStr
    """Its secret (give it as `${VAR}`; kept out of logs)."""
    scopes: list[str] = Field(default_factory=list)
    """Asked for beside what the server asks for (its challenge or resource metadata)."""
    issuer: HttpUrlStr | None = None
    """The authorization server these credentials belong to: tokens are only requested from
    its discovered metadata, never from wherever the MCP server points."""
    token_url: HttpUrlStr | None = None
    """The token endpoint, for servers that publish no metadata (else discovered, RFC 9728)."""
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    """How the secret goes to the token endpoint (HTTP Basic, or in the form)."""


class TokenExchangeAuthConfig(ClientCredentialsAuthConfig):
    """Per caller: for a caller signed in with Junction's identity provider (`server.oauth`),
    Junction exchanges the caller's token (RFC 8693) for one to this server, so the server sees
    that person; without one (connecting, listing, API-key callers), Junction's own token by
    client credentials. The client must be allowed the token-exchange grant."""

    type: Literal["token_exchange"]  # type: ignore[assignment]
    """`token_exchange`: as `client_credentials`, plus the exchange for signed-in callers."""


class LoginAuthConfig(ConfigModel):
    """A person's login: `junction login NAME` walks the authorization code flow with PKCE
    (registering Junction dynamically when no client_id is given); the tokens are stored
    encrypted (`mcp.token_store`) and refreshed when they expire."""

    type: Literal["oauth"]
    """`oauth`: a person's login by `junction login NAME` (the keys below)."""
    client_id: str | None = None
    """A client registered for Junction beforehand; none: dynamic client registration."""
    client_secret: str | None = None
    """The pre-registered client's secret, if it has one."""
    scopes: list[str] = Field(default_factory=list)
    """Asked for beside what the server asks for (its challenge or resource metadata)."""
    redirect_port: int = Field(default=0, ge=0, le=65535)
    """The loopback port `junction login` listens on for the redirect (0: any free port; fix
    it when a pre-registered client allows one redirect URI)."""
    per_user: bool = False
    """Each caller (an API key's name, a token's subject) uses a login of their own, stored
    under (server, caller): by `junction login NAME --as CALLER`, or the caller's own
    `GET /mcp/login/NAME` in serve mode. A caller without one gets an error saying so, never
    another person's login; `junction login NAME` is then only Junction's own (listing)."""


UpstreamAuthConfig = Annotated[
    ClientCredentialsAuthConfig | TokenExchangeAuthConfig | LoginAuthConfig,
    Field(discriminator="type"),
]
"""How Junction authenticates to an HTTP upstream that requires OAuth."""


class RemoteMcpServerConfig(ConfigModel):
    """An upstream MCP server reached over HTTP (Streamable HTTP, or legacy SSE)."""

    kind: ClassVar[str] = "remote"
    url: HttpUrlStr
    headers: dict[str, str] = Field(default_factory=dict)
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    tools: McpToolFilterConfig = Field(default_factory=McpToolFilterConfig)
    timeout: Seconds | None = None
    connect_timeout: Seconds | None = None
    legacy_session: bool | None = None
    """2025-11-25 clients' calls to a server that speaks 2026-07-28 too go over a second,
    2025-11-25 session, where its tools can ask the client (elicitation, sampling, roots) the
    handshake-era way. Default: on for remote servers, off for stdio ones (a second process
    would not share the first one's state)."""
    auth: UpstreamAuthConfig | None = None
    """OAuth toward this server: `client_credentials` (a service account), `token_exchange`
    (each signed-in caller as themselves) or `oauth` (a person's `junction login`)."""


def _mcp_server_kind(value: Any) -> str | None:
    if isinstance(value, StdioMcpServerConfig | RemoteMcpServerConfig):
        return value.kind
    if isinstance(value, dict):
        return "stdio" if "command" in value else "remote"
    return None


def _one_of_command_or_url(value: Any) -> Any:
    """Say plainly what is wrong instead of pydantic's union error soup."""
    if isinstance(value, StdioMcpServerConfig | RemoteMcpServerConfig):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "mcp_server_shape",
            "expected a mapping with 'command' (stdio server) or 'url' (remote server)",
        )
    has_command, has_url = value.get("command") is not None, value.get("url") is not None
    if has_command and has_url:
        raise PydanticCustomError(
            "mcp_server_shape",
            "give exactly one of 'command' (stdio server) or 'url' (remote server), not both",
        )
    if not has_command and not has_url:
        raise PydanticCustomError(
            "mcp_server_shape",
            "give exactly one of 'command' (stdio server) or 'url' (remote server); neither is set",
        )
    return value


McpServerConfig = Annotated[
    Union[  # noqa: UP007 (Tag annotations need the Union spelling)
        Annotated[StdioMcpServerConfig, Tag(StdioMcpServerConfig.kind)],
        Annotated[RemoteMcpServerConfig, Tag(RemoteMcpServerConfig.kind)],
    ],
    Discriminator(_mcp_server_kind),
    BeforeValidator(_one_of_command_or_url),
]
"""An upstream MCP server: stdio (`command`) or remote (`url`), the common `mcpServers` shape."""


class TokenStoreConfig(ConfigModel):
    """Where `junction login` keeps upstream tokens, encrypted (Fernet) at rest."""

    path: str | None = None
    """A directory (default: `upstream-tokens` in the user data directory)."""
    key: str | None = None
    """A secret the encryption key is derived from (e.g. `${JUNCTION_TOKEN_KEY}`); unset: a
    random key in `key` inside `path`, readable by its owner only (0600)."""


class McpGatewayConfig(ConfigModel):
    """How the MCP aggregate names, filters and times out what its upstreams offer."""

    prefix: Literal["always", "on_collision", "never"] = "always"
    separator: str = Field(default="__", pattern=r"^[A-Za-z0-9_-]{1,8}$")
    deny: list[str] = Field(default_factory=list)
    call_timeout: Seconds = 60.0
    connect_timeout: Seconds = 30.0
    catalog_mode: bool = False
    """MCP clients see three tools instead of every tool: `search_tools` (by words),
    `describe_tool` (its schema) and `call_tool` (by name), for clients whose context a
    large catalog would fill. Junction's own agent still sees every tool."""
    token_store: TokenStoreConfig = Field(default_factory=TokenStoreConfig)
