"""Columnar nodes (format 1.2): the same instance as the row form, the same errors, the same plans.

``nodes`` may be a mapping of equal-length lists, one per :class:`Node` field (``s0`` optional). It loads
into a :class:`NodeTable`, a read-only sequence of ``Node`` that builds a node's model when it is read.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
from collections.abc import Collection
from itertools import chain, groupby, repeat
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import valid_dict
from fuzz.strategies import instance_dicts
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_bad_input import MUTATIONS

import hetero_opt.instance
import hetero_opt.io
from hetero_opt import InputError, parse_instance, solve, verify
from hetero_opt.cli import main
from hetero_opt.generate import generate_instance
from hetero_opt.instance import NODE_FIELDS, Instance, Node, NodeTable, node_column
from hetero_opt.io import load_instance, loads_instance, save_instance
from hetero_opt.placement.apply import apply_plan
from hetero_opt.placement.greedy import greedy_plan
from hetero_opt.topology import build_view


def _columnar(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with its nodes as columns and format 1.2 (s0 written only if some node has one)."""
    out = copy.deepcopy(data)
    nodes = out["nodes"]
    names = [f for f in NODE_FIELDS if f != "s0" or any("s0" in n for n in nodes)]
    out["nodes"] = {f: [n.get(f) for n in nodes] for f in names}
    out["format_version"] = "1.2"
    return out


def _runs(data: dict[str, Any], names: Collection[str] = NODE_FIELDS) -> dict[str, Any]:
    """``data`` with its node columns ``names`` (default every one: ids too, as runs of one) as runs of equal
    values, the others plain, and format 1.4."""
    out = _columnar(data)
    for name, col in out["nodes"].items():
        if name in names:
            runs = [(value, len(list(run))) for value, run in groupby(col)]
            out["nodes"][name] = {"values": [v for v, _ in runs], "lengths": [n for _, n in runs]}
    out["format_version"] = "1.4"
    return out


def _rows_1_2(data: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(data), "format_version": "1.2"}


def _message(data: object, suffix: str, tmp_path: Path) -> str:
    """The one-line error of loading ``data`` from a file (the fast path, then the reference path)."""
    path = tmp_path / f"x{suffix}"
    text = yaml.safe_dump(data) if suffix == ".yaml" else json.dumps(data)
    with pytest.raises(InputError) as exc:
        loads_instance(text, path)
    message = str(exc.value)
    assert "\n" not in message
    assert "Traceback" not in message
    return message.removeprefix(f"{path}: ")


# -- equal instances, one API --------------------------------------------------------------------------


def test_columns_load_to_the_row_forms_instance() -> None:
    rows = parse_instance(_rows_1_2(valid_dict()))
    cols = parse_instance(_columnar(valid_dict()))
    assert isinstance(cols.nodes, NodeTable)
    assert isinstance(rows.nodes, list)
    assert cols == rows
    assert rows == cols
    assert cols.nodes == rows.nodes
    assert rows.nodes == cols.nodes
    assert list(cols.nodes) == rows.nodes


def test_a_table_is_a_read_only_sequence_of_nodes() -> None:
    rows = parse_instance(_rows_1_2(valid_dict())).nodes
    table = parse_instance(_columnar(valid_dict())).nodes
    assert isinstance(table, NodeTable)
    assert len(table) == len(rows)
    assert table[0] == rows[0]
    assert table[-1] == rows[-1]
    assert table[0] is table[0]  # built once, then the same object
    assert list(table) == rows
    assert [n for n in table][1] is table[1]
    assert table[1:] == rows[1:]
    assert isinstance(table[1:], NodeTable)
    assert rows[1] in table
    assert rows[1].model_copy(update={"gpus_free": 1}) not in table
    assert "n1" not in table
    assert table.index(rows[1]) == 1
    assert table.count(rows[1]) == 1
    assert list(reversed(table)) == rows[::-1]
    with pytest.raises(IndexError):
        table[len(rows)]
    with pytest.raises(TypeError):
        hash(table)
    with pytest.raises(TypeError):
        table[0] = rows[0]  # type: ignore[index]
    assert table != rows[:-1]
    assert table != [*rows[:-1], rows[0]]
    assert table != "nodes"
    assert NodeTable.from_nodes(rows) == table
    assert table.column("id") == tuple(n.id for n in rows)
    assert node_column(table, "gpus_free") == node_column(rows, "gpus_free")
    assert table.to_columns() == {f: [getattr(n, f) for n in rows] for f in table.to_columns()}
    assert repr(table) == f"NodeTable({len(rows)} nodes)"


