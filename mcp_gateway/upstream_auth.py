"""OAuth toward HTTP upstreams that require it, as the gateway is told it:
`ClientCredentialsAuth` for a service account, `TokenExchangeAuth` for each signed-in caller as
themselves, `LoginAuth` for a person's stored login (or, `per_user`, each caller's own).

Plain data riding on `HttpUpstream`, so importing it costs nothing; `mcp_gateway.oauth_client`
makes the `httpx2.Auth` that does it, with the `mcp` SDK's own OAuth clients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["ClientCredentialsAuth", "LoginAuth", "TokenExchangeAuth", "UpstreamAuth"]


@dataclass(frozen=True, kw_only=True)
class ClientCredentialsAuth:
    """A service account: tokens by the client credentials grant, kept in memory."""

    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    issuer: str | None = None
    """Tokens are requested only from this authorization server's discovered metadata."""
    token_url: str | None = None
    """The token endpoint when the server publishes no metadata."""
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"


@dataclass(frozen=True, kw_only=True)
class TokenExchangeAuth(ClientCredentialsAuth):
    """Per caller: the caller's own token (from `subject_token()`, read in the request's
    context) exchanged (RFC 8693) for one to the upstream; client credentials without one."""

    subject_token: Callable[[], str | None] = field(compare=False, repr=False)


@dataclass(frozen=True, kw_only=True)
class LoginAuth:
    """A person's login, made by `junction login` and stored encrypted in `store`."""

    store: Path
    """The directory of the encrypted token files (and of the local key file)."""
    key: str | None = field(default=None, repr=False)
    """A secret to derive the encryption key from; None: the local key file in `store`."""
    client_id: str | None = None
    """A pre-registered client; None: dynamic client registration at login."""
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    redirect_port: int = 0
    per_user: bool = False
    """Each caller has a login of their own (by `principal()`); Junction's own requests (no
    caller) use the login stored for the server alone."""
    principal: Callable[[], str | None] = field(default=lambda: None, compare=False, repr=False)
    """Who the request being sent is for (read in the request's context); None: Junction."""


UpstreamAuth = ClientCredentialsAuth | TokenExchangeAuth | LoginAuth
