"""The official a2a-sdk as a client of the hub over its HTTP+JSON (REST) transport.

    python sdk_rest_client.py URL VERSION        (VERSION: 1.0 or 0.3)

Same NDJSON commands and answers as sdk_client.py (whose `run` it reuses); only the transport
differs: the card's interfaces are cut down to HTTP+JSON of VERSION, and the client factory is
told to use HTTP+JSON, so the SDK picks `RestTransport` (1.0) or `CompatRestTransport` (0.3).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import httpx
from a2a.client.card_resolver import A2ACardResolver
from sdk_client import run

from a2a.client import ClientConfig, ClientFactory

REST = "HTTP+JSON"


async def main() -> None:
    url, version = sys.argv[1], sys.argv[2]
    headers = {"A2A-Version": version}
    if os.environ.get("A2A_BEARER"):  # an API key for a hub that requires one
        headers["Authorization"] = f"Bearer {os.environ['A2A_BEARER']}"
    http = httpx.AsyncClient(timeout=30, headers=headers)
    card = await A2ACardResolver(http, url).get_agent_card()
    kept = [
        i
        for i in card.supported_interfaces
        if i.protocol_version.startswith(version) and i.protocol_binding == REST
    ]
    if not kept:
        print(json.dumps({"error": f"the card offers no {REST} {version} interface"}), flush=True)
        return
    del card.supported_interfaces[:]
    card.supported_interfaces.extend(kept)

    def factory(streaming: bool) -> Any:
        config = ClientConfig(
            httpx_client=http, streaming=streaming, supported_protocol_bindings=[REST]
        )
        return ClientFactory(config).create(card)

    client, plain = factory(True), factory(False)
    transport = type(getattr(client, "_transport", None)).__name__
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ok": "ready", "transport": transport}), flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        try:
            result = await run(command, client, plain, card)
            out: dict[str, Any] = {"ok": result}
        except Exception as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
            if hasattr(exc, "code"):
                out["code"] = exc.code
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
