"""The 2026 stable features driven by the official ACP Python SDK client, in its own venv.

    python sdk_features.py SPEC.json      (prints one JSON report on stdout)

SPEC: {"agent": [argv...], "workdir": DIR, "cwd": DIR, "steps": [...]}; each step is one of
  {"do": "initialize", "boolean": bool, "elicitation": ["form", ...]}
  {"do": "new"} | {"do": "load", "session": ID}
  {"do": "set", "id": OPTION, "value": str | bool}
  {"do": "prompt", "text": TEXT}
  {"do": "logout"} | {"do": "authenticate", "method": ID}
and "answers": what the person answers to each elicitation in turn ({"accept": {...}} or
"decline"). The report holds each step's result (or error) and every elicitation received.
The SDK validates every message it gets against its own schema, so a shape it does not accept
fails the step.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from acp.stdio import spawn_agent_process

from acp import text_block
from acp.schema import (
    AllowedOutcome,
    BooleanConfigOptionCapabilities,
    ClientCapabilities,
    ClientSessionCapabilities,
    ElicitationCapabilities,
    ElicitationFormCapabilities,
    ElicitationUrlCapabilities,
    RequestPermissionResponse,
    SessionConfigOptionsCapabilities,
)


def dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


class Ide:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = list(answers)
        self.elicitations: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []

    async def request_permission(
        self, session_id: str, tool_call: Any, options: Any, **kw: Any
    ) -> Any:
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id="allow_once")
        )

    async def session_update(self, session_id: str, update: Any, **kw: Any) -> None:
        self.updates.append(dump(update))

    async def create_elicitation(self, message: str, mode: Any, **kw: Any) -> Any:
        # The SDK hands over the request as a mode object (form or URL, session or request).
        self.elicitations.append({"message": message, "kind": type(mode).__name__, **dump(mode)})
        answer = self.answers.pop(0) if self.answers else "cancel"
        if isinstance(answer, dict):
            return {"action": "accept", "content": answer["accept"]}
        return {"action": answer}

    def on_connect(self, conn: Any) -> None:
        pass


def capabilities(step: dict[str, Any]) -> ClientCapabilities:
    session = None
    if step.get("boolean"):
        session = ClientSessionCapabilities(
            config_options=SessionConfigOptionsCapabilities(
                boolean=BooleanConfigOptionCapabilities()
            )
        )
    modes = step.get("elicitation") or []
    elicitation = None
    if modes:
        elicitation = ElicitationCapabilities(
            form=ElicitationFormCapabilities() if "form" in modes else None,
            url=ElicitationUrlCapabilities() if "url" in modes else None,
        )
    return ClientCapabilities(session=session, elicitation=elicitation)


async def step(conn: Any, ide: Ide, spec: dict[str, Any], state: dict[str, Any]) -> Any:
    action = spec["do"]
    if action == "initialize":
        return dump(
            await conn.initialize(protocol_version=1, client_capabilities=capabilities(spec))
        )
    if action == "new":
        response = await conn.new_session(cwd=state["cwd"], mcp_servers=[])
        state["session"] = response.session_id
        return dump(response)
    if action == "load":
        state["session"] = spec["session"]
        return dump(
            await conn.load_session(cwd=state["cwd"], session_id=spec["session"], mcp_servers=[])
        )
    if action == "set":
        return dump(
            await conn.set_config_option(
                config_id=spec["id"], session_id=state["session"], value=spec["value"]
            )
        )
    if action == "prompt":
        before = len(ide.updates)
        response = await conn.prompt(session_id=state["session"], prompt=[text_block(spec["text"])])
        return {**dump(response), "updates": ide.updates[before:]}
    if action == "logout":  # the SDK's client has no logout() yet: its connection sends it
        return await conn._conn.send_request("logout", {})
    if action == "authenticate":
        return dump(await conn.authenticate(method_id=spec["method"]))
    raise ValueError(f"unknown step {action!r}")


async def main() -> None:
    spec = json.loads(await asyncio.to_thread(Path(sys.argv[1]).read_text))
    ide = Ide(spec.get("answers", []))
    command, *args = spec["agent"]
    results: list[Any] = []
    state: dict[str, Any] = {"cwd": spec["cwd"]}
    # SDK 0.12.1 still files elicitation under its unstable protocol (the spec made it stable
    # on 2026-07-24); without this flag it answers elicitation/create with -32601.
    async with spawn_agent_process(
        ide, command, *args, cwd=spec.get("workdir"), use_unstable_protocol=True
    ) as (conn, _):
        for item in spec["steps"]:
            try:
                results.append({"ok": await asyncio.wait_for(step(conn, ide, item, state), 60)})
            except Exception as exc:  # the report says which step failed and how
                results.append({"error": f"{type(exc).__name__}: {exc}"})
    print(json.dumps({"results": results, "elicitations": ide.elicitations}))


if __name__ == "__main__":
    asyncio.run(main())
