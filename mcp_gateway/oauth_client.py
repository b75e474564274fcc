"""The `httpx2.Auth` for an upstream that requires OAuth (`http_auth`, per connection; and
`login_auth` for `junction login`): the `mcp` SDK's own OAuth clients (RFC 9728 discovery,
dynamic client registration, authorization code + PKCE, refresh, client credentials) fitted to
a gateway, and the encrypted store of a person's upstream login.

Two gaps of the SDK's `OAuthClientProvider` matter to a long-lived gateway and are filled here:
it keeps neither a token's expiry nor the authorization server's metadata across restarts (so a
restarted process would send an expired token, then refresh against the MCP server's own
`/token`); `TokenFile` stores both beside the tokens and `_StoredLogin` restores them. And a
gateway never waits on a person: where the SDK would open the authorization page, the gateway
fails the connection with `LoginRequired` instead.

The store: one file per server, a Fernet token (AES-128-CBC + HMAC-SHA256) of a JSON record,
written atomically with mode 0600 in a 0700 directory. The key is derived (HKDF-SHA256) from a
configured secret, or is a random key in a `key` file beside the tokens (0600; refused when
others can read it), so a copied or backed-up token file alone reveals nothing.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import secrets
import time
import warnings
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, NoReturn

import httpx2
import mcp_types as types
import orjson
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.auth.oauth2 import OAuthContext
from mcp.client.auth.utils import union_scopes
from mcp.shared.auth import (
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from mcp_gateway.specs import HttpUpstream
from mcp_gateway.upstream_auth import ClientCredentialsAuth, LoginAuth, TokenExchangeAuth

log = logging.getLogger("mcp_gateway.upstream_auth")

_KEY_FILE = "key"
_HKDF_SALT = b"junction upstream tokens v1"
_UNUSED_REDIRECT = "http://127.0.0.1/callback"
"""What a stored login names as its redirect when the registration recorded none: the gateway
never redirects anyone, but the SDK checks that one is set before it gets that far."""


class LoginRequired(MCPError):
    """An upstream needs a person's login that is not stored (or no longer works)."""

    def __init__(
        self, server: str, why: str = "needs a login", principal: str | None = None
    ) -> None:
        super().__init__(types.INVALID_REQUEST, f"{why}: {how_to_log_in(server, principal)}")


def how_to_log_in(server: str, principal: str | None) -> str:
    """What to do about a missing login: the operator's command, and for a person their own
    sign-in in serve mode as well."""
    if principal is None:
        return f"run `junction login {server}`"
    return (
        f"sign in with GET /mcp/login/{server} and confirm with the code its page shows "
        f"(`junction login {server} --confirm CODE`; both with your Junction credential), "
        f"or have an operator run `junction login {server} --as {principal}`"
    )


def _not_login_required(record: logging.LogRecord) -> bool:
    """The SDK logs every failed flow with its traceback; a missing login is not a fault, and
    the upstream's status (logged by the gateway) already says what to do."""
    return not (record.exc_info and isinstance(record.exc_info[1], LoginRequired))


logging.getLogger("mcp.client.auth.oauth2").addFilter(_not_login_required)


# --------------------------------------------------------------------------- the store


def _derived_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


def _local_key(directory: Path) -> bytes:
    """The random key in `directory/key`, made on first use; readable by its owner only."""
    path = directory / _KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(
                f"{path} can be read by others (mode {mode:o}): `chmod 600 {path}`"
            ) from None
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


