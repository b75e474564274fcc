"""Config sections are the packages' own settings models: a `backends:` entry is router_core's
`BackendSpec` (named by its key), an `a2a_agents:` entry a2a's `AgentSpec`; URLs are shown
through router_core's `redact_url`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from a2a.settings import AgentSpec
from junction.build import agent_specs
from junction.config import ConfigError, JunctionConfig, load_config
from router_core import BackendSpec

YAML = """\
backends:
  cloud: {type: openai, url: "https://api.example.com/v1", api_key: sk-1, weight: 2}
  local: {type: ollama, url: "http://127.0.0.1:11434", models: [llama3.2]}
a2a_agents:
  writer: {url: "http://127.0.0.1:9001", headers: {X-Api-Key: k}, mcp_tool: skills}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "junction.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_backends_are_router_core_specs_named_by_their_keys(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, YAML), {})
    for name, backend in config.backends.items():
        assert isinstance(backend, BackendSpec)
        assert backend.name == name
    assert config.backends["cloud"].weight == 2
    assert config.backends["local"].models == ["llama3.2"]


def test_a_dumped_config_validates_again(tmp_path: Path) -> None:
    """The name comes from the key, so a dump (what `replace_config` callers edit) has none."""
    config = load_config(write(tmp_path, YAML), {})
    data = config.model_dump()
    assert "name" not in data["backends"]["cloud"]
    assert JunctionConfig.model_validate(data) == config


def test_a_name_written_in_a_backend_entry_is_an_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'backends: {b: {type: openai, url: "http://h", name: other}}\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.lines == [
        f"{path}: backends.b.name: unknown key (expected one of: type, url, api_key, models, "
        "weight, headers, timeouts, health, breaker)"
    ]


def test_a2a_agents_are_a2a_agent_specs(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, YAML), {})
    writer = config.a2a_agents["writer"]
    assert isinstance(writer, AgentSpec)
    assert writer.headers == {"X-Api-Key": "k"} and writer.mcp_tool == "skills"


def test_redacted_urls_hide_query_credentials_and_lone_user_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        backends:
          b: {type: openai, url: "https://tok3n@api.example.com/v1?api_key=s3cret&region=eu"}
        a2a_agents:
          a: {url: "http://user:pw@127.0.0.1:9001/?token=t0k"}
        """,
    )
    shown = load_config(path, {}).redacted()
    assert shown["backends"]["b"]["url"] == "https://***@api.example.com/v1?api_key=***&region=eu"
    assert shown["a2a_agents"]["a"]["url"] == "http://user:***@127.0.0.1:9001/?token=***"


def test_every_agent_setting_reaches_the_hub(tmp_path: Path) -> None:
    """What the hub registers is the whole AgentSpec the config gave, not a hand-picked subset
    (a per-agent signature policy or JWKS once stopped here)."""
    config = load_config(
        write(
            tmp_path,
            """\
            a2a_agents:
              signed:
                url: "https://agent.example"
                card_signatures: required
                jwks_url: "https://agent.example/jwks.json"
                auth: {bearer: "t0k"}
                weight: 3
            """,
        ),
        {},
    )
    spec = agent_specs(config)["signed"]
    assert type(spec) is AgentSpec
    assert spec.model_dump() == {
        name: value
        for name, value in config.a2a_agents["signed"].model_dump().items()
        if name in AgentSpec.model_fields
    }
    assert spec.card_signatures == "required"
    assert spec.jwks_url == "https://agent.example/jwks.json"