def test_models_are_built_only_when_read() -> None:
    inst = parse_instance(_columnar(valid_dict()))
    table = inst.nodes
    assert isinstance(table, NodeTable)
    by_id, _ = inst.node_index()
    assert table._models is None
    node = by_id["n2"]
    assert node is table[1]
    assert node.id == "n2"
    assert sum(m is not None for m in table._models or []) == 1
    assert greedy_plan(inst, build_view(inst)) is not None


def test_pickle_copy_dump_and_replace_keep_the_table() -> None:
    inst = parse_instance(_columnar(valid_dict()))
    back = pickle.loads(pickle.dumps(inst))
    assert back == inst
    assert isinstance(back.nodes, NodeTable)
    assert copy.deepcopy(inst) == inst
    dumped = inst.model_dump()
    assert dumped["nodes"] == inst.nodes.to_columns()  # type: ignore[attr-defined]
    assert Instance.model_validate(dumped) == inst
    assert Instance.model_validate_json(inst.model_dump_json()) == inst
    rows = list(inst.nodes)
    with_list = inst.model_copy(update={"nodes": rows[1:]})
    assert with_list.nodes == rows[1:]
    assert with_list.node_index()[0].keys() == {n.id for n in rows[1:]}
    replaced = inst.replace(nodes=[*rows[:-1], rows[-1].model_copy(update={"gpus_free": 0})])
    assert isinstance(replaced.nodes, list)
    assert replaced.nodes[-1].gpus_free == 0
    again = inst.replace(name="other")
    assert isinstance(again.nodes, NodeTable)
    assert again.nodes == inst.nodes
    with pytest.raises(TypeError):
        hash(inst)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_writes_the_form_the_instance_holds(tmp_path: Path, suffix: str) -> None:
    cols = parse_instance(_columnar(valid_dict()))
    rows = parse_instance(_rows_1_2(valid_dict()))
    # rows saved from columns say 1.1 (nothing of 1.2 left to need it); columns asked for say 1.3 (the groups'
    # pods are written as columns too: tests/test_columnar_pods.py)
    cases = [
        (cols, None, dict, "1.2"),
        (rows, None, list, "1.2"),
        (rows, True, dict, "1.3"),
        (cols, False, list, "1.1"),
    ]
    for inst, columnar, want, version in cases:
        path = tmp_path / f"i{suffix}"
        save_instance(inst, path, columnar=columnar)
        data = yaml.safe_load(path.read_text())
        assert isinstance(data["nodes"], want)
        back = load_instance(path)
        assert back.format_version == version
        assert back == inst.model_copy(update={"format_version": back.format_version})
        assert isinstance(back.nodes, NodeTable) == (want is dict)


def test_a_table_built_by_hand_is_checked_by_the_instance() -> None:
    data = _columnar(valid_dict())
    good = NodeTable(data["nodes"])
    assert parse_instance({**data, "nodes": good}).nodes == good
    data["nodes"]["gpus_free"][1] = 9
    with pytest.raises(InputError, match=r"Node 'n2': gpus_free=9 exceeds gpus_total=8"):
        parse_instance({**data, "nodes": NodeTable(data["nodes"])})
    data = _columnar(valid_dict())
    data["nodes"]["id"][0] = "n 1"
    with pytest.raises(InputError, match=r"Node 'n 1': nodes\.id\[0\]='n 1': String should match pattern"):
        parse_instance({**data, "nodes": NodeTable(data["nodes"])})
    with pytest.raises(ValidationError, match=r"Node 'n 1': nodes\.id\[0\]='n 1': String should match pattern"):
        Instance.model_validate({**_columnar(valid_dict()), "nodes": NodeTable(data["nodes"])})