class TokenFile:
    """One server's stored login (tokens, expiry, client registration, the authorization
    server's metadata), bound to the server's URL; the SDK's `TokenStorage`."""

    def __init__(
        self,
        directory: Path,
        secret: str | None,
        server: str,
        url: str,
        principal: str | None,
        *,
        held: bool = False,
    ) -> None:
        self.directory = directory
        self.server = server
        self.url = url
        self.principal = principal
        """Whose login this is (`per_user`); None: the server's own, shared one."""
        self._secret = secret
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", server)[:64]
        if principal is None:
            digest = hashlib.sha256(server.encode()).hexdigest()[:8]
            self.path = directory / f"{safe}-{digest}.token"
        else:
            person = re.sub(r"[^A-Za-z0-9_.-]", "_", principal)[:64]
            digest = hashlib.sha256(f"{server}\0{principal}".encode()).hexdigest()[:16]
            self.path = directory / f"{safe}@{person}-{digest}.token"
        self.context: OAuthContext | None = None
        """The provider's context, so what it discovered is stored with the tokens."""
        self._held: dict[str, Any] | None = {} if held else None
        """`held`: the record is kept in memory, not written, until `commit()` (a sign-in
        waiting for its person's confirmation)."""
        self.identity: dict[str, str] = {}
        """Who the authorization server says signed in (`sub`, `email`...), from the last
        token response's ID token or JWT access token: shown to a person, trusted for nothing."""

    def _fernet(self) -> Fernet:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = _derived_key(self._secret) if self._secret else _local_key(self.directory)
        return Fernet(key)

    def read(self) -> dict[str, Any]:
        """The stored record for this URL; {} when there is none (or it cannot be read)."""
        if self._held is not None:
            return dict(self._held)
        try:
            blob = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            record = orjson.loads(self._fernet().decrypt(blob))
        except (InvalidToken, orjson.JSONDecodeError):
            log.warning(
                "the stored login for MCP server %r cannot be read with this key; "
                "run `junction login %s`",
                self.server,
                self.server,
            )
            return {}
        if not isinstance(record, dict) or record.get("url") != self.url:
            return {}  # a login for another URL is not a login for this one
        if record.get("principal") != self.principal:
            return {}  # nor is another person's
        return record

    def _write(self, record: dict[str, Any]) -> None:
        record = {**record, "server": self.server, "url": self.url, "principal": self.principal}
        if self._held is not None:
            self._held = record
            return
        self._write_file(record)

    def _write_file(self, record: dict[str, Any]) -> None:
        blob = self._fernet().encrypt(orjson.dumps(record))
        spare = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(blob)
        os.replace(spare, self.path)

    def _update(self, **changes: Any) -> None:
        record = self.read()
        context = self.context
        if context is not None:  # what discovery found, so a restart refreshes at the right place
            if context.oauth_metadata is not None:
                record["metadata"] = context.oauth_metadata.model_dump(mode="json")
            if context.protected_resource_metadata is not None:
                prm = context.protected_resource_metadata.model_dump(mode="json")
                record["resource_metadata"] = prm
            if context.auth_server_url is not None:
                record["auth_server_url"] = context.auth_server_url
        record.update(changes)
        self._write(record)

    def forget(self) -> bool:
        """Remove the stored login; whether there was one."""
        if self._held is not None:
            had, self._held = bool(self._held), {}
            return had
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def has_login(self) -> bool:
        return bool(self.read().get("tokens"))

    def commit(self) -> None:
        """Write a held record to the file, replacing the login stored there (if any)."""
        if self._held is None or not self._held.get("tokens"):
            raise ValueError(f"no held login for MCP server {self.server!r} to store")
        self._write_file(self._held)
        self._held = None

    def version(self) -> int | None:
        """Changes whenever the file is written (by any process); None: no file (or held)."""
        if self._held is not None:
            return None
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    # the SDK's TokenStorage

    async def get_tokens(self) -> OAuthToken | None:
        tokens = self.read().get("tokens")
        return OAuthToken.model_validate(tokens) if tokens else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        expires_at = time.time() + tokens.expires_in if tokens.expires_in is not None else None
        self._update(tokens=tokens.model_dump(mode="json"), expires_at=expires_at)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        client = self.read().get("client")
        return OAuthClientInformationFull.model_validate(client) if client else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self._update(client=client_info.model_dump(mode="json", exclude_none=True))


