"""Server-to-client traffic of an upstream, carried to the caller whose request it serves.

An upstream serving a call may ask its client something (2025-11-25: `sampling/createMessage`,
`elicitation/create`, `roots/list` as requests; 2026-07-28: the same as an input-required
result) and may log while it works (`notifications/message`). Every caller shares one session
per upstream, so each call carries a `Relay`: who answers those requests and hears those
notifications. Which call a server-to-client message belongs to:

- Streamable HTTP upstreams: the message arrives on the SSE stream of that call's POST; the
  SDK runs our callback in the context of the task that sent the POST, so `CURRENT` (set by
  the call) names the relay exactly, even with many calls in flight.
- stdio and legacy SSE upstreams: the wire does not say. The upstream's one relay in flight is
  the one (several calls of one caller share it); with calls of several callers in flight the
  request is refused (-32603) rather than shown to a caller it was not meant for.

A request sent outside every call (server-filesystem asks `roots/list` right after it is
initialized) goes to the catalog's one client when it has one (`junction --mode mcp`, an ACP
session's own servers: see `_client_home.py`), else it is refused (-32603, saying why).
When the client answers such a relayed request with progress, the progress goes back to the
upstream that asked, under the token it gave (`ASKED_PROGRESS`).
"""

from __future__ import annotations

import contextvars
import itertools
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.shared.dispatcher import CallOptions, ProgressFnT

from mcp_gateway.errors import ClientRequestFn, GatewayError

ClientNotifyFn = Callable[[str, dict[str, Any]], Awaitable[None]]
"""Hears an upstream's notifications for one call (`notifications/message`, and the
`notifications/elicitation/complete` of a URL elicitation it relayed)."""

INPUT_METHODS = frozenset({"elicitation/create", "sampling/createMessage", "roots/list"})
"""The server-to-client requests a caller may be asked to answer."""

SERVER_META_KEY = "junction/server"
"""`_meta` key naming the upstream on a relayed notification (several share one client)."""

MAX_INPUT_ROUNDS = 10
"""Input-required rounds resolved for one call before giving up (the SDK's default too)."""


@dataclass(eq=False, slots=True)
class Relay:
    """Where one call's server-to-client traffic goes."""

    on_request: ClientRequestFn | None = None
    on_notify: ClientNotifyFn | None = None
    owner: object = field(default=None)
    """Calls of one caller share an owner (a client session): the stdio fallback may pick
    a relay when every call in flight belongs to the same owner."""
    legacy: bool = False
    """The caller is a 2025-11-25 client: its calls go over the upstream's 2025-11-25 session
    when it has one (`UpstreamSpec.legacy_session`)."""
    asking: int = 0
    """Requests of the upstream this caller has not answered yet."""
    on_progress: ProgressFnT | None = None
    """Where the upstream's progress goes when not to the request that started the call (a
    call parked between a 2026-07-28 client's rounds reports to the round open now)."""
    resolves_input: bool = True
    """Whether a 2026-07-28 input-required result is answered through `on_request` (False:
    it goes to the caller as it is, for a 2026-07-28 client to answer itself)."""

    async def request(self, method: str, params: dict[str, Any], server: str) -> dict[str, Any]:
        if self.on_request is None:
            raise GatewayError(
                types.METHOD_NOT_FOUND,
                f"{method} from MCP server {server!r}: the caller cannot answer it",
            )
        self.asking += 1
        try:
            return await self.on_request(method, params)
        finally:
            self.asking -= 1

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        if self.on_notify is not None:
            await self.on_notify(method, params)


class _Serving:
    """`InFlight.serving`'s block (a class: a generator's context manager costs a few
    microseconds more on every relayed call)."""

    __slots__ = ("_key", "_relay", "_relays", "_token")

    def __init__(self, relays: dict[int, Relay], key: int, relay: Relay) -> None:
        self._relays, self._key, self._relay = relays, key, relay

    def __enter__(self) -> None:
        self._token = CURRENT.set(self._relay)
        self._relays[self._key] = self._relay

    def __exit__(self, *_: object) -> None:
        self._relays.pop(self._key, None)
        CURRENT.reset(self._token)


CURRENT: contextvars.ContextVar[Relay | None] = contextvars.ContextVar(
    "mcp_gateway_relay", default=None
)
"""The relay of the call this task serves (see the module's doc for how it travels)."""


ASKED_PROGRESS: contextvars.ContextVar[ProgressFnT | None] = contextvars.ContextVar(
    "mcp_gateway_asked_progress", default=None
)
"""While an upstream's request is passed on to a client: where the client's progress on it
goes (back to that upstream, under the token it gave); None when it gave no token."""