def test_threads_reading_a_table_get_one_model_per_node() -> None:
    from concurrent.futures import ThreadPoolExecutor

    inst = generate_instance("medium", 0, columnar=True)
    table = inst.nodes
    with ThreadPoolExecutor(4) as pool:
        firsts = list(pool.map(lambda _: table[7], range(8)))
        lists = list(pool.map(lambda _: list(table), range(4)))
    assert all(n is firsts[0] for n in firsts)
    assert all(all(a is b for a, b in zip(lst, lists[0], strict=True)) for lst in lists)
    assert lists[0][7] is firsts[0]


def test_an_s0_column_may_be_absent_or_hold_nulls() -> None:
    data = _columnar(valid_dict())
    data["nodes"]["s0"] = [None] * len(data["nodes"]["id"])
    data["nodes"]["s0"][0] = "r-1"
    inst = parse_instance(data)
    assert [n.s0 for n in inst.nodes][:2] == ["r-1", None]
    del data["nodes"]["s0"]
    assert [n.s0 for n in parse_instance(data).nodes] == [None] * len(data["nodes"]["id"])


def test_lax_values_are_coerced_as_the_row_form_does() -> None:
    data = _columnar(valid_dict())
    data["nodes"]["gpus_total"][0] = "8"  # the row form accepts "8" and True as ints, as pydantic does
    data["nodes"]["gpus_free"][1] = True
    cols = parse_instance(data)
    rows_data = _rows_1_2(valid_dict())
    rows_data["nodes"][0]["gpus_total"] = "8"
    rows_data["nodes"][1]["gpus_free"] = True
    rows = parse_instance(rows_data)
    assert cols == rows
    assert type(cols.nodes[0].gpus_total) is int
    assert type(cols.nodes[1].gpus_free) is int


def test_the_schema_accepts_both_forms() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = Instance.model_json_schema()
    jsonschema.validate(_columnar(valid_dict()), schema)
    jsonschema.validate(_rows_1_2(valid_dict()), schema)
    jsonschema.validate(_runs(valid_dict()), schema)
    for key, value in (("lengths", [2, 0]), ("counts", [2, 1])):  # a run of no node; a wrong key
        runs = _runs(valid_dict())
        runs["nodes"]["s1"] = {"values": ["a-1", "b-1"], key: value}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(runs, schema)
    bad = _columnar(valid_dict())
    bad["nodes"]["gpu_typo"] = bad["nodes"].pop("gpu_type")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# -- the same errors ------------------------------------------------------------------------------------


def _node_cases() -> list[tuple[str, Any]]:
    """The bad-input cases whose mutated nodes still have one shape (each node the same keys): they have a
    columnar twin."""
    out = []
    for case, mutate, _ in MUTATIONS:
        data = valid_dict()
        mutate(data)
        nodes = data.get("nodes")
        if not isinstance(nodes, list) or not nodes or not all(isinstance(n, dict) for n in nodes):
            continue
        keys = {frozenset(n) for n in nodes}
        if len(keys) != 1 or not set(next(iter(keys))) <= set(NODE_FIELDS) | {"s0"}:
            continue
        if not set(NODE_FIELDS[:-1]) <= next(iter(keys)):
            continue
        try:
            parse_instance(_rows_1_2(data))
        except InputError:
            out.append((case, mutate))  # still an error in format 1.2
    return out


NODE_CASES = _node_cases()


def test_every_kind_of_bad_input_has_columnar_cases() -> None:
    assert len(NODE_CASES) >= 20, [c for c, _ in NODE_CASES]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize(("case", "mutate"), NODE_CASES, ids=[c for c, _ in NODE_CASES])
def test_columns_give_the_row_forms_error(case: str, mutate: Any, suffix: str, tmp_path: Path) -> None:
    data = valid_dict()
    mutate(data)
    row_message = _message(_rows_1_2(data), suffix, tmp_path)
    col_message = _message(_columnar(data), suffix, tmp_path)
    # The same line; a field's error points into the columns: "Node 'n1': nodes.gpus_free[0]=-1: ..."
    assert re.sub(r": nodes\.(\w+)\[\d+\]=", r": \1=", col_message) == row_message
    if col_message != row_message:
        assert re.search(r": nodes\.\w+\[\d+\]=", col_message), col_message


