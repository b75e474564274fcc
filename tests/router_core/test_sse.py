"""The project's one SSE decoder has a public home: `router_core.SseParser` (its own module,
no aiohttp), still importable where the backends and earlier callers found it."""

from __future__ import annotations

import subprocess
import sys

import router_core
from router_core.backends.base import SseParser as BaseSseParser
from router_core.sse import SseEvent, SseParser


def test_one_parser_under_every_name() -> None:
    assert router_core.SseParser is SseParser is BaseSseParser
    assert router_core.SseEvent is SseEvent
    parser = router_core.SseParser()
    assert parser.feed(b"event: e\ndata: x\n\n") == [SseEvent(b"x", "e")]


def test_importing_the_parser_does_not_load_aiohttp() -> None:
    code = (
        "import sys, router_core; router_core.SseParser;"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
