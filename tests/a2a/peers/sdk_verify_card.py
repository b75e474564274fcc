"""Verify a card's signature with the official a2a-sdk (a2a.utils.signing), as a client would.

    python sdk_verify_card.py CARD_URL

Fetches the card (`A2A-Version: 1.0`; with `Authorization: Bearer $CARD_KEY` when that is
set, for an extended card), reads it into the SDK's AgentCard, and checks its signatures with
the SDK's verifier, the key taken from the signature's `jku` and `kid` (fetched without a
credential). Prints `VERIFIED` or `INVALID <reason>`.
"""

from __future__ import annotations

import os
import sys

import httpx
from a2a.types.a2a_pb2 import AgentCard
from a2a.utils.signing import SignatureVerificationError, create_signature_verifier
from google.protobuf.json_format import ParseDict
from jwt.api_jwk import PyJWK, PyJWKSet


def key_provider(kid: str | None, jku: str | None) -> PyJWK:
    if not jku:
        raise SignatureVerificationError("no jku")
    keys = PyJWKSet.from_dict(httpx.get(jku, timeout=10).json())
    for key in keys.keys:
        if key.key_id == kid:
            return key
    raise SignatureVerificationError(f"no key {kid} at {jku}")


def main() -> None:
    headers = {"A2A-Version": "1.0"}
    if os.environ.get("CARD_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['CARD_KEY']}"
    response = httpx.get(sys.argv[1], headers=headers, timeout=10)
    response.raise_for_status()
    card = ParseDict(response.json(), AgentCard(), ignore_unknown_fields=True)
    verify = create_signature_verifier(key_provider, ["ES256", "RS256", "EdDSA"])
    try:
        verify(card)
    except SignatureVerificationError as exc:
        print(f"INVALID {exc}")
        return
    print("VERIFIED")


if __name__ == "__main__":
    main()