@pytest.mark.parametrize("field", ["cluster", "s2", "s1"])
def test_a_null_place_of_a_node_is_the_row_forms_error(field: str, tmp_path: Path) -> None:
    # only s0 may be null; a null cluster, S2 or S1 once slipped past the fast check (or raised a
    # TypeError) because the nulls of s0 were dropped from all the topology names at once
    rows, cols = valid_dict(), _columnar(valid_dict())
    rows["nodes"][2][field] = None
    cols["nodes"][field][2] = None
    assert _message(cols, ".json", tmp_path) == f"Node 'n3': nodes.{field}[2]=None: Input should be a valid string"
    assert _message(_rows_1_2(rows), ".json", tmp_path) == f"Node 'n3': {field}=None: Input should be a valid string"


@pytest.mark.parametrize("ident", ["n" * 200, "n" * 201, "", "n\nm", "n\u00e9", "n m"])
@pytest.mark.parametrize("row", [0, 1, 2])  # the first and the last id begin and end the joined text
@pytest.mark.parametrize("form", ["columns", "runs"])
def test_a_node_id_is_checked_in_columns_as_in_rows(ident: str, row: int, form: str, tmp_path: Path) -> None:
    # the ids' fast check runs over them joined by newlines (lengths from the gaps between the newlines)
    data = valid_dict()
    old = data["nodes"][row]["id"]
    data["nodes"][row]["id"] = ident
    for group in data["groups"]:
        for pod in group["pods"]:
            pod["node"] = ident if pod["node"] == old else pod["node"]
    columnar = _columnar(data) if form == "columns" else _runs(data)
    assert hetero_opt.instance._ids_ok([n["id"] for n in data["nodes"]]) is (len(ident) == 200)  # no fallback
    try:
        expected = parse_instance(_rows_1_2(data))
    except InputError:
        row_message = _message(_rows_1_2(data), ".json", tmp_path)
        assert re.sub(r": nodes\.(\w+)\[\d+\]=", r": \1=", _message(columnar, ".json", tmp_path)) == row_message
        assert len(ident) != 200
    else:
        assert len(ident) == 200
        assert parse_instance(columnar) == expected.model_copy(update={"format_version": columnar["format_version"]})


def test_an_empty_slice_of_a_checked_table_is_no_instance_nodes() -> None:
    data = _columnar(valid_dict())
    table = parse_instance(data).nodes
    assert isinstance(table, NodeTable)
    with pytest.raises(InputError, match=r"nodes: the columns hold no node \(at least 1 is required\)"):
        parse_instance({**data, "nodes": table[0:0]})


def test_a_field_error_names_the_node_the_column_and_the_position(tmp_path: Path) -> None:
    data = _columnar(valid_dict())
    data["nodes"]["gpus_free"][1] = 65
    assert _message(data, ".json", tmp_path) == (
        "Node 'n2': nodes.gpus_free[1]=65: Input should be less than or equal to 64"
    )
    data = _columnar(valid_dict())
    data["nodes"]["id"][2] = None
    assert _message(data, ".json", tmp_path) == "nodes[2]: nodes.id[2]=None: Input should be a valid string"


def _shape(change: str) -> dict[str, Any]:
    data = _columnar(valid_dict())
    cols = data["nodes"]
    if change == "short":
        cols["gpus_free"].pop()
    elif change == "missing":
        del cols["cluster"]
    elif change == "unknown":
        cols["rack"] = cols.pop("s0", [None] * len(cols["id"]))
    elif change == "not-a-list":
        cols["s1"] = "a-1"
    elif change == "empty":
        data["nodes"] = {f: [] for f in cols}
    elif change == "version":
        data["format_version"] = "1.1"
    elif change == "version-1.0":
        data["format_version"] = "1.0"
    elif change == "scalar":
        data["nodes"] = 5
    elif change == "runs-many":  # a few numbers standing for 2M nodes: refused before any column is expanded
        data["format_version"] = "1.4"
        data["nodes"] = {f: {"values": [v[0], v[0]], "lengths": [10**6, 10**6]} for f, v in cols.items()}
    elif change == "runs-huge":  # two 4,300-digit lengths: the message must still name the column, and be short
        data["format_version"] = "1.4"
        data["nodes"] = {f: {"values": [v[0], v[0]], "lengths": [10**4299, 10**4299]} for f, v in cols.items()}
    elif change.startswith("runs"):
        data["format_version"] = "1.4"
        runs: dict[str, Any] = {"values": ["a-1", "b-1"], "lengths": [2, 1]}  # s1 of the three nodes, as in valid_dict
        assert list(chain.from_iterable(map(repeat, runs["values"], runs["lengths"]))) == cols["s1"]
        cols["s1"] = runs
        if change == "runs-keys":
            runs["counts"] = runs.pop("lengths")
        elif change == "runs-not-a-list":
            runs["values"] = "a-1"
        elif change == "runs-unequal":
            runs["lengths"].append(1)
        elif change == "runs-zero":
            runs["lengths"][1] = 0
        elif change == "runs-bool":
            runs["lengths"][1] = True
        elif change == "runs-long":
            runs["lengths"][1] = 2
        elif change == "runs-version":
            data["format_version"] = "1.3"
    return data


