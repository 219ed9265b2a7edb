"""Loading instance files: the fast path (pydantic's JSON parser, libyaml) against the reference path.

The reference path is the loader as it was: Python's ``json`` or pure-Python PyYAML, then
``Instance.model_validate``. For every input both must end alike: the same ``InputError`` text,
or equal instances. Nothing the reference refuses may pass the fast path.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import node, valid_dict
from test_bad_input import MUTATIONS

from hetero_opt.errors import InputError
from hetero_opt.instance import Instance
from hetero_opt.io import load_instance, loads_instance, parse_instance, parse_text


def _outcome(load: Callable[[], Instance]) -> tuple[str, object]:
    try:
        return "ok", load()
    except InputError as exc:
        return "error", str(exc)


def _reference(text: str, path: Path) -> Instance:
    return parse_instance(parse_text(text, path), str(path))


def _assert_same(text: str, path: Path) -> tuple[str, object]:
    fast = _outcome(lambda: loads_instance(text, path))
    assert fast == _outcome(lambda: _reference(text, path))
    return fast


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize(("case", "mutate", "pattern"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_every_bad_input_case_gets_the_reference_message(case: str, mutate: object, pattern: str, suffix: str) -> None:
    data = valid_dict()
    assert callable(mutate)
    mutate(data)
    text = json.dumps(data) if suffix == ".json" else yaml.safe_dump(data)
    assert _assert_same(text, Path(f"{case}{suffix}"))[0] == "error"


def _json_with(old: str, new: str) -> str:
    text = json.dumps(valid_dict())
    assert old in text
    return text.replace(old, new, 1)


# (case, JSON text, expected outcome): where Python's json and pydantic's parser might differ.
_MEMORY = ('"gpu_types": [{"id": "H20"}', '"gpu_types": [{"id": "H20", "memory_gb": %s}')

JSON_EDGES: list[tuple[str, str, str]] = [
    ("valid", json.dumps(valid_dict()), "ok"),
    ("int-as-float", _json_with('"gpus_total": 8', '"gpus_total": 8.0'), "ok"),
    ("int-as-exponent", _json_with('"gpus_total": 8', '"gpus_total": 8E0'), "ok"),
    ("int-with-fraction", _json_with('"gpus_total": 8', '"gpus_total": 8.5'), "error"),
    ("int-as-bool", _json_with('"gpus_free": 0', '"gpus_free": false'), "ok"),
    ("int-as-string", _json_with('"gpus_free": 0', '"gpus_free": "0"'), "ok"),
    ("negative-zero", _json_with('"gpus_free": 0', '"gpus_free": -0'), "ok"),
    ("leading-zero", _json_with('"gpus_free": 0', '"gpus_free": 00'), "error"),
    ("nan", _json_with(_MEMORY[0], _MEMORY[1] % "NaN"), "error"),
    ("infinity", _json_with(_MEMORY[0], _MEMORY[1] % "Infinity"), "error"),
    ("float-overflow", _json_with(_MEMORY[0], _MEMORY[1] % "1e400"), "error"),
    ("huge-integer", _json_with(_MEMORY[0], _MEMORY[1] % ("9" * 5000)), "error"),
    ("400-digit-integer", _json_with(_MEMORY[0], _MEMORY[1] % ("9" * 400)), "error"),
    ("duplicate-key-last-wins", _json_with('"gpus_free": 0', '"gpus_free": 9, "gpus_free": 0'), "ok"),
    ("duplicate-key-bad-last", _json_with('"gpus_free": 0', '"gpus_free": 0, "gpus_free": 9'), "error"),
    ("lone-surrogate", _json_with('"name": "valid"', '"name": "\\ud800"'), "ok"),
    ("surrogate-pair", _json_with('"name": "valid"', '"name": "\\ud83d\\ude00"'), "ok"),
    ("nul-escape", _json_with('"name": "valid"', '"name": "\\u0000"'), "ok"),
    ("raw-control-character", _json_with('"name": "valid"', '"name": "\t"'), "error"),
    ("byte-order-mark", "\ufeff" + json.dumps(valid_dict()), "ok"),  # as YAML instances and CSVs; was an error
    ("byte-order-mark-then-bad", "\ufeff" + json.dumps(valid_dict())[:-1], "error"),
    ("trailing-garbage", json.dumps(valid_dict()) + " x", "error"),
    ("trailing-whitespace", json.dumps(valid_dict()) + " \n\t", "ok"),
    ("format-version-number", _json_with('"format_version": "1.0"', '"format_version": 1.0'), "error"),
    ("top-level-list", "[" + json.dumps(valid_dict()) + "]", "error"),
    ("null-list", json.dumps({**valid_dict(), "groups": None}), "error"),
    ("deep-300", _json_with('"name": "valid"', '"name": ' + "[" * 300 + "]" * 300), "error"),
    ("deep-3000", _json_with('"name": "valid"', '"name": ' + "[" * 3000 + "]" * 3000), "error"),
    ("empty", "", "error"),
]


@pytest.mark.parametrize(("case", "text", "expected"), JSON_EDGES, ids=[e[0] for e in JSON_EDGES])
def test_json_edge_cases_end_as_in_the_reference(case: str, text: str, expected: str) -> None:
    assert _assert_same(text, Path(f"{case}.json"))[0] == expected


def test_a_json_file_with_a_byte_order_mark_loads_by_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # was "malformed JSON at line 1 column 1: Unexpected UTF-8 BOM (decode using utf-8-sig)"
    text = json.dumps(valid_dict())
    plain, bom = tmp_path / "plain.json", tmp_path / "bom.json"
    plain.write_text(text, encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())

    def no_reference(text: str, p: Path) -> Instance:
        raise AssertionError(f"{p}: the reference path ran")

    monkeypatch.setattr("hetero_opt.io._reference", no_reference)
    assert load_instance(bom) == load_instance(plain)


YAML_EDGES: list[tuple[str, str]] = [
    ("valid", yaml.safe_dump(valid_dict())),
    ("malformed", "format_version: '1.0'\nnodes: [a, b\n"),
    ("tab-indent", "format_version: '1.0'\nnodes:\n\t- 1\n"),
    ("control-character", "format_version: '1.0'\nname: \"a\x01\"\n"),
    ("yaml-1.1-scalars", yaml.safe_dump(valid_dict()).replace("gpus_free: 0", "gpus_free: 0x0")),
    ("sexagesimal", yaml.safe_dump(valid_dict()).replace("gpus_free: 0", "gpus_free: 0:0")),
    ("octal", yaml.safe_dump(valid_dict()).replace("gpus_free: 0", "gpus_free: 010")),
    ("anchor-alias", "base: &n {a: 1}\nformat_version: '1.0'\nx: *n\n"),
    ("python-tag", "!!python/object/apply:os.system ['true']\n"),
    ("deep-500", "name: " + "[" * 500 + "]" * 500 + "\n"),
    ("deep-5000", "[" * 5000),
    ("empty", ""),
]


@pytest.mark.parametrize(("case", "text"), YAML_EDGES, ids=[e[0] for e in YAML_EDGES])
def test_yaml_edge_cases_end_as_in_the_reference(case: str, text: str) -> None:
    _assert_same(text, Path(f"{case}.yaml"))


def test_bundled_instances_load_alike_by_both_paths() -> None:
    for path in sorted(Path("instances").rglob("*.yaml")):
        if "format_version" in path.read_text():
            outcome = _assert_same(path.read_text(), path)
            assert outcome[0] == "ok", (path, outcome)


def _nodes_with(*changes: tuple[int, str, str]) -> str:
    data = valid_dict()
    data["nodes"].append(node("n4", "b", "b-1", "L20"))
    for i, key, value in changes:
        data["nodes"][i][key] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Two offences each: the set checks see them, the node loop names the first node in file order.
        (_nodes_with((3, "gpu_type", "X1"), (2, "gpu_type", "X2")), "Node 'n3': gpu_type='X2' is not a declared"),
        (_nodes_with((3, "s2", "a"), (1, "s2", "b")), "Node 'n2': s1='a-1' is already under s2='a', not 'b'"),
        (_nodes_with((3, "cluster", "d"), (1, "cluster", "e")), "Node 'n2': s2='a' is already in cluster='c', not 'e'"),
        (_nodes_with((3, "s1", "n1"), (2, "s1", "a")), "Node 'n3': s1='a' is already used as an S2 id"),
        (_nodes_with((3, "gpus_free", 9), (2, "gpus_free", 9)), "Node 'n3': gpus_free=9 exceeds gpus_total=8"),
    ],
)
def test_the_first_offending_node_in_file_order_is_named(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "two.json"
    path.write_text(text)
    with pytest.raises(InputError, match=f"^{path}: {message}"):
        load_instance(path)


def test_free_beyond_total_is_refused_on_an_instance_built_from_copies() -> None:
    inst = Instance.model_validate(valid_dict())
    bad = [n.model_copy(update={"gpus_free": 9}) if n.id == "n2" else n for n in inst.nodes]
    with pytest.raises(ValueError, match="Node 'n2': gpus_free=9 exceeds gpus_total=8"):
        inst.replace(nodes=bad)


@pytest.mark.parametrize("enabled", [True, False])
@pytest.mark.parametrize("good", [True, False])
def test_garbage_collection_is_left_as_it_was(enabled: bool, good: bool) -> None:
    data = valid_dict()
    if not good:
        data["nodes"][1]["gpus_free"] = 9
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        for text, name in ((json.dumps(data), "x.json"), (yaml.safe_dump(data), "x.yaml")):
            _outcome(lambda t=text, n=name: loads_instance(t, n))
            assert gc.isenabled() is enabled
    finally:
        gc.enable() if was else gc.disable()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "load_instance: path='' is empty: name an instance file (.json, .yaml or .yml)"),  # was ".: cannot read"
        ({"nodes": []}, "load_instance() takes a path, not dict: parse_instance(dict) takes data"),
    ],
)
def test_load_instance_names_a_path_that_is_no_path(path: object, message: str) -> None:
    with pytest.raises(InputError) as err:
        load_instance(path)  # type: ignore[arg-type]
    assert str(err.value) == message
