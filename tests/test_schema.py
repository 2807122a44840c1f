"""``toolkit recipe schema`` includes every registered plugin's options (issue 14, item 13)."""

import json
from pathlib import Path

import pytest
import yaml

from toolkit.plugins import recipe_schema

ROOT = Path(__file__).resolve().parents[1]
jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(recipe_schema())


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_fits_the_schema(validator, path):
    assert [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))] == []


@pytest.mark.parametrize("section, key, value, fragment", [
    ("model", "options", {"widht": 1}, "'widht' was unexpected"),
    ("model", "options", {"d_regularizer": "maybe"}, "'maybe' is not one of"),
    ("data", "options", {"root": 3}, "'root' was unexpected"),  # the shipped slice takes no options
    ("losses", "rec", {"options": {"reduction": "max"}}, "'max' is not one of ['mean', 'sum']"),
    ("losses", "supp", {}, "'supp' is not one of"),
    ("model", "network", "paper29", "'paper29' is not one of"),
])
def test_plugin_options_and_names_are_checked_by_the_schema(validator, section, key, value, fragment):
    recipe = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())
    recipe[section][key] = value
    messages = [e.message for e in validator.iter_errors(recipe)]
    assert any(fragment in m for m in messages), messages


def test_the_schema_describes_the_options():
    schema = recipe_schema()
    text = json.dumps(schema)
    assert "channel multiplier" in text or "width" in text
    assert schema["properties"]["losses"]["properties"]["adv"]["description"]
    assert "image-folder" in schema["$defs"]["DataConfig"]["properties"]["dataset"]["enum"]