SHAPES = [
    ("short", r"^nodes: column 'gpus_free' has \d+ values but column 'id' has \d+ \(one per node\)$"),
    ("missing", r"^nodes: column 'cluster' is missing \(columns: id, gpu_type, .*s0 optional\)$"),
    ("unknown", r"^nodes: unknown column 'rack' \(columns: id, gpu_type, .*\)$"),
    ("not-a-list", r"^nodes: column 's1' must be a list \(one value per node\) or, format 1\.4, runs .*, got str$"),
    ("empty", r"^nodes: the columns hold no node \(at least 1 is required\)$"),
    ("version", r"^nodes: columns \(a mapping of node fields\) need format_version '1.2' or later, not '1.1'$"),
    ("version-1.0", r"^nodes: columns \(a mapping of node fields\) need format_version '1.2' or later, not '1.0'$"),
    ("scalar", r"^nodes=5: Input should be a valid list$"),
    # format 1.4: a column as runs of equal values
    ("runs-keys", r"^nodes: column 's1' as runs must map exactly 'values' and 'lengths' to lists, got keys "
     r"\['counts', 'values'\]$"),
    ("runs-not-a-list", r"^nodes: column 's1': runs 'values' must be a list, got str$"),
    ("runs-unequal", r"^nodes: column 's1': runs have 2 values but 3 lengths \(one of each per run\)$"),
    ("runs-zero", r"^nodes: column 's1': runs lengths\[1\]=0: each length must be an integer in 1\.\.1000000$"),
    ("runs-bool", r"^nodes: column 's1': runs lengths\[1\]=True: each length must be an integer in 1\.\.1000000$"),
    ("runs-long", r"^nodes: column 's1' has 4 values in its runs but column 'id' has 3 \(one per node\)$"),
    ("runs-many", r"^nodes: column 'id': its runs stand for 2000000 nodes: at most 1000000 are read$"),
    ("runs-huge", r"^nodes: column 'id': runs lengths\[0\]=1000000000.{60,80}: each length must be an integer in "),
    ("runs-version", r"^nodes: column 's1' as runs \(a mapping of values and lengths\) needs format_version "
     r"'1\.4', not '1\.3'$"),
]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize(("change", "pattern"), SHAPES, ids=[c for c, _ in SHAPES])
def test_a_bad_shape_of_columns_is_one_line(change: str, pattern: str, suffix: str, tmp_path: Path) -> None:
    assert re.match(pattern, _message(_shape(change), suffix, tmp_path))


def test_the_cli_refuses_bad_columns_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_shape("short")))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert "Traceback" not in err
    assert err.startswith(f"{path}: nodes: column 'gpus_free' has")


# -- the same plans -------------------------------------------------------------------------------------

FAMILIES = [("production", 0, {}), ("production", 1, {}), ("production", 2, {}), ("heavy", 0, {})]


def _as_columns(inst: Instance) -> Instance:
    """``inst`` declared as format 1.3 (a generated row-form instance says 1.1), to compare with its columns."""
    return inst.model_copy(update={"format_version": "1.3"})


