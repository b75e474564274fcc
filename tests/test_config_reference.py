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


SCHEMA = DOC.with_name("junction.schema.json")


def test_the_json_schema_matches_the_models_and_the_examples_follow_it() -> None:
    import json

    import jsonschema
    import yaml

    from junction.config_reference import json_schema

    assert SCHEMA.read_text() == json_schema(), (
        "docs/junction.schema.json is stale: run `python -m junction.config_reference --schema "
        "> docs/junction.schema.json`"
    )
    schema = json.loads(SCHEMA.read_text())
    root = DOC.parents[1]
    for example in [*sorted((root / "examples").glob("*.yaml")), root / "deploy" / "junction.yaml"]:
        assert "$schema=../docs/junction.schema.json" in example.read_text().splitlines()[0]
        jsonschema.validate(yaml.safe_load(example.read_text()), schema)
    broken = {"server": {"port": "x"}, "backends": {"a": {"type": "nope", "url": "http://x"}}}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(broken))
    assert len(errors) == 2
