"""`redact_url` / `redact_urls` are the project's one redaction rule (a2a uses it too), so they
clean what a parse-based rewrite missed: URLs that do not parse, fragments, any scheme, nested
URLs, and literal secrets (header values) quoted in an error text."""

from __future__ import annotations

import pytest

from router_core import redact_url, redact_urls


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # unparsable (urlsplit raises): the password still goes
        ("http://u:pw@[::1/x", "http://u:***@[::1/x"),
        ("http://u:pw@[::1/x?token=t", "http://u:***@[::1/x?token=***"),
        # fragments (OAuth implicit flow) and path parameters
        ("http://h/cb#access_token=t&state=1", "http://h/cb#access_token=***&state=1"),
        ("http://h/a;jsessionid=abc", "http://h/a;jsessionid=***"),
        # any scheme, userinfo and parameters alike
        ("wss://u:pw@h/ws?key=k", "wss://u:***@h/ws?key=***"),
        ("ws://tok123@h/", "ws://***@h/"),
        ("ftp://u:pw@x/?sig=abc", "ftp://u:***@x/?sig=***"),
        ("jdbc:postgresql://u:pw@db/app", "jdbc:postgresql://u:***@db/app"),
        ("//u:pw@h/x", "//u:***@h/x"),
        # a password holding '@', a path holding '@'
        ("http://u:p@ss@host/p@q", "http://u:***@host/p@q"),
        # a URL nested in another keeps none of its secrets either
        (
            "http://u:pw@h/login?next=https://v:pw2@i/",
            "http://u:***@h/login?next=https://v:***@i/",
        ),
        # names percent-encoded, or spelled in other common ways
        (
            "http://h/?api%5Fkey=k&X-Amz-Signature=s&pwd=p",
            "http://h/?api%5Fkey=***&X-Amz-Signature=***&pwd=***",
        ),
        # nothing else is re-encoded
        ("http://h/?q=a%20b+c&token=t", "http://h/?q=a%20b+c&token=***"),
        ("http://h/?token=", "http://h/?token="),
    ],
)
def test_redact_url_without_a_parse(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_urls_finds_every_scheme_in_text() -> None:
    text = "refused ws://u:pw@h/x and 'wss://h/?access_token=abc', then ftp://tok@f/"
    assert redact_urls(text) == (
        "refused ws://u:***@h/x and 'wss://h/?access_token=***', then ftp://***@f/"
    )


def test_redact_urls_replaces_literal_secrets() -> None:
    text = "refused: 'ftp://u:pw@x/?sig=abc' after Bearer tok-123456 and tok-123456"
    assert (
        redact_urls(text, ["Bearer tok-123456"])
        == "refused: 'ftp://u:***@x/?sig=***' after *** and ***"
    )
    # a secret too short to replace safely is left alone
    assert redact_urls("a b c", ["a"]) == "a b c"