@pytest.mark.parametrize(("family", "seed", "over"), FAMILIES, ids=[f"{f}-{s}" for f, s, _ in FAMILIES])
def test_generated_plans_are_identical_on_both_forms(family: str, seed: int, over: dict[str, int]) -> None:
    cols = generate_instance(family, seed, **over)
    rows = generate_instance(family, seed, columnar=False, **over)
    assert isinstance(cols.nodes, NodeTable)
    assert isinstance(rows.nodes, list)
    assert (cols.format_version, rows.format_version) == ("1.3", "1.1")  # rows need nothing of 1.2 or 1.3
    assert cols == _as_columns(rows)
    plan = greedy_plan(cols, build_view(cols))
    assert plan == greedy_plan(rows, build_view(rows))
    assert verify(cols, plan) == []
    assert verify(rows, plan) == []
    after = apply_plan(cols, plan)
    assert isinstance(after.nodes, NodeTable)
    assert after == _as_columns(apply_plan(rows, plan))
    models = cols.nodes._models or []  # type: ignore[attr-defined]
    assert sum(m is not None for m in models) < len(cols.nodes) // 4  # only the nodes looked up


def test_greedy_plans_are_identical_at_twice_production() -> None:
    over = {"num_nodes": 40_960, "num_clusters": 8, "num_services": 400, "num_requests": 100}
    cols = generate_instance("production", 0, **over)
    rows = generate_instance("production", 0, columnar=False, **over)
    assert greedy_plan(cols, build_view(cols)) == greedy_plan(rows, build_view(rows))


@pytest.mark.parametrize("family", ["medium", "moe"])
def test_cpsat_plans_are_identical_on_both_forms(family: str) -> None:
    cols = generate_instance(family, 0, columnar=True)
    rows = generate_instance(family, 0, columnar=False)
    a = solve(cols, "cpsat", time_limit=2.0, seed=0, num_workers=1)
    b = solve(rows, "cpsat", time_limit=2.0, seed=0, num_workers=1)
    assert a.plan == b.plan
    assert a.score == b.score
    assert verify(cols, a.plan) == []


def test_a_view_of_columns_equals_the_view_of_rows_on_production() -> None:
    """Every look-up a solver reads (CP-SAT included, whose plans at production depend on the wall clock
    through its deadlines: equal across forms at time_limit=6, measured) is the same on both forms."""
    cols = generate_instance("production", 1)
    rows = generate_instance("production", 1, columnar=False)
    a, b = build_view(cols), build_view(rows)
    names = [
        "s1_ids", "s2_by_s1", "cluster_by_s1", "s1s_by_s2", "gpu_types_by_s1", "tier_by_s1", "subgroup_by_s1",
        "free_nodes", "whole_free_ids", "free_by_s1_type", "slots_by_size", "cells_by_size_type", "units_by_group",
        "requests", "s1s_by_domain",
    ]
    for name in names:
        assert getattr(a, name) == getattr(b, name), name
    taken = dict.fromkeys(list(a.whole_free_ids)[:50], 2)
    assert a.with_taken(taken).free_nodes == b.with_taken(taken).free_nodes
    assert dict(a.node_by_id) == b.node_by_id
    assert a.nodes_by_s1 == b.nodes_by_s1


@settings(max_examples=40, deadline=None)
@given(data=instance_dicts())
def test_row_and_columnar_forms_load_equal_and_plan_alike(data: dict[str, Any]) -> None:
    try:
        rows = parse_instance(_rows_1_2(data), "fuzz")
    except InputError as exc:
        message = str(exc).removeprefix("fuzz: ")
        with pytest.raises(InputError) as col_exc:
            parse_instance(_columnar(data), "fuzz")
        assert re.sub(r": nodes\.(\w+)\[\d+\]=", r": \1=", str(col_exc.value).removeprefix("fuzz: ")) == message
        return
    cols = parse_instance(_columnar(data), "fuzz")
    assert cols == rows
    assert isinstance(cols.nodes, NodeTable)
    assert greedy_plan(cols, build_view(cols)) == greedy_plan(rows, build_view(rows))


#: Bad values a node may get (field, value): each an error the row form names.
BAD_NODE_VALUES = [
    ("gpus_free", 65), ("gpus_total", 0), ("gpus_free", "8"), ("s1", None), ("s2", "a b"), ("gpu_type", "X@1"),
    ("cluster", 7), ("s0", "bad!"), ("id", ""),
]