class _Memory:
    """A service account's tokens: held for the life of one connection's auth object."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


# --------------------------------------------------------------------------- the providers


def _scope(scopes: tuple[str, ...]) -> str | None:
    return " ".join(scopes) or None


class _ServiceAccount(ClientCredentialsOAuthProvider):
    """Client credentials, with the configured scopes added to those the server asks for, and
    an explicit token endpoint where the server publishes no metadata."""

    def __init__(self, server_url: str, auth: ClientCredentialsAuth) -> None:
        with warnings.catch_warnings():
            # Without `issuer` the SDK warns on every connection; the docs say to set it.
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            super().__init__(
                server_url,
                _Memory(),
                client_id=auth.client_id,
                client_secret=auth.client_secret,
                token_endpoint_auth_method=auth.auth_method,
                scope=_scope(auth.scopes),
                issuer=auth.issuer,
            )
        self._auth = auth

    async def _exchange_token_client_credentials(self) -> httpx2.Request:
        metadata = self.context.client_metadata
        metadata.scope = union_scopes(metadata.scope, _scope(self._auth.scopes))
        if self._auth.token_url is not None and self._auth.issuer is None:
            # No issuer to check discovered metadata against: the configured endpoint decides.
            data = {"grant_type": "client_credentials"}
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            data, headers = self.context.prepare_token_auth(data, headers)
            if self.context.should_include_resource_param(self.context.protocol_version):
                data["resource"] = self.context.get_resource_url()
            if metadata.scope:
                data["scope"] = metadata.scope
            return httpx2.Request("POST", self._auth.token_url, data=data, headers=headers)
        return await super()._exchange_token_client_credentials()


_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
_ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
_EXCHANGED_KEPT = 1024
"""Exchanged tokens kept (per caller token), oldest dropped first."""


class _OnBehalf(_ServiceAccount):
    """Junction's own token (client credentials) for its own requests, and for a request made
    for a signed-in caller, the caller's token exchanged (RFC 8693) for one to this upstream.

    The caller is read in the request's context: the SDK's transport sends each message in the
    context of whoever sent it, so one shared session carries each caller's own identity.
    """

    def __init__(self, server_url: str, auth: TokenExchangeAuth) -> None:
        super().__init__(server_url, auth)
        self._subject_token = auth.subject_token
        self._exchanged: dict[str, tuple[str, float | None]] = {}

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        subject = self._subject_token()
        if subject is None or (self.context.oauth_metadata is None and not self._auth.token_url):
            # Junction's own request (or no endpoint known yet: the connection discovers it).
            flow = super().async_auth_flow(request)
            try:
                outgoing = await flow.__anext__()
                while True:
                    outgoing = await flow.asend((yield outgoing))
            except StopAsyncIteration:
                return
        token = self._held(subject)
        if token is None:
            exchanged = yield self._exchange_request(subject)
            await exchanged.aread()
            token = self._keep(subject, exchanged)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request  # without a token the upstream's 401 is the caller's answer

    def _held(self, subject: str) -> str | None:
        held = self._exchanged.get(subject)
        if held is None:
            return None
        token, expires_at = held
        if expires_at is not None and time.time() >= expires_at:
            del self._exchanged[subject]
            return None
        return token

    def _exchange_request(self, subject: str) -> httpx2.Request:
        data = {
            "grant_type": _TOKEN_EXCHANGE,
            "subject_token": subject,
            "subject_token_type": _ACCESS_TOKEN_TYPE,
            "requested_token_type": _ACCESS_TOKEN_TYPE,
            "resource": self.context.get_resource_url(),
        }
        scope = union_scopes(self.context.client_metadata.scope, _scope(self._auth.scopes))
        if scope:
            data["scope"] = scope
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        data, headers = self.context.prepare_token_auth(data, headers)
        metadata = self.context.oauth_metadata
        url = str(metadata.token_endpoint) if metadata is not None else self._auth.token_url
        return httpx2.Request("POST", str(url), data=data, headers=headers)

    def _keep(self, subject: str, response: httpx2.Response) -> str | None:
        if response.status_code != 200:
            log.warning(
                "upstream %s: token exchange refused (HTTP %s)",
                self.context.server_url,
                response.status_code,
            )
            return None
        try:
            token = OAuthToken.model_validate_json(response.content)
        except ValueError:
            log.warning("upstream %s: token exchange gave no token", self.context.server_url)
            return None
        expires_at = time.time() + token.expires_in if token.expires_in else None
        self._exchanged[subject] = (token.access_token, expires_at)
        while len(self._exchanged) > _EXCHANGED_KEPT:
            del self._exchanged[next(iter(self._exchanged))]
        return token.access_token


class _StoredLogin(OAuthClientProvider):
    """Authorization code + PKCE over a `TokenFile`; `interactive` only in `junction login`."""

    def __init__(
        self,
        spec: HttpUpstream,
        auth: LoginAuth,
        store: TokenFile,
        redirect_uri: str,
        *,
        interactive: bool,
        redirect_handler: Callable[[str], Awaitable[None]] | None = None,
        callback_handler: Callable[[], Awaitable[AuthorizationCodeResult]] | None = None,
    ) -> None:
        secret = auth.client_secret
        method: Literal["none", "client_secret_post"] = (
            "client_secret_post" if auth.client_id and secret else "none"
        )
        super().__init__(
            server_url=spec.url,
            client_metadata=OAuthClientMetadata(
                client_name="Junction",
                redirect_uris=[redirect_uri],  # type: ignore[list-item]
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method=method,
                scope=_scope(auth.scopes),
            ),
            storage=store,
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
        )
        self._spec = spec
        self._auth = auth
        self._store = store
        self._interactive = interactive
        self._refreshing = False
        self._seen: int | None = None
        self._fixed_client = (
            OAuthClientInformationFull(
                client_id=auth.client_id,
                client_secret=secret,
                redirect_uris=[redirect_uri],  # type: ignore[list-item]
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method=method,
            )
            if auth.client_id
            else None
        )
        store.context = self.context

    def _give_up(self) -> NoReturn:
        """The stored login no longer works: say so at once, and on every later connection
        attempt, rather than wait for a person."""
        self._store.forget()
        raise LoginRequired(
            self._spec.name, "the stored login expired or was revoked", self._store.principal
        )

    async def _handle_token_response(self, response: httpx2.Response) -> None:
        if not self._refreshing:
            if response.status_code in (200, 201):
                self._store.identity = _named_identity(await response.aread())
            await super()._handle_token_response(response)
            return
        self._refreshing = False
        if not await self._handle_refresh_response(response):
            self._give_up()

    def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        self._sync()
        return super().async_auth_flow(request)

    def _sync(self) -> None:
        """Take tokens another process stored since (a `junction login`, another Junction on
        this store), rather than refresh with a refresh token that rotation may have spent."""
        if not self._initialized or self._store.version() == self._seen:
            return
        self._seen = self._store.version()
        record = self._store.read()
        if record.get("tokens"):
            self.context.current_tokens = OAuthToken.model_validate(record["tokens"])
            expires_at = record.get("expires_at")
            self.context.token_expiry_time = float(expires_at) if expires_at else None

    async def _initialize(self) -> None:
        self._seen = self._store.version()
        await super()._initialize()
        record = self._store.read()
        context = self.context
        if self._fixed_client is not None:
            context.client_info = self._fixed_client
        expires_at = record.get("expires_at")
        context.token_expiry_time = float(expires_at) if expires_at is not None else None
        if record.get("metadata"):
            context.oauth_metadata = OAuthMetadata.model_validate(record["metadata"])
        if record.get("resource_metadata"):
            prm = ProtectedResourceMetadata.model_validate(record["resource_metadata"])
            context.protected_resource_metadata = prm
        if record.get("auth_server_url"):
            context.auth_server_url = str(record["auth_server_url"])

    async def _perform_authorization(self) -> httpx2.Request:
        if not self._interactive:
            if self.context.can_refresh_token():
                # A 401 for a token our clock still thought valid (skew, revocation): one
                # refresh before giving up on the login.
                self._refreshing = True
                return await self._refresh_token()
            self._give_up()
        metadata = self.context.client_metadata
        metadata.scope = union_scopes(metadata.scope, _scope(self._auth.scopes))
        return await super()._perform_authorization()


_IDENTITY_CLAIMS = ("sub", "email", "preferred_username", "name", "iss")


def _claims(token: object) -> dict[str, Any]:
    """A JWT's payload, unverified (what the token endpoint itself just sent, shown to a
    person); {} for anything that is not one."""
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _named_identity(body: bytes) -> dict[str, str]:
    """Whose account a token response is for, when it says: its ID token's claims (OpenID
    Connect), else a JWT access token's; only plain, short string claims."""
    try:
        reply = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(reply, dict):
        return {}
    claims = _claims(reply.get("id_token")) or _claims(reply.get("access_token"))
    return {
        name: value
        for name in _IDENTITY_CLAIMS
        if isinstance(value := claims.get(name), str) and 0 < len(value) <= 256
    }


