"""`junction agents` and the hub built from configuration."""

from __future__ import annotations

import json

import pytest

from junction.build import agent_specs, build_hub
from junction.cli.inspect import agents_command
from junction.config import JunctionConfig
from tests.a2a.harness import free_port, sdk_agent


def test_agents_command_shows_skills_and_state(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with sdk_agent("lister", "0.3", ("translate:lang,text",)) as url:
        config = JunctionConfig.model_validate(
            {
                "a2a_agents": {"lister": {"url": url}, "gone": {"url": dead}},
                "store": {"url": f"sqlite:///{tmp_path}/j.db"},
            }
        )
        assert agent_specs(config)["lister"].url.startswith("http://127.0.0.1")
        status = agents_command(config, as_json=True)
    out = json.loads(capsys.readouterr().out)
    agents = {a["name"]: a for a in out["agents"]}
    assert agents["lister"]["state"] == "ready"
    assert agents["lister"]["version"] == "0.3"
    assert agents["lister"]["skills"] == [
        {"id": "translate", "name": "translate", "tags": ["lang", "text"]}
    ]
    assert agents["gone"]["state"].startswith("error: card fetch failed")
    assert status == 1
    with sdk_agent("lister", "1.0") as url:
        config = JunctionConfig.model_validate({"a2a_agents": {"lister": {"url": url}}})
        assert agents_command(config, as_json=False) == 0
    assert "lister" in capsys.readouterr().out
    hub = build_hub(JunctionConfig.model_validate({"store": {"url": f"sqlite:///{tmp_path}/k.db"}}))
    assert {getattr(r, "path", "") for r in hub.routes()} >= {
        "/a2a",
        "/.well-known/agent-card.json",
    }