@settings(max_examples=60, deadline=None)
@given(data=instance_dicts(), draw=st.data())
def test_runs_load_as_their_columns_with_the_same_errors(data: dict[str, Any], draw: st.DataObject) -> None:
    """Format 1.4: columns given as runs, any of them, are the columns they expand to, error for error (a
    value's error names its node's place, as the plain column's), and their distinct places (found from the
    runs' ends where every place column is runs) are the columns'. Nodes get S0s, some null, and sometimes
    one bad value."""
    nodes = data["nodes"]
    if draw.draw(st.booleans()):
        for i, n in enumerate(nodes):
            if draw.draw(st.integers(0, 3)):
                n["s0"] = f"{n['s1']}-r{i // 2}"
    if draw.draw(st.integers(0, 2)) == 0:
        field, value = draw.draw(st.sampled_from(BAD_NODE_VALUES))
        nodes[draw.draw(st.integers(0, len(nodes) - 1))][field] = value
    names = draw.draw(st.sets(st.sampled_from(NODE_FIELDS)) | st.just(set(NODE_FIELDS)))
    try:
        cols = parse_instance(_columnar(data), "fuzz")
    except InputError as exc:
        message = str(exc)
        with pytest.raises(InputError) as runs_exc:
            parse_instance(_runs(data, names), "fuzz")
        assert str(runs_exc.value) == message
        return
    runs = parse_instance(_runs(data, names), "fuzz")
    assert runs == cols.model_copy(update={"format_version": "1.4"})
    assert isinstance(runs.nodes, NodeTable)
    assert isinstance(cols.nodes, NodeTable)
    places = zip(*map(cols.nodes.column, ("cluster", "s2", "s1", "s0", "gpu_type")), strict=True)
    assert runs.nodes.places() == frozenset(places)


def test_save_writes_repeated_node_columns_as_runs(tmp_path: Path) -> None:
    inst = generate_instance("production", 0)
    path, plain = tmp_path / "runs.json", tmp_path / "plain.json"
    save_instance(inst, path)
    save_instance(inst, plain, runs=False)
    data, data_plain = json.loads(path.read_text()), json.loads(plain.read_text())
    assert (data["format_version"], data_plain["format_version"]) == ("1.4", "1.3")
    # node by node, the ids and the free GPUs change (plain lists); the GPU type and the switches come in runs
    as_runs = {f for f, c in data["nodes"].items() if isinstance(c, dict)}
    assert as_runs == {"gpu_type", "gpus_total", "cluster", "s2", "s1", "s0"}
    for name, col in data["nodes"].items():
        if isinstance(col, dict):
            assert list(chain.from_iterable(map(repeat, col["values"], col["lengths"]))) == data_plain["nodes"][name]
            assert 4 * len(col["values"]) <= len(inst.nodes)
    assert path.stat().st_size < plain.stat().st_size / 2
    loaded, loaded_plain = load_instance(path), load_instance(plain)
    assert loaded == inst.model_copy(update={"format_version": "1.4"})
    assert loaded_plain == inst
    assert loaded.nodes.places() == loaded_plain.nodes.places()
    # the instance read from runs, saved without them, says 1.3
    save_instance(loaded, plain, runs=False)
    assert json.loads(plain.read_text())["format_version"] == "1.3"


def test_a_value_repeated_down_a_column_loads_as_few_objects(tmp_path: Path) -> None:
    # Plain columns repeat a GPU type, a cluster, a switch node after node: the parser's string cache makes
    # each repeated value one object (else 20k strings per column); runs hold one object per run. The cache
    # is left off only where no column of strings but the ids is plain (decision 71).
    inst = generate_instance("production", 0)
    runs, plain, named, mixed = (tmp_path / f"{name}.json" for name in ("runs", "plain", "named", "mixed"))
    save_instance(inst, runs)
    save_instance(inst, plain, runs=False)
    save_instance(inst.model_copy(update={"name": '"lengths" {"values": 1}'}), named, runs=False)
    data = json.loads(runs.read_text())  # runs, but for the GPU types, plain (a file written by hand)
    data["nodes"]["gpu_type"] = list(chain.from_iterable(map(repeat, *data["nodes"]["gpu_type"].values())))
    mixed.write_text(json.dumps(data))
    for path in (runs, plain, named, mixed):
        nodes = load_instance(path).nodes
        assert nodes == inst.nodes
        for name in ("gpu_type", "cluster", "s2", "s1"):
            column = nodes.column(name)
            assert len({id(v) for v in column}) < len(column) / 10, (path.name, name)


