"""Route matching that costs the same for the last route as for the first.

Starlette's router tries every route's regex in order until one matches: serve mode has ~80
routes (the A2A bindings for two versions under two prefixes, the OpenAI surface, ACP, admin)
and `/mcp` is last, so a `/v1/chat/completions` or `/mcp` request paid ~30 µs of failed
matches. `IndexedRouter` tries only the routes that can match the path's first segment, in
their original order, and leaves every other case (405s, slash redirects, 404s) to Starlette's
own algorithm, so what answers a request never changes.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException, WebSocketException
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Host, Match, Mount, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

_ANY = "\0any"
"""The index key of routes that may match any first segment (a `Mount("")`, a host route, a
parameter in the first segment)."""


_MATCHED = frozenset({"http", "websocket"})


def _route_path(scope: Scope) -> str:
    """The path the routes match against: Starlette's `get_route_path`, which is private."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


def _first_segment(path: str) -> str:
    return path[1:].partition("/")[0]


def _segment_of(route: BaseRoute) -> str:
    """The literal first segment a path must have for `route` to match it, or `_ANY`."""
    if isinstance(route, Route | WebSocketRoute | Mount) and not isinstance(route, Host):
        path = route.path
        if not path:  # Mount(""): everything
            return _ANY
        segment = _first_segment(path)
        return _ANY if "{" in segment else segment
    return _ANY


class IndexedRouter(Router):
    """A Starlette `Router` that finds a full match among the routes for the request's first
    path segment only (the first full match in route order, as Starlette's would be).

    It also answers the `HTTPException` (a 404, a 405, a handler's own) and `WebSocketException`
    that reach it as Starlette's `ExceptionMiddleware` would, so an app built on it can leave
    that middleware, and the two send wrappers per request it and `ServerErrorMiddleware` cost,
    out of its stack (`junction.http.app`; the ASGI server answers an unhandled error 500)."""

    _index: dict[str, tuple[BaseRoute, ...]]
    _indexed: tuple[int, int] = (0, -1)

    def _candidates(self, path: str) -> tuple[BaseRoute, ...]:
        routes = self.routes
        if self._indexed != (id(routes), len(routes)):  # built, or changed since
            by_segment: dict[str, list[BaseRoute]] = {}
            for route in routes:
                by_segment.setdefault(_segment_of(route), [])
            wildcard = [route for route in routes if _segment_of(route) == _ANY]
            for segment in by_segment:
                by_segment[segment] = [
                    route for route in routes if _segment_of(route) in (segment, _ANY)
                ]
            by_segment[_ANY] = wildcard
            self._index = {segment: tuple(group) for segment, group in by_segment.items()}
            self._indexed = (id(routes), len(routes))
        index = self._index
        return index.get(_first_segment(path)) or index.get(_ANY, ())

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if scope["type"] in _MATCHED:
                for route in self._candidates(_route_path(scope)):
                    match, child_scope = route.matches(scope)
                    if match is Match.FULL:
                        scope.setdefault("router", self)
                        scope["route"] = route
                        scope.update(child_scope)
                        await route.handle(scope, receive, send)
                        return
            await super().app(scope, receive, send)  # partial matches, redirects, 404, lifespan
        except HTTPException as exc:  # after a response started, sending this one fails loudly
            await _http_error(exc)(scope, receive, send)
        except WebSocketException as exc:
            await WebSocket(scope, receive, send).close(code=exc.code, reason=exc.reason)


def _http_error(exc: HTTPException) -> Response:
    """The response Starlette's `ExceptionMiddleware` gives an `HTTPException`."""
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


__all__ = ["IndexedRouter"]