# --------------------------------------------------------------------------- the surface


def token_file(
    spec: HttpUpstream, principal: str | None = None, *, held: bool = False
) -> TokenFile:
    """The encrypted token file of an upstream configured with `LoginAuth`: the server's own
    login, or with `principal` that person's (`per_user`); `held`: a new login kept in memory
    until `commit()`."""
    auth = spec.auth
    if not isinstance(auth, LoginAuth):
        raise TypeError(f"MCP server {spec.name!r} has no login (auth type oauth)")
    return TokenFile(auth.store, auth.key, spec.name, spec.url, principal, held=held)


def person_login_problem(spec: HttpUpstream | object) -> str | None:
    """Why a request for the current caller cannot go to `spec` (a `per_user` login they have
    not made), else None; checked before the request, so it fails alone, in words."""
    auth = getattr(spec, "auth", None)
    if not isinstance(auth, LoginAuth) or not auth.per_user:
        return None
    assert isinstance(spec, HttpUpstream)
    principal = auth.principal()
    if principal is None or _has_login(token_file(spec, principal)):
        return None
    return (
        f"MCP server {spec.name!r} needs your own login ({principal!r} has none): "
        + how_to_log_in(spec.name, principal)
    )


_LOGINS_SEEN: dict[Path, tuple[int, bool]] = {}
"""Whether each person's token file holds a login, by its version (no decryption per call)."""


