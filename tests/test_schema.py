"""``hetero-opt schema``: valid JSON Schema, and every bundled instance conforms to it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import BUNDLED

from hetero_opt.cli import main
from hetero_opt.instance import FORMAT_VERSION, FORMAT_VERSIONS, Instance


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return Instance.model_json_schema()


def test_schema_command_prints_the_model_schema(capsys: pytest.CaptureFixture[str], schema: dict[str, Any]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schema
    assert printed["additionalProperties"] is False  # unknown fields are refused
    assert set(printed["required"]) == {"format_version", "gpu_types", "nodes"}
    assert printed["properties"]["format_version"]["enum"] == list(FORMAT_VERSIONS)
    assert FORMAT_VERSIONS[-1] == FORMAT_VERSION  # new files get the newest version


def _check_required(data: object, schema: dict[str, Any], defs: dict[str, Any], where: str) -> None:
    """Minimal structural check without ``jsonschema``: required keys and no unknown keys, recursively."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if data is None or not options:
            return
        schema = options[0]
    if isinstance(data, dict) and "properties" in schema:
        for key in schema.get("required", []):
            assert key in data, f"{where}: missing {key}"
        for key, value in data.items():
            assert key in schema["properties"], f"{where}: unknown key {key}"
            _check_required(value, schema["properties"][key], defs, f"{where}.{key}")
    elif isinstance(data, list) and "items" in schema:
        for i, item in enumerate(data):
            _check_required(item, schema["items"], defs, f"{where}[{i}]")


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_bundled_instance_conforms_to_the_schema(path: Path, schema: dict[str, Any]) -> None:
    data = yaml.safe_load(path.read_text())
    if importlib.util.find_spec("jsonschema") is not None:
        import jsonschema

        jsonschema.validate(data, schema)
    _check_required(data, schema, schema["$defs"], path.stem)


def test_the_structural_check_can_fail(schema: dict[str, Any]) -> None:
    data = yaml.safe_load(BUNDLED[0].read_text())
    del data["nodes"][0]["gpu_type"]
    with pytest.raises(AssertionError, match=r"nodes\[0\]: missing gpu_type"):
        _check_required(data, schema, schema["$defs"], "x")


def test_the_example_in_the_format_doc_validates() -> None:
    import re

    from hetero_opt import parse_instance

    doc = (Path(__file__).resolve().parent.parent / "docs" / "instance-format.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert example is not None
    inst = parse_instance(yaml.safe_load(example.group(1)))
    assert [g.id for g in inst.groups] == ["g1"]


@pytest.mark.parametrize("section", ["Columnar nodes", "Node columns as runs"])
def test_the_node_examples_in_the_format_doc_validate(section: str) -> None:
    import re

    from hetero_opt import parse_instance
    from hetero_opt.instance import NodeTable

    doc = (Path(__file__).resolve().parent.parent / "docs" / "instance-format.md").read_text()
    example = re.search(rf"## {section}.*?```yaml\n(.*?)```", doc, re.S)
    assert example is not None
    inst = parse_instance(yaml.safe_load(example.group(1)))
    assert isinstance(inst.nodes, NodeTable)
    rows = [("m1", "H20", "m-1"), ("m2", "H20", "m-1"), ("m3", "L20", "m-2")]
    assert [(n.id, n.gpu_type, n.s1) for n in inst.nodes] == rows
