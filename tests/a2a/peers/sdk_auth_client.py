"""The official a2a-sdk as a client that authenticates the way a card says: its
`AuthInterceptor` picks, for the card's security requirements, the credentials a
`CredentialService` holds by scheme name.

    python sdk_auth_client.py URL VERSION

Environment: `CARD_KEY` (an API key to read the card with; unset, the public card is read
without a credential, as a client that has yet to learn the schemes does), `CREDENTIALS`
(JSON: scheme name -> credential), `TEXT` (what to send).
Prints one JSON line: {"schemes": {...}, "requirements": [...], "events": [...]} or with
"error" in place of "events", then exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import httpx
from a2a.client.auth import AuthInterceptor, InMemoryContextCredentialStore
from a2a.client.card_resolver import A2ACardResolver
from a2a.client.client import ClientCallContext
from a2a.types.a2a_pb2 import Message, SendMessageRequest
from google.protobuf.json_format import MessageToDict

from a2a.client import ClientConfig, ClientFactory


async def main() -> None:
    url, version = sys.argv[1], sys.argv[2]
    reader = {"A2A-Version": version}
    if os.environ.get("CARD_KEY"):
        reader["Authorization"] = f"Bearer {os.environ['CARD_KEY']}"
    async with httpx.AsyncClient(timeout=30, headers=reader) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
    kept = [i for i in card.supported_interfaces if i.protocol_version.startswith(version)]
    del card.supported_interfaces[:]
    card.supported_interfaces.extend(kept)
    store = InMemoryContextCredentialStore()
    for scheme, credential in json.loads(os.environ.get("CREDENTIALS") or "{}").items():
        await store.set_credentials("session", scheme, credential)
    out: dict[str, Any] = {
        "schemes": {name: MessageToDict(s) for name, s in card.security_schemes.items()},
        "requirements": [MessageToDict(r) for r in card.security_requirements],
    }
    # No credentials of its own: only what the interceptor adds from the card is sent.
    async with httpx.AsyncClient(timeout=30, headers={"A2A-Version": version}) as http:
        config = ClientConfig(httpx_client=http, streaming=False)
        client = ClientFactory(config).create(card, [AuthInterceptor(store)])
        message = Message(message_id=str(uuid.uuid4()), role="ROLE_USER")
        message.parts.add(text=os.environ.get("TEXT", "echo hello"))
        context = ClientCallContext(state={"sessionId": "session"})
        try:
            events = [
                MessageToDict(event)
                async for event in client.send_message(
                    SendMessageRequest(message=message), context=context
                )
            ]
            out["events"] = events
        except Exception as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
