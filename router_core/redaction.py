"""Secrets out of URLs and error texts before they are shown: `/admin/backends`,
`junction backends`, the hub's agent states, logs.

A URL may carry its credentials (`https://user:password@host/v1`, `...?api_key=...`,
`#access_token=...`); what Junction shows says where something is, never how to log in to it.
The rewriting is textual, not a parse and a re-serialisation: a URL too malformed to parse
(`http://u:pw@[::1/x`) is cleaned all the same, any scheme counts (ws, wss, ftp, jdbc:...), and
everything but the secrets is left byte for byte. This is the one copy of the rule: router_core
imports nothing of Junction's, so every other package can import it from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "redact_url", "redact_urls"]

REDACTED = "***"

MIN_SECRET_LENGTH = 4
"""Shortest literal secret `redact_urls` replaces: replacing "a" everywhere would garble the text."""

_USERINFO = re.compile(r"(?P<scheme>^//|[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s]*)@")
"""The authority's userinfo (up to its last `@`, since a password may hold one)."""
_PARAM = re.compile(r"(?P<lead>[?&;#](?P<name>[^=&;#\s]*)=)(?P<value>[^&;#\s]*)")
"""A `name=value` parameter in the query, a fragment or a path's `;` parameters."""
_SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session", re.I)
"""Parameter names whose values are credentials (`api_key`, `access_token`, `X-Amz-Signature`)."""
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match["info"].partition(":")
    # A lone user name is usually the token itself (https://<token>@host).
    shown = f"{user}:{REDACTED}" if colon else REDACTED
    return f"{match['scheme']}{shown}@"


def _param(match: re.Match[str]) -> str:
    if match["value"] and _SECRET_NAME.search(unquote_plus(match["name"])):
        return f"{match['lead']}{REDACTED}"
    return match.group(0)


def redact_url(url: str) -> str:
    """`url` with its password (or a user name standing alone, which is usually a token) and
    the values of query, fragment or `;` parameters named like credentials replaced by `***`;
    the rest unchanged, whether or not the URL parses."""
    return _PARAM.sub(_param, _USERINFO.sub(_userinfo, url))


def redact_urls(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` (an error message quoting URLs, say) with every `scheme://` URL in it passed
    through `redact_url`, and each literal secret given (a header value) replaced by `***`,
    as is the credential alone after a scheme word (`tok` of `Bearer tok`)."""
    literals: set[str] = set()
    for secret in secrets:
        literals.add(secret)
        literals.add(secret.rpartition(" ")[2])
    for literal in sorted(literals, key=len, reverse=True):
        if len(literal) >= MIN_SECRET_LENGTH:
            text = text.replace(literal, REDACTED)
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
