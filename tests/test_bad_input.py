"""Bad input: one defect per case; the CLI answers exit 2 and ONE stderr line naming entity, field, value.

Every case starts from the valid instance of ``conftest.valid_dict`` (or a raw file text) and
changes one thing. ``validate`` and ``solve`` must both refuse it, print no traceback, and ``solve``
must write nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import INSTANCES_DIR, valid_dict

from hetero_opt.cli import main
from hetero_opt.instance import Instance

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> Mutation:
    """Mutation setting ``a.0.b`` (dots; integers index lists) to ``value``."""

    def mutate(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        target: Any = d
        for key in head:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        *head, last = path.split(".")
        target: Any = d
        for key in head:
            target = target[int(key)] if key.isdigit() else target[key]
        del target[last]

    return mutate


def _many(*mutations: Mutation) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        for m in mutations:
            m(d)

    return mutate


# (case id, mutation of the valid dict, regex the one stderr line must match after the file name)
MUTATIONS: list[tuple[str, Mutation, str]] = [
    ("missing-field", _delete("nodes.0.gpu_type"), r"Node 'n1': gpu_type=missing"),
    ("missing-top-level-field", _delete("nodes"), r"nodes=missing: Field required"),
    ("unknown-field", _set("nodes.0.colour", "red"), r"Node 'n1': colour='red': Extra inputs are not permitted"),
    ("unknown-gpu-type-on-node", _set("nodes.1.gpu_type", "B200"), r"Node 'n2': gpu_type='B200' is not a declared"),
    # n3 sits under S2 'b'; giving it S1 'a-1' puts that S1 under two S2s
    ("s1-under-two-s2s", _set("nodes.2.s1", "a-1"), r"Node 'n3': s1='a-1' is already under s2='a', not 'b'"),
    (
        "s2-in-two-clusters",
        _many(_set("nodes.2.s2", "a"), _set("nodes.2.s1", "a-9"), _set("nodes.2.cluster", "c2")),
        r"Node 'n3': s2='a' is already in cluster='c', not 'c2'",
    ),
    ("free-exceeds-total", _set("nodes.1.gpus_free", 9), r"Node 'n2': gpus_free=9 exceeds gpus_total=8"),
    ("negative-free", _set("nodes.1.gpus_free", -1), r"Node 'n2': gpus_free=-1: Input should be greater than"),
    ("zero-pd-ratio", _set("services.0.pd_ratio.decode", 0), r"Service 'chat': pd_ratio\.decode=0: Input should be"),
    (
        "zero-attn-ffn-ratio",
        _set("services.1.attn_ffn_ratio.prefill", 0),
        r"Service 'moe': attn_ffn_ratio\.prefill=0: Input should be",
    ),
    ("negative-pod-count", _set("groups.0.pods.0.count", -1), r"DeploymentGroup 'g1': pods\.0\.count=-1: Input"),
    ("negative-target", _set("requests.0.target_units", -1), r"ScalingRequest 'chat': target_units=-1: Input"),
    ("duplicate-node-id", _set("nodes.2.id", "n1"), r"Node 'n1': id is declared more than once"),
    ("duplicate-service-id", _set("services.1.id", "chat"), r"Service 'chat': id is declared more than once"),
    (
        "group-of-unknown-service",
        _set("groups.0.service", "ghost"),
        r"DeploymentGroup 'g1': service='ghost' is not a declared service",
    ),
    (
        "pod-on-unaccepted-gpu-type",  # prefill accepts only H20; n3 is L20
        _set("groups.0.pods.0.node", "n3"),
        r"DeploymentGroup 'g1': pod of role 'prefill' on node 'n3' has gpu_type='L20'",
    ),
    (
        "pod-outside-domain",  # the pods stay on n1 (S2 'a') while the group claims S2 'b'
        _set("groups.0.domain", "b"),
        r"DeploymentGroup 'g1': pod on node 'n1' lies outside domain 'b'",
    ),
    ("pod-on-unknown-node", _set("groups.0.pods.0.node", "n9"), r"DeploymentGroup 'g1': pods node='n9' is not"),
    (
        "pod-listed-twice",
        _set("groups.0.pods.1", {"role": "prefill", "node": "n1", "count": 1}),
        r"DeploymentGroup 'g1': pods lists role 'prefill' on node 'n1' twice",
    ),
    (
        "pod-of-a-role-the-service-lacks",
        _set("groups.0.pods.1.role", "prefill-ffn"),
        r"DeploymentGroup 'g1': pods role='prefill-ffn' is not a role of service 'chat'",
    ),
    (
        "pods-beyond-gpus-in-use",  # g1's two 4-GPU pods on n1, of which 2 GPUs are now free
        _set("nodes.0.gpus_free", 2),
        r"Node 'n1': deployment groups use 8 GPUs but only gpus_total-gpus_free=6 are in use",
    ),
    (
        "request-unknown-service",
        _set("requests.0.service", "ghost"),
        r"ScalingRequest: service='ghost' is not a declared service",
    ),
    (
        "target-above-max",
        _set("requests.0.target_units", 9),
        r"ScalingRequest 'chat': target_units=9 exceeds max_units=8",
    ),
    (
        "target-below-min",
        _set("requests.0.target_units", 0),
        r"ScalingRequest 'chat': target_units=0 is below min_units=1",
    ),
    ("unknown-role-name", _set("services.0.roles.0.name", "prefil"), r"Service 'chat': roles\.0\.name='prefil'"),
    ("moe-without-attn-ffn", _delete("services.1.attn_ffn_ratio"), r"Service 'moe': attn_ffn_ratio=None but"),
    (
        "unknown-gpu-type-in-role",
        _set("services.0.roles.1.gpu_types", ["H20", "A100"]),
        r"Service 'chat': role 'decode' gpu_types contains unknown GPU type 'A100'",
    ),
    ("wrong-format-version", _set("format_version", "2.0"), r"format_version='2\.0': Input should be '1\.0'"),
    (
        "unquoted-format-version",  # YAML reads format_version: 1.1 as a float (and 1.10 as 1.1)
        _set("format_version", 1.1),
        r"format_version=1\.1: Input should be .* \(read as a number: quote it, format_version: \"1\.1\"\)",
    ),
    ("subgroup-unknown-s1", _set("subgroups.0.s1s", ["zz"]), r"RdmaSubgroup 'sg1': s1s contains unknown S1 'zz'"),
    ("wrong-type", _set("nodes.0.gpus_total", "eight"), r"Node 'n1': gpus_total='eight': Input should be"),
]

# (case id, file name, raw text, regex after the file name)
RAW_FILES: list[tuple[str, str, str, str]] = [
    ("malformed-json", "bad.json", '{"format_version": "1.0",\n  "nodes": [}', r"malformed JSON at line 2 column \d+"),
    ("malformed-yaml", "bad.yaml", "format_version: '1.0'\nnodes: [a, b\n", r"malformed YAML at line \d+ column \d+"),
    ("top-level-list", "list.yaml", "- 1\n- 2\n", r"top level must be a mapping, got list"),
    ("empty-file", "empty.yaml", "", r"top level must be a mapping, got NoneType"),
    # PyYAML keeps the last of two equal keys without a word: a second requests list replaced the first
    (
        "duplicate-top-level-key",
        "dup.yaml",
        "format_version: '1.0'\nrequests: []\nnodes: []\nrequests: []\n",
        r"line 4: key 'requests' appears twice$",
    ),
    (
        "duplicate-key-in-flow-mapping",
        "dup-node.yaml",
        "nodes:\n  - {id: a1, gpus_free: 8, gpus_free: 0}\n",
        r"line 2: key 'gpus_free' appears twice$",
    ),
    (
        "integer-beyond-python-limit",
        "huge.yaml",
        "format_version: '1.0'\nname: " + "9" * 5000 + "\n",
        r"line 2: Exceeds the limit \(4300 digits\) for integer string conversion: value has 5000 digits$",
    ),
]


def test_the_base_instance_is_valid() -> None:
    Instance.model_validate(valid_dict())


def _write_mutated(tmp_path: Path, case: str, mutate: Mutation) -> Path:
    data = valid_dict()
    mutate(data)
    # Alternate the file format so both readers are exercised.
    if sum(map(ord, case)) % 2:
        f = tmp_path / f"{case}.json"
        f.write_text(json.dumps(data))
    else:
        f = tmp_path / f"{case}.yaml"
        f.write_text(yaml.safe_dump(data))
    return f


def _assert_refused(f: Path, pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = re.compile(re.escape(str(f)) + r": " + pattern)
    assert main(["validate", str(f)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert expected.match(lines[0]), lines[0]

    out_dir = tmp_path / "out"
    assert main(["solve", str(f), "--out-dir", str(out_dir)]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert expected.match(lines[0]), lines[0]
    assert "Traceback" not in out + err
    assert not out_dir.exists()


# io.describe_error replaces "missing" by the type of the parent mapping ("gpu_type=dict: Field required").
MUTATION_PARAMS = [
    pytest.param(*m, id=m[0], marks=[]) for m in MUTATIONS
]


@pytest.mark.parametrize(("case", "mutate", "pattern"), MUTATION_PARAMS)
def test_mutated_instance_is_refused(
    case: str, mutate: Mutation, pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = _write_mutated(tmp_path, case, mutate)
    _assert_refused(f, pattern, tmp_path, capsys)


@pytest.mark.parametrize(("case", "name", "text", "pattern"), RAW_FILES, ids=[r[0] for r in RAW_FILES])
def test_malformed_file_is_refused(
    case: str, name: str, text: str, pattern: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / name
    f.write_text(text)
    _assert_refused(f, pattern, tmp_path, capsys)


def test_one_bad_file_among_good_ones_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(valid_dict()))
    bad = _write_mutated(tmp_path, "zz-free-exceeds-total", _set("nodes.1.gpus_free", 9))
    out_dir = tmp_path / "out"
    assert main(["solve", str(good), str(bad), "--out-dir", str(out_dir)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert re.match(re.escape(str(bad)) + r": Node 'n2': gpus_free=9 exceeds gpus_total=8", err[0])
    assert not out_dir.exists()


def test_existing_out_dir_stays_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    bad = _write_mutated(tmp_path, "dup", _set("nodes.2.id", "n1"))
    assert main(["solve", str(bad), "--out-dir", str(out_dir)]) == 2
    assert list(out_dir.iterdir()) == []
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_validate_reports_every_file_and_fails_if_any_is_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(valid_dict()))
    bad = _write_mutated(tmp_path, "bad-version", _set("format_version", "2.0"))
    assert main(["validate", str(bad), str(good)]) == 2
    out, err = capsys.readouterr()
    # 3 nodes of 8 GPUs, n1 full: 24 GPUs, 16 free
    summary = "3 nodes, 24 GPUs (16 free), 2 S1s, 2 S2s, 2 services, 1 group, 2 requests"
    assert out.splitlines() == [f"{good}: ok ({summary})"]
    assert len(err.splitlines()) == 1
    assert err.startswith(f"{bad}: format_version='2.0'")


LOADERS = pytest.mark.parametrize(
    "fast",
    [pytest.param(True, marks=pytest.mark.skipif(not yaml.__with_libyaml__, reason="no libyaml")), False],
    ids=["libyaml", "reference"],
)  # the fast loader is the reference where libyaml is missing: its cases would run the reference twice


@LOADERS
def test_both_yaml_loaders_refuse_duplicate_keys(fast: bool) -> None:
    from hetero_opt.io import DuplicateKeyError, load_yaml

    with pytest.raises(DuplicateKeyError, match="key 'b' appears twice"):
        load_yaml("a: 1\nb: 2\nc: {x: 1}\nb: 3\n", fast=fast)
    assert load_yaml("a: 1\n'1': x\n1: y\n", fast=fast) == {"a": 1, "1": "x", 1: "y"}  # str and int keys differ


@LOADERS
@pytest.mark.parametrize(
    ("text", "second"),
    [("1: x\n0x1: y\n", "0x1"), ("yes: 1\ntrue: 2\n", "true"), ("true: a\n1: b\n", "1"), ("null: a\n~: b\n", "~")],
)
def test_keys_that_read_as_one_value_are_duplicates(fast: bool, text: str, second: str) -> None:
    # before: written differently, they passed, and the mapping kept only the last (1 == 0x1, True == 1)
    from hetero_opt.io import DuplicateKeyError, load_yaml

    with pytest.raises(DuplicateKeyError, match=f"key '{re.escape(second)}' appears twice"):
        load_yaml(text, fast=fast)


@LOADERS
def test_a_merged_key_may_be_given_again(fast: bool) -> None:
    from hetero_opt.io import load_yaml

    text = "base: &b {x: 1, y: 1}\nd:\n  <<: *b\n  x: 2\n"  # YAML's merge: the mapping's own x wins
    assert load_yaml(text, fast=fast) == {"base": {"x": 1, "y": 1}, "d": {"x": 2, "y": 1}}


def test_a_valid_instance_with_duplicate_keys_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The audit's case: a second ``requests`` silently replaced the first (target 4 -> 1)."""
    f = tmp_path / "x.yaml"
    text = (INSTANCES_DIR / "tier_preference.yaml").read_text()
    f.write_text(text + "requests:\n  - {service: chat, target_units: 1}\n")
    line = text.count("\n") + 1
    assert main(["validate", str(f)]) == 2
    assert capsys.readouterr().err == f"{f}: line {line}: key 'requests' appears twice\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--family", "tiny", "--out", "g.json"],
        ["curate", "--model", "llama3-70b", "--gpu", "H20", "--trace", "t.csv"],
        ["experiment", "pd-ratio", "--out-dir", "e"],
    ],
    ids=lambda argv: argv[0],
)
def test_a_negative_seed_flag_is_named(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """numpy's "expected non-negative integer" named neither the flag nor the value."""
    assert main([*argv, "--seed", "-1"]) == 2
    assert capsys.readouterr().err == "--seed=-1 must be in 0..2147483647\n"
