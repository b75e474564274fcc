"""`IndexedRouter` answers every request with the route Starlette's own router would pick."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from junction.http.routing import IndexedRouter


class _named:
    """An ASGI endpoint that answers its own name."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": self.name.encode()})


def _routes() -> list[BaseRoute]:
    # Order matters: a parameter in the first segment and a Mount("") must be tried where
    # they stand, before or after the literal routes of any segment.
    return [
        Route("/a/{x}", _named("a-param"), methods=["GET"]),
        Route("/{any}/b", _named("any-b"), methods=["POST"]),
        Route("/a/b", _named("a-b-post"), methods=["POST", "PUT"]),
        Mount("/m", app=_named("mount-m")),
        Route("/a/b", _named("a-b-get"), methods=["GET", "DELETE"]),
        Route("/c/", _named("c-slash"), methods=["GET"]),
        Route("/", _named("root"), methods=["GET"]),
        Route("/v1/{rest:path}", _named("v1-rest"), methods=["GET", "POST"]),
        Mount("/x", app=_named("mount-x")),
        Mount("", app=_named("everything-else")),
    ]


async def _answer(router: Router, method: str, path: str, root: str) -> tuple[int, bytes, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": root + path,
        "root_path": root,
        "raw_path": (root + path).encode(),
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "scheme": "http",
        "server": ("test", 80),
    }
    await router(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = dict(next(m for m in sent if m["type"] == "http.response.start")["headers"])
    return status, body, headers.get(b"location")


def test_the_same_route_answers_as_with_starlettes_router() -> None:
    paths = ["/a/b", "/a/c", "/q/b", "/m", "/m/deep/er", "/c", "/c/", "/", "/v1/chat", "/v1",
             "/x/y", "/nothing", "/a", "/a/b/", "/mm", "/%2Fa/b", "//a/b", "/a//b", ""]  # fmt: skip
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    plain, indexed = Router(_routes()), IndexedRouter(_routes())
    compared = 0
    for method, path, root in itertools.product(methods, paths, ["", "/api"]):
        if not path and not root:
            continue
        expected = asyncio.run(_answer(plain, method, path, root))
        assert asyncio.run(_answer(indexed, method, path, root)) == expected, (method, root, path)
        compared += 1
    assert compared > 150


def test_a_route_added_after_the_first_request_is_found() -> None:
    router = IndexedRouter([Route("/a", _named("a"), methods=["GET"])])
    assert asyncio.run(_answer(router, "GET", "/a", ""))[1] == b"a"
    router.routes.insert(0, Route("/late", _named("late"), methods=["GET"]))
    assert asyncio.run(_answer(router, "GET", "/late", ""))[1] == b"late"


def test_http_errors_are_answered_as_starlettes_exception_middleware_would() -> None:
    """Serve mode's app has no `ExceptionMiddleware` (`junction.http.app._App`): a 404, a 405 and
    a handler's own `HTTPException` reach the client as they did with it."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from junction.http.app import _App

    async def teapot(request: Request) -> None:
        raise HTTPException(418, "short and stout", headers={"x-pot": "tea"})

    async def gone(request: Request) -> None:
        raise HTTPException(304)

    def routes() -> list[BaseRoute]:
        return [
            Route("/only-get", _named("get"), methods=["GET"]),
            Route("/teapot", teapot),
            Route("/gone", gone),
        ]

    ours = _App()
    ours.router = IndexedRouter(routes())
    theirs = Starlette(routes=routes())

    async def answer(app: Any, method: str, path: str) -> tuple[int, bytes, list[Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": method, "path": path, "root_path": "",
                 "raw_path": path.encode(), "query_string": b"", "headers": [(b"host", b"t")],
                 "scheme": "http", "server": ("t", 80)}  # fmt: skip
        await app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return start["status"], body, sorted(start["headers"])

    cases = [("POST", "/only-get"), ("GET", "/nowhere"), ("GET", "/teapot"), ("GET", "/gone")]
    seen = []
    for method, path in cases:
        expected = asyncio.run(answer(theirs, method, path))
        assert asyncio.run(answer(ours, method, path)) == expected, (method, path)
        seen.append(expected[0])
    assert seen == [405, 404, 418, 304]