@pytest.mark.parametrize(
    ("nodes", "all_runs"),
    [
        ('"id": ["a"], "gpu_type": ["H20"], "cluster": ["c"], "s2": ["b"], "s1": ["m"]', False),
        ('"id": ["a"], "gpu_type": R, "cluster": R, "s2": R, "s1": R', True),
        ('"id": ["a"], "gpu_type": R, "cluster": R, "s2": R, "s1": R, "s0": null', True),
        ('"id": ["a"], "gpu_type": R, "cluster": R, "s2": R, "s1": R, "s0": ["x"]', False),
        ('"id": ["a"], "gpu_type": R, "cluster": ["c"], "s2": R, "s1": R', False),
        # a value that reads as a column's name (a node named "s1") is no key: followed by no colon
        ('"id": ["s1", "cluster"], "gpu_type": R, "cluster" :\n R, "s2": R, "s1": R', True),
        ('"id": ["a"], "gpu_type": R', True),  # columns left out: the validation's to refuse
    ],
)
def test_the_string_cache_is_left_off_only_where_every_repeating_column_is_runs(nodes: str, all_runs: bool) -> None:
    text = '{"format_version": "1.4", "nodes": {' + nodes.replace("R", '{"values": ["v"], "lengths": [1]}') + "}}"
    start = text.index("{", text.index('"nodes"'))
    assert hetero_opt.io._repeats_as_runs(text, start + 1) is all_runs
    assert hetero_opt.io._repeats_as_runs(text.encode(), start + 1) is all_runs


@settings(max_examples=60, deadline=None)
@given(data=instance_dicts(), draw=st.data())
def test_the_cache_rule_reads_any_mix_of_columns_and_runs_as_written(data: dict[str, Any], draw: st.DataObject) -> None:
    # the walk over the nodes' columns against the columns themselves, whatever the JSON layout
    names = draw.draw(st.sets(st.sampled_from(NODE_FIELDS)))
    doc = _runs(data, names)
    if isinstance(doc["nodes"], dict) and draw.draw(st.booleans()):
        doc["nodes"] = dict(reversed(list(doc["nodes"].items())))  # any column order
    indent = draw.draw(st.sampled_from([None, 0, 1, 2]))
    text = json.dumps(doc, indent=indent, separators=(",", ": ") if indent is not None else (", ", ": "))
    nodes = hetero_opt.io._NODES.search(text)
    assert nodes is not None
    if nodes[1] != "{":
        return  # rows: no cache rule
    repeating = [v for k, v in doc["nodes"].items() if k in ("gpu_type", "cluster", "s2", "s1", "s0") and v is not None]
    expected = bool(repeating) and all(isinstance(v, dict) for v in repeating)
    assert hetero_opt.io._repeats_as_runs(text, nodes.end()) is expected
    assert hetero_opt.io._repeats_as_runs(text.encode(), nodes.end()) is expected


def test_columns_with_nothing_worth_runs_are_written_plain_as_1_3(tmp_path: Path) -> None:
    # three nodes: every column has more than a quarter as many runs as values (even one run of 3)
    inst = parse_instance(_runs(valid_dict()))
    assert inst.format_version == "1.4"
    path = tmp_path / "small.json"
    save_instance(inst, path)
    data = json.loads(path.read_text())
    assert data["format_version"] == "1.3"
    assert all(isinstance(c, list) for c in data["nodes"].values())
    assert load_instance(path) == inst.model_copy(update={"format_version": "1.3"})


def test_a_node_built_alone_is_the_same_model() -> None:
    table = parse_instance(_columnar(valid_dict())).nodes
    rows = parse_instance(_rows_1_2(valid_dict())).nodes
    for a, b in zip(table, rows, strict=True):
        assert isinstance(a, Node)
        assert a == b
        assert a.model_dump() == b.model_dump()
        assert hash(a) == hash(b)
        assert a.model_fields_set == b.model_fields_set
