"""Secrets kept out of what the hub shows about its agents.

An agent's URL may carry credentials (`https://user:pass@host`, `?api_key=...`) and its
configured headers are usually credentials; both can also surface inside an error text (a
refused redirect quotes its URL). `RegisteredAgent.summary()` and `state()`, which
`/admin/a2a/agents`, `/health`, hub errors and `junction agents` show, pass through here.
The rewriting is textual, so a URL too malformed to parse is still cleaned.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "***"

#: Shortest literal secret replaced in text: replacing "a" everywhere would garble the message.
MIN_SECRET_LENGTH = 4

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#\s]*)@")
_PARAM = re.compile(r"(?P<lead>[?&;#](?P<name>[^=&;#\s]*)=)(?P<value>[^&;#\s]*)")
_SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session", re.I)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _userinfo(match: re.Match[str]) -> str:
    user, colon, _password = match["info"].partition(":")
    # A lone user name is often the token itself (https://<token>@host).
    shown = f"{user}:{REDACTED}" if colon else REDACTED
    return f"{match['scheme']}{shown}@"


def _param(match: re.Match[str]) -> str:
    if match["value"] and _SECRET_NAME.search(match["name"]):
        return f"{match['lead']}{REDACTED}"
    return match.group(0)


def redact_url(url: str) -> str:
    """`url` with its userinfo password (or a lone user name) and the values of query or
    fragment parameters named like secrets (`api_key`, `token`, `sig`, ...) replaced by `***`,
    the rest unchanged."""
    return _PARAM.sub(_param, _USERINFO.sub(_userinfo, url, count=1))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every URL in it redacted (`redact_url`) and each literal secret (and the
    credential after a scheme word, as in `Bearer <token>`) replaced by `***`."""
    literals: set[str] = set()
    for secret in secrets:
        literals.add(secret)
        literals.add(secret.rpartition(" ")[2])
    for literal in sorted(literals, key=len, reverse=True):
        if len(literal) >= MIN_SECRET_LENGTH:
            text = text.replace(literal, REDACTED)
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
