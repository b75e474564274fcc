"""The server-to-client side of an upstream session: what its server asks and logs.

Kept apart from the connection's supervision (`upstream.py`); `Upstream` inherits it. The SDK
calls these as the session's sampling, elicitation, roots and logging callbacks; each finds
the relay of the call the message belongs to (`relay.py`), or the one client outside every
call, and hands it on. The client's progress on such a request goes back to the server
under the server's own token; the client's roots changes reach the server too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, TypeAdapter, ValidationError

from mcp_gateway.errors import GatewayError
from mcp_gateway.relay import ASKED_PROGRESS, CURRENT, SERVER_META_KEY, HomeFn, InFlight, Relay
from mcp_gateway.specs import StdioUpstream, UpstreamSpec

log = logging.getLogger("mcp_gateway.upstream")

MAX_URL_ELICITATIONS = 1024
"""URL elicitations remembered per upstream, to route their `elicitation/complete`."""

NotifyFn = Callable[[str, str, dict[str, Any]], None]
"""Told of an upstream notification no call claims: (upstream name, method, params)."""

_SAMPLING_RESULT: TypeAdapter[types.CreateMessageResult | types.CreateMessageResultWithTools] = (
    TypeAdapter(types.CreateMessageResult | types.CreateMessageResultWithTools)
)


class ServerAsks:
    """Relays an upstream server's requests and log messages to the callers of its calls."""

    name: str
    spec: UpstreamSpec
    _calls: InFlight
    _url_elicitations: dict[str, Relay]
    _on_notify: NotifyFn | None
    _home: HomeFn | None
    _client: Client | None
    _twin: ServerAsks | None
    _parent: ServerAsks | None
    _watched: set[str]
    _watch_changed: anyio.Event

    async def _elicit_complete(self, params: types.ElicitCompleteNotificationParams) -> None:
        relay = self._url_elicitations.pop(params.elicitation_id, None)
        if relay is not None:
            await relay.notify("notifications/elicitation/complete", dump(params))

    def _relay(self) -> Relay | None:
        """The relay of the call a server-to-client message belongs to (see `relay.py`)."""
        relay = CURRENT.get()
        if relay is not None:
            return relay
        if isinstance(self.spec, StdioUpstream) or self.spec.transport == "sse":
            return self._calls.sole()
        return None  # Streamable HTTP: a message off every call's stream belongs to none

    def _answerer(self) -> Relay | None:
        """Who answers a request of this server: the caller of its call, else (outside every
        call, or a call whose caller answers nothing) the one client, when there is one."""
        relay = self._relay()
        if relay is not None and relay.on_request is not None:
            return relay
        owner = self._parent or self
        home = owner._home() if owner._home is not None else None
        return home or relay

    async def _ask(
        self, method: str, params: BaseModel | None, context: ClientRequestContext
    ) -> dict[str, Any] | types.ErrorData:
        raw = dump(params) if params is not None else {}
        token = (context.meta or {}).get("progress_token")
        if token is not None and "_meta" not in raw:
            raw["_meta"] = {"progressToken": token}
        relay = self._answerer()
        if relay is None:
            reason = (
                "the calls in flight are several callers'"
                if self._calls
                else "it came outside every client request, and no single client is there to"
                " answer it (several may share this server)"
            )
            log.debug("upstream %s: refused %s (%s)", self.name, method, reason)
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"{method}: {reason}")
        if method == "elicitation/create" and raw.get("mode") == "url":
            elicitation = raw.get("elicitationId")
            if isinstance(elicitation, str):
                if len(self._url_elicitations) >= MAX_URL_ELICITATIONS:
                    del self._url_elicitations[next(iter(self._url_elicitations))]
                self._url_elicitations[elicitation] = relay
        back = ASKED_PROGRESS.set(_progress_to(context, token) if token is not None else None)
        try:
            return await relay.request(method, raw, self.name)
        except GatewayError as exc:
            return types.ErrorData(code=exc.code, message=exc.message, data=exc.data)
        finally:
            ASKED_PROGRESS.reset(back)

    async def _sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        answer = await self._ask("sampling/createMessage", params, context)
        return _typed(answer, _SAMPLING_RESULT.validate_python, "sampling/createMessage")

    async def _elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        answer = await self._ask("elicitation/create", params, context)
        return _typed(answer, types.ElicitResult.model_validate, "elicitation/create")

    async def _roots(
        self, context: ClientRequestContext
    ) -> types.ListRootsResult | types.ErrorData:
        answer = await self._ask("roots/list", None, context)
        return _typed(answer, types.ListRootsResult.model_validate, "roots/list")

    async def roots_changed(self) -> None:
        """Tell the server its client's roots changed (`notifications/roots/list_changed`;
        Junction declares `roots.listChanged` to every server), so it asks `roots/list`
        again. A 2026-07-28 server has no session to tell: it gets roots per request."""
        for upstream in (self, self._twin):
            client = upstream._client if upstream is not None else None
            if client is None or client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                continue
            try:
                await client.session.send_notification(types.RootsListChangedNotification())
            except Exception as exc:  # a server gone meanwhile reconnects and asks anew
                log.debug("upstream %s: could not send roots/list_changed: %r", self.name, exc)

    async def _log(self, params: types.LoggingMessageNotificationParams) -> None:
        """`notifications/message`: to the caller whose call it came with, else to everyone
        listening; tagged with this server's name in `_meta`."""
        raw = dump(params)
        raw["_meta"] = {**(raw.get("_meta") or {}), SERVER_META_KEY: self.name}
        relay = self._relay()
        if relay is not None:
            await relay.notify("notifications/message", raw)
        elif self._on_notify is not None:
            self._on_notify(self.name, "notifications/message", raw)

    def watch(self, uri: str, on: bool) -> None:
        """Watch (or stop watching) a resource of a 2026-07-28 server for updates, which it
        sends on a listen stream naming the URIs (`_watch_resources`)."""
        before = len(self._watched)
        (self._watched.add if on else self._watched.discard)(uri)
        if len(self._watched) != before:
            self._watch_changed.set()

    async def _watch_resources(self, client: Client) -> None:
        """One listen stream with the watched URIs, reopened whenever they change; each
        `ResourceUpdated` goes out as `notifications/resources/updated`."""
        while True:
            changed = self._watch_changed = anyio.Event()
            uris = sorted(self._watched)
            if not uris:
                await changed.wait()
                continue
            try:
                async with (
                    client.listen(resource_subscriptions=uris) as stream,
                    anyio.create_task_group() as tg,
                ):
                    tg.start_soon(_cancel_when, changed, tg.cancel_scope)
                    async for event in stream:
                        uri = getattr(event, "uri", None)
                        if isinstance(uri, str) and self._on_notify is not None:
                            self._on_notify(
                                self.name, "notifications/resources/updated", {"uri": uri}
                            )
                    tg.cancel_scope.cancel()
            except Exception as exc:
                log.debug("upstream %s: resource listen stream ended: %s", self.name, exc)
            if not changed.is_set():
                with anyio.move_on_after(1.0):  # ended by the server: again, but never spinning
                    await changed.wait()


async def _cancel_when(event: anyio.Event, scope: anyio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


def _progress_to(context: ClientRequestContext, token: types.ProgressToken) -> ProgressFnT:
    """Sends the client's progress on a relayed request to the server that asked, under the
    token it gave."""

    async def back(progress: float, total: float | None, message: str | None) -> None:
        params = types.ProgressNotificationParams(
            progress_token=token, progress=progress, total=total, message=message
        )
        await context.session.send_notification(types.ProgressNotification(params=params))

    return back


def dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


_T = TypeVar("_T")


def _typed(
    answer: dict[str, Any] | types.ErrorData, parse: Callable[[Any], _T], method: str
) -> _T | types.ErrorData:
    """The caller's answer as the SDK's callback must return it (an error stays an error)."""
    if isinstance(answer, types.ErrorData):
        return answer
    try:
        return parse(answer)
    except ValidationError as exc:
        first = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        return types.ErrorData(
            code=types.INTERNAL_ERROR, message=f"the client's {method} answer is invalid: {first}"
        )