HomeFn = Callable[[], "Relay | None"]
"""The one client of an upstream, for requests it sends outside every call (None: none)."""


def relayed_options() -> CallOptions:
    """Options for sending an upstream's request on to a client: the client's progress on it
    goes back to the upstream (the SDK gives the request a token of its own for that)."""
    back = ASKED_PROGRESS.get()
    return {"on_progress": back} if back is not None else {}


def roots_relay(paths: Sequence[str]) -> Relay:
    """A client made of directories (an ACP session's cwd and additionalDirectories): it
    answers `roots/list` with their `file://` URIs and nothing else."""
    roots = [
        {"uri": Path(p).as_uri(), "name": Path(p).name or p} for p in paths if os.path.isabs(p)
    ]

    async def answer(method: str, params: dict[str, Any]) -> dict[str, Any]:
        if method == "roots/list":
            return {"roots": roots}
        if method == "sampling/createMessage":  # an editor's session offers no sampling
            raise GatewayError(types.METHOD_NOT_FOUND, f"{method}: the client does not offer it")
        raise GatewayError(
            types.INTERNAL_ERROR,
            f"{method}: the editor answers this only during a prompt turn (none is running)",
        )

    return Relay(answer)


class InFlight:
    """The relays of one upstream's calls under way, for transports that cannot say which."""

    def __init__(self) -> None:
        self._relays: dict[int, Relay] = {}
        self._ids = itertools.count()

    def serving(self, relay: Relay | None) -> _Serving:
        """Mark a call under way (`with`); a call without a relay still counts (it answers
        nothing, and a request meant for it must not reach another caller)."""
        return _Serving(self._relays, next(self._ids), relay or Relay())

    def sole(self) -> Relay | None:
        """The relay in flight when it is unambiguous, else None. A call still waiting for
        its caller's answer to an earlier request is passed over when another is free (a
        server asks one thing at a time per call; an abandoned question must not block)."""
        relays = list(self._relays.values())
        free = [r for r in relays if not r.asking]
        relays = free or relays
        if not relays:
            return None
        first = relays[0]
        owner = first.owner
        if all(r is first or (owner is not None and r.owner is owner) for r in relays):
            return first
        return None

    def __len__(self) -> int:
        return len(self._relays)


def input_required(result: dict[str, Any]) -> bool:
    """A multi-round-trip answer (2026-07-28): the client must answer `inputRequests` and retry."""
    return result.get("resultType") == "input_required"


_STATE_ONLY_DELAYS = (0.05, 0.1, 0.2, 0.25)
"""Sleeps before retrying a round that carried only `requestState` (as the SDK's driver does)."""


async def resolved(
    first: dict[str, Any],
    relay: Relay,
    server: str,
    retry: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Resolve a 2026-07-28 upstream's input-required result for a caller that answers
    server-to-client requests instead (a handshake-era client, an in-process caller).

    Each input request goes to `relay` in turn; the upstream gets the answers and its own
    `requestState` back unchanged on `retry`, for up to `MAX_INPUT_ROUNDS` rounds. A refused
    request ends the call with its error, as the SDK's own driver does.
    """
    result, quiet = first, 0
    for _ in range(MAX_INPUT_ROUNDS):
        if not input_required(result):
            return result
        requests = result.get("inputRequests") or {}
        if not isinstance(requests, dict):
            raise GatewayError(
                types.INTERNAL_ERROR, f"MCP server {server!r} sent malformed inputRequests"
            )
        responses: dict[str, Any] = {}
        for key, request in requests.items():
            method = request.get("method") if isinstance(request, dict) else None
            if method not in INPUT_METHODS:
                raise GatewayError(
                    types.INTERNAL_ERROR,
                    f"MCP server {server!r} asked for an unknown kind of input: {method!r}",
                )
            params = request.get("params")
            responses[key] = await relay.request(
                str(method), dict(params) if isinstance(params, dict) else {}, server
            )
        if responses:
            quiet = 0
        else:
            await anyio.sleep(_STATE_ONLY_DELAYS[min(quiet, len(_STATE_ONLY_DELAYS) - 1)])
            quiet += 1
        resume: dict[str, Any] = {"inputResponses": responses} if responses else {}
        if "requestState" in result:
            resume["requestState"] = result["requestState"]
        result = await retry(resume)
    if input_required(result):
        raise GatewayError(
            types.INTERNAL_ERROR,
            f"MCP server {server!r} still asked for input after {MAX_INPUT_ROUNDS} rounds",
        )
    return result