def _has_login(store: TokenFile) -> bool:
    version = store.version()
    if version is None:
        return False
    seen = _LOGINS_SEEN.get(store.path)
    if seen is None or seen[0] != version:
        if len(_LOGINS_SEEN) > 4096:
            _LOGINS_SEEN.clear()
        seen = _LOGINS_SEEN[store.path] = (version, store.has_login())
    return seen[1]


class _PerPerson(httpx2.Auth):
    """`per_user`: each request goes with the login of the caller it is for, read in the
    request's context (the SDK's transport sends each message in its sender's context);
    Junction's own requests (connecting, listing) with the server's own login.

    A caller's login that is missing, logged out or refused goes nowhere else: the request is
    sent without a token (the upstream refuses it) and nothing is raised, since an error here
    would end the session every caller shares. `person_login_problem` says it first.
    """

    def __init__(self, spec: HttpUpstream, auth: LoginAuth, own: _StoredLogin) -> None:
        self._spec = spec
        self._auth = auth
        self._own = own
        self._people: dict[str, _StoredLogin] = {}

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        principal = self._auth.principal()
        provider = self._own if principal is None else self._person(principal)
        if provider is None:
            yield request
            return
        flow = provider.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                outgoing = await flow.asend((yield outgoing))
        except StopAsyncIteration:
            return
        except LoginRequired:
            if principal is None:
                raise  # Junction's own login: the connection fails, as for a shared login
            self._people.pop(principal, None)

    def _person(self, principal: str) -> _StoredLogin | None:
        store = token_file(self._spec, principal)
        if not _has_login(store):
            self._people.pop(principal, None)
            return None
        provider = self._people.get(principal)
        if provider is None:
            provider = _stored_login(self._spec, store)
            self._people[principal] = provider
            while len(self._people) > _EXCHANGED_KEPT:
                del self._people[next(iter(self._people))]
        return provider


