"""`junction.version.__version__`: the one copy of the version, which the distribution's
metadata is built from, and which every surface shows."""

from __future__ import annotations

from importlib import metadata

from junction import version
from junction.build import agent_settings, gateway_inputs, hub_settings
from junction.config import JunctionConfig


def test_the_version_is_the_installed_distributions() -> None:
    assert version.__version__ == metadata.version("junction-hub")


def test_every_surface_says_junctions_version() -> None:
    config = JunctionConfig()
    assert agent_settings(config).version == version.__version__  # ACP agentInfo
    assert gateway_inputs(config)[1].version == version.__version__  # MCP serverInfo, clientInfo
    assert hub_settings(config).version == version.__version__  # the hub's card


def test_a_configured_hub_version_is_kept() -> None:
    config = JunctionConfig.model_validate({"a2a": {"version": "7.1"}})
    assert hub_settings(config).version == "7.1"
