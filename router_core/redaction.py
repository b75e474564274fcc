"""Secrets out of URLs before they are shown: `/admin/backends`, `junction backends`, logs.

A backend URL may carry its credentials (`https://user:password@host/v1`, `...?api_key=...`);
state reports show where a backend is, never how to log in to it. This is the one copy of the
rule: router_core imports nothing of Junction's, and Junction's CLI can import it from here.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_url", "redact_urls"]

REDACTED = "***"

_SECRET_PARAM = re.compile(r"key|token|secret|passw|auth|signature|^sig$|credential", re.IGNORECASE)
"""Query parameter names whose values are credentials (`api_key`, `access_token`, `sig`...)."""
_URL = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with its password (or a user name standing alone, which is usually a token) and
    the values of credential-like query parameters replaced by `***`; unchanged otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        host = netloc.rpartition("@")[2]
        if parts.password is not None:
            netloc = f"{parts.username or ''}:{REDACTED}@{host}"
        else:
            netloc = f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAM.search(name) for name, _ in pairs):
            query = urlencode(
                [
                    (name, REDACTED if _SECRET_PARAM.search(name) else value)
                    for name, value in pairs
                ],
                safe="*",
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def redact_urls(text: str) -> str:
    """Every http(s) URL inside `text` (an error message quoting one) passed through
    `redact_url`."""
    if "://" not in text:
        return text
    return _URL.sub(lambda match: redact_url(match.group(0)), text)