def http_auth(spec: HttpUpstream) -> httpx2.Auth | None:
    """The auth for one connection to `spec` (None without `auth`), for the gateway.

    Raises `LoginRequired` (an `MCPError`, so the upstream's status reads as its message) when
    a login is configured but none is stored for this server's URL.
    """
    auth = spec.auth
    if auth is None:
        return None
    if isinstance(auth, TokenExchangeAuth):
        return _OnBehalf(spec.url, auth)
    if isinstance(auth, ClientCredentialsAuth):
        return _ServiceAccount(spec.url, auth)
    if auth.per_user:  # Junction's own login is needed to connect (LoginRequired without)
        return _PerPerson(spec, auth, _stored_login(spec, token_file(spec)))
    return _stored_login(spec, token_file(spec))


def _stored_login(spec: HttpUpstream, store: TokenFile) -> _StoredLogin:
    """The gateway's side of a person's login: the stored tokens, refreshed when they expire."""
    auth = spec.auth
    assert isinstance(auth, LoginAuth)
    record = store.read()
    if not record.get("tokens"):
        raise LoginRequired(spec.name, principal=store.principal)
    redirects = (record.get("client") or {}).get("redirect_uris") or [_UNUSED_REDIRECT]
    return _StoredLogin(spec, auth, store, str(redirects[0]), interactive=False)


def login_auth(
    spec: HttpUpstream,
    redirect_uri: str,
    show_url: Callable[[str], Awaitable[None]],
    wait_for_code: Callable[[], Awaitable[tuple[str, str | None, str | None]]],
    principal: str | None = None,
    *,
    store: TokenFile | None = None,
) -> httpx2.Auth:
    """The auth for `junction login` (and a person's sign-in over HTTP): forgets the stored
    login (the server's own, or `principal`'s), then walks the whole flow on the first request
    (discovery, registration, `show_url(authorization_url)`, then `wait_for_code()` ->
    (code, state, iss) from the redirect), storing what it gets; or into `store` (a held one:
    the stored login stays until it is committed)."""
    if store is None:
        store = token_file(spec, principal)
        store.forget()
    auth = spec.auth
    assert isinstance(auth, LoginAuth)

    async def callback() -> AuthorizationCodeResult:
        code, state, iss = await wait_for_code()
        return AuthorizationCodeResult(code=code, state=state, iss=iss)

    return _StoredLogin(
        spec,
        auth,
        store,
        redirect_uri,
        interactive=True,
        redirect_handler=show_url,
        callback_handler=callback,
    )


async def walk_login(spec: HttpUpstream, auth: httpx2.Auth) -> int:
    """Connect to `spec` with `auth` and list its tools: the first request walks a login's
    flow (`login_auth`); the number of tools, to show that the login works."""
    from mcp import Client
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    from mcp_gateway._sdk import create_mcp_http_client

    headers = dict(spec.headers)
    if spec.transport == "sse":
        async with Client(
            sse_client(spec.url, headers=headers, auth=auth), mode=spec.protocol
        ) as c:
            return len((await c.list_tools()).tools)
    async with create_mcp_http_client(headers=headers or None, auth=auth) as http:
        transport = streamable_http_client(spec.url, http_client=http)
        async with Client(transport, mode=spec.protocol) as client:
            return len((await client.list_tools()).tools)
