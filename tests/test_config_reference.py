"""docs/configuration.md is generated from the models; this keeps the two from drifting."""

from __future__ import annotations

from pathlib import Path

from junction.config import JunctionConfig
from junction.config_reference import render

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_the_reference_matches_the_models() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: run `python -m junction.config_reference > "
        "docs/configuration.md`"
    )


def test_every_top_level_section_is_documented() -> None:
    text = render()
    for section in JunctionConfig.model_fields:
        assert f"| `{section}` |" in text
