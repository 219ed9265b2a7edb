"""Columnar pods (format 1.3): the same instance as the row form, the same errors, the same plans.

A group's ``pods`` may be a mapping of equal-length lists, one per :class:`PodCount` field. It loads into a
:class:`PodTable`, a read-only sequence of ``PodCount`` that builds a pod's model when it is read.
"""

from __future__ import annotations

import copy
import json
import pickle
import re
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
from test_columnar import _columnar, _message

from hetero_opt import InputError, parse_instance, solve, verify
from hetero_opt.cli import main
from hetero_opt.generate import generate_instance
from hetero_opt.instance import (
    NODE_FIELDS,
    POD_FIELDS,
    DeploymentGroup,
    Instance,
    NodeTable,
    PodCount,
    PodTable,
    group_units,
    pod_rows,
    pods_by_role,
)
from hetero_opt.io import load_instance, loads_instance, save_instance
from hetero_opt.placement.apply import apply_plan
from hetero_opt.placement.greedy import greedy_plan
from hetero_opt.topology import build_view


def _pod_columns(data: dict[str, Any], nodes_as_columns: bool = False) -> dict[str, Any]:
    """``data`` with every group's pods as columns and format 1.3 (its nodes as columns too if asked)."""
    out = _columnar(data) if nodes_as_columns else copy.deepcopy(data)
    for g in out.get("groups", []):
        pods = g.get("pods", [])
        g["pods"] = {f: [p.get(f) for p in pods] for f in POD_FIELDS}
    out["format_version"] = "1.3"
    return out


def _rows_1_3(data: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(data), "format_version": "1.3"}


def _as_rows(message: str) -> str:
    """A columnar message, a value's place in the columns (``pods.count[0]``) as the row form's (``pods.0.count``)."""
    return re.sub(r": pods\.(\w+)\[(\d+)\]=", r": pods.\2.\1=", message)


# -- equal instances, one API --------------------------------------------------------------------------


@pytest.mark.parametrize("nodes_as_columns", [False, True])
def test_columns_load_to_the_row_forms_instance(nodes_as_columns: bool) -> None:
    rows = parse_instance(_rows_1_3(valid_dict()))
    cols = parse_instance(_pod_columns(valid_dict(), nodes_as_columns))
    assert isinstance(cols.groups[0].pods, PodTable)
    assert isinstance(rows.groups[0].pods, list)
    assert isinstance(cols.nodes, NodeTable) == nodes_as_columns
    assert cols == rows
    assert rows == cols
    assert cols.groups == rows.groups
    assert cols.groups[0].pods == rows.groups[0].pods
    assert rows.groups[0].pods == cols.groups[0].pods
    assert list(cols.groups[0].pods) == rows.groups[0].pods


def test_a_table_is_a_read_only_sequence_of_pods() -> None:
    rows = parse_instance(_rows_1_3(valid_dict())).groups[0].pods
    table = parse_instance(_pod_columns(valid_dict())).groups[0].pods
    assert isinstance(table, PodTable)
    assert len(table) == len(rows) == 2
    assert table[0] == rows[0]
    assert table[-1] == rows[-1]
    assert table[0] is table[0]  # built once, then the same object
    assert list(table) == rows
    assert [p for p in table][1] is table[1]
    assert table[1:] == rows[1:]
    assert isinstance(table[1:], PodTable)
    assert rows[1] in table
    assert rows[1].model_copy(update={"count": 2}) not in table
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
    assert table != [rows[1], rows[0]]
    assert table != "pods"
    assert PodTable.from_pods(rows) == table
    assert table.column("node") == tuple(p.node for p in rows)
    assert table.to_columns() == {f: [getattr(p, f) for p in rows] for f in POD_FIELDS}
    assert table.to_rows() == [p.model_dump() for p in rows]
    assert list(pod_rows(table)) == list(pod_rows(rows)) == [(p.role, p.node, p.count) for p in rows]
    assert repr(table) == "PodTable(2 pods)"


def test_models_are_built_only_when_read() -> None:
    inst = parse_instance(_pod_columns(valid_dict(), nodes_as_columns=True))
    table = inst.groups[0].pods
    assert isinstance(table, PodTable)
    view = build_view(inst)
    assert view.units_by_group == {"g1": 1}  # the view reads the columns
    assert table._models is None
    assert pods_by_role(inst.groups[0]) == {"prefill": 1, "decode": 1}
    assert group_units(inst.services[0], inst.groups[0]) == 1
    assert table._models is None
    assert table[1].role == "decode"
    assert sum(m is not None for m in table._models or []) == 1


@pytest.mark.parametrize(
    ("selection", "reached"),
    [
        ({"include": {"groups": {0: {"pods": {0}}}}}, {"groups"}),
        ({"exclude": {"groups": {"__all__": {"pods": {"__all__": {"count"}}}}}}, {"groups"}),
        ({"include": {"nodes": {1}, "groups": {0: {"pods": {1: {"role"}}}}}}, {"nodes", "groups"}),
        ({"exclude": {"nodes": {"__all__": {"s0", "cluster"}}}}, {"nodes"}),
    ],
)
def test_a_dump_selecting_inside_a_table_gives_the_rows_it_selects(
    selection: dict[str, Any], reached: set[str]
) -> None:
    # columns cannot hold a selection of rows or fields, so a table the selection reaches into dumps as
    # the row form's selected rows (it used to ignore the selection and dump every column); a table it
    # does not reach keeps its columns
    rows = parse_instance(_rows_1_3(valid_dict())).model_dump(mode="json", **selection)
    table = parse_instance(_pod_columns(valid_dict(), nodes_as_columns=True))
    got = table.model_dump(mode="json", **selection)
    for key in reached:
        assert got[key] == rows[key]
    if "nodes" not in reached and "nodes" in got:  # (an include of groups alone dumps no nodes)
        assert got["nodes"] == table.nodes.to_columns()  # type: ignore[attr-defined]
    if "groups" not in reached:
        assert got["groups"][0]["pods"] == table.groups[0].pods.to_columns()  # type: ignore[attr-defined]


def test_membership_index_and_count_read_the_columns() -> None:
    # as a list's, with no model built (they used to build every pod's)
    rows = parse_instance(_rows_1_3(valid_dict())).groups[0].pods
    table = parse_instance(_pod_columns(valid_dict())).groups[0].pods
    assert isinstance(table, PodTable)
    other = rows[1].model_copy(update={"count": 2})
    for value in (rows[0], rows[1], other, "pods", None):
        assert (value in table) == (value in rows)
        assert table.count(value) == rows.count(value)
    assert [table.index(p) for p in rows] == [rows.index(p) for p in rows] == [0, 1]
    assert table.index(rows[1], 1) == 1
    assert table.index(rows[0], -2, -1) == 0
    for args in ((other,), (rows[0], 1), (rows[1], 0, 1), ("pods",)):
        with pytest.raises(ValueError, match="is not in"):
            table.index(*args)
        with pytest.raises(ValueError, match="is not in"):
            rows.index(*args)
    class Sub(PodCount):  # equal fields, another class: not equal to a row, as in the list
        pass

    sub = Sub(**rows[0].model_dump())
    assert (sub in table, table.count(sub)) == (sub in rows, rows.count(sub)) == (False, 0)
    assert table._models is None


def test_pickle_copy_dump_and_replace_keep_the_table() -> None:
    inst = parse_instance(_pod_columns(valid_dict(), nodes_as_columns=True))
    back = pickle.loads(pickle.dumps(inst))
    assert back == inst
    assert isinstance(back.groups[0].pods, PodTable)
    assert copy.deepcopy(inst) == inst
    dumped = inst.model_dump()
    assert dumped["groups"][0]["pods"] == inst.groups[0].pods.to_columns()  # type: ignore[attr-defined]
    assert Instance.model_validate(dumped) == inst
    assert Instance.model_validate_json(inst.model_dump_json()) == inst
    group = inst.groups[0]
    pods = list(group.pods)
    replaced = group.replace(pods=[pods[0].model_copy(update={"count": 1})])
    assert isinstance(replaced.pods, list)
    again = group.replace(domain="a")
    assert isinstance(again.pods, PodTable)
    assert again == group
    with pytest.raises(TypeError):
        hash(group)


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_writes_the_form_the_instance_holds(tmp_path: Path, suffix: str) -> None:
    cols = parse_instance(_pod_columns(valid_dict(), nodes_as_columns=True))
    pods_only = parse_instance(_pod_columns(valid_dict()))
    rows = parse_instance(_rows_1_3(valid_dict()))
    old = parse_instance({**valid_dict(), "format_version": "1.1"})
    cases = [
        (cols, None, dict, dict, "1.3"),
        (pods_only, None, list, dict, "1.3"),
        (rows, None, list, list, "1.3"),
        (old, True, dict, dict, "1.3"),  # the upgrade: any earlier file saved as columns is format 1.3
        (cols, False, list, list, "1.1"),  # rows need nothing of 1.2 or 1.3: readable before them
    ]
    for inst, columnar, nodes_want, pods_want, version in cases:
        path = tmp_path / f"i{suffix}"
        save_instance(inst, path, columnar=columnar)
        data = yaml.safe_load(path.read_text())
        assert isinstance(data["nodes"], nodes_want)
        assert isinstance(data["groups"][0]["pods"], pods_want)
        assert data["format_version"] == version
        back = load_instance(path)
        assert back == inst.model_copy(update={"format_version": version})
        assert isinstance(back.groups[0].pods, PodTable) == (pods_want is dict)


def test_a_table_built_by_hand_is_checked_by_the_group() -> None:
    data = _pod_columns(valid_dict())
    good = PodTable(data["groups"][0]["pods"])
    assert parse_instance({**data, "groups": [{**data["groups"][0], "pods": good}]}).groups[0].pods == good
    bad = PodTable({"role": ["prefill"], "node": ["n1"], "count": [0]})
    with pytest.raises(InputError, match=r"DeploymentGroup 'g1': pods\.count\[0\]=0: Input should be greater"):
        parse_instance({**data, "groups": [{**data["groups"][0], "pods": bad}]})
    with pytest.raises(ValidationError, match=r"pods\.0\.count\n  Input should be greater than or equal to 1"):
        DeploymentGroup(id="g", service="chat", domain="a", pods=bad)


def test_threads_reading_a_table_get_one_model_per_pod() -> None:
    from concurrent.futures import ThreadPoolExecutor

    inst = generate_instance("production", 0)
    table = max((g.pods for g in inst.groups), key=len)
    assert isinstance(table, PodTable)
    with ThreadPoolExecutor(4) as pool:
        firsts = list(pool.map(lambda _: table[1], range(8)))
        lists = list(pool.map(lambda _: list(table), range(4)))
    assert all(p is firsts[0] for p in firsts)
    assert all(all(a is b for a, b in zip(lst, lists[0], strict=True)) for lst in lists)
    assert lists[0][1] is firsts[0]


def test_lax_values_are_coerced_as_the_row_form_does() -> None:
    data = _pod_columns(valid_dict())
    data["groups"][0]["pods"]["count"] = ["1", True]  # the row form accepts "1" and True as ints, as pydantic does
    cols = parse_instance(data)
    rows_data = _rows_1_3(valid_dict())
    rows_data["groups"][0]["pods"][0]["count"] = "1"
    rows_data["groups"][0]["pods"][1]["count"] = True
    assert cols == parse_instance(rows_data)
    assert [type(p.count) for p in cols.groups[0].pods] == [int, int]
    for lax in (True, 1.0):  # equal to 1 (and hashed as 1), but not an int: coerced as the row form does
        data["groups"][0]["pods"]["count"] = [1, lax]
        pods = parse_instance(data).groups[0].pods
        assert pods.column("count") == (1, 1)  # type: ignore[attr-defined]
        assert [type(c) for c in pods.column("count")] == [int, int]  # type: ignore[attr-defined]


def test_an_empty_table_is_a_group_without_pods() -> None:
    data = _pod_columns(valid_dict())
    data["groups"][0]["pods"] = {f: [] for f in POD_FIELDS}
    data["requests"] = []
    data["services"][0]["min_units"] = 0
    inst = parse_instance(data)
    assert inst.groups[0].pods == []
    assert build_view(inst).units_by_group == {"g1": 0}


def test_the_schema_accepts_both_forms() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = Instance.model_json_schema()
    jsonschema.validate(_pod_columns(valid_dict(), nodes_as_columns=True), schema)
    jsonschema.validate(_rows_1_3(valid_dict()), schema)
    bad = _pod_columns(valid_dict())
    bad["groups"][0]["pods"]["host"] = bad["groups"][0]["pods"].pop("node")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# -- the same errors ------------------------------------------------------------------------------------


def _pod_cases() -> list[tuple[str, Any]]:
    """The bad-input cases whose groups' pods and nodes still have one shape (each pod a mapping of the three
    fields, each node of the same fields): they have a columnar twin."""
    out = []
    for case, mutate, _ in MUTATIONS:
        data = valid_dict()
        mutate(data)
        nodes = data.get("nodes")
        if not isinstance(nodes, list) or len({frozenset(n) for n in nodes}) != 1:
            continue
        if not set(NODE_FIELDS[:-1]) <= set(nodes[0]) <= set(NODE_FIELDS):
            continue
        groups = data.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            continue
        pods = [p for g in groups for p in (g.get("pods") if isinstance(g.get("pods"), list) else [None])]
        if not all(isinstance(p, dict) and set(p) == set(POD_FIELDS) for p in pods):
            continue
        try:
            parse_instance(_rows_1_3(data))
        except InputError:
            out.append((case, mutate))  # still an error in format 1.3
    return out


POD_CASES = _pod_cases()


def test_every_kind_of_pod_error_has_columnar_cases() -> None:
    names = {c for c, _ in POD_CASES}
    pod_kinds = {"negative-pod-count", "pod-on-unaccepted-gpu-type", "pod-outside-domain", "pod-on-unknown-node"}
    pod_kinds |= {"pod-listed-twice", "pod-of-a-role-the-service-lacks", "pods-beyond-gpus-in-use"}
    assert pod_kinds <= names, sorted(pod_kinds - names)


@pytest.mark.parametrize("nodes_as_columns", [False, True])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
@pytest.mark.parametrize(("case", "mutate"), POD_CASES, ids=[c for c, _ in POD_CASES])
def test_columns_give_the_row_forms_error(
    case: str, mutate: Any, suffix: str, nodes_as_columns: bool, tmp_path: Path
) -> None:
    data = valid_dict()
    mutate(data)
    rows = _columnar(data) if nodes_as_columns else data
    row_message = _message({**rows, "format_version": "1.3"}, suffix, tmp_path)
    col_message = _message(_pod_columns(data, nodes_as_columns), suffix, tmp_path)
    # The same line; a value's error points into the columns: "DeploymentGroup 'g1': pods.count[0]=-1: ..."
    assert _as_rows(col_message) == row_message
    if col_message != row_message:
        assert re.search(r"^DeploymentGroup 'g1': pods\.\w+\[\d+\]=", col_message), col_message


@pytest.mark.parametrize(
    ("field", "value", "pattern"),
    [
        ("count", 65, r"pods\.count\[1\]=65: Input should be less than or equal to 64"),
        ("count", 0, r"pods\.count\[1\]=0: Input should be greater than or equal to 1"),
        ("count", "two", r"pods\.count\[1\]='two': Input should be a valid integer"),
        ("count", None, r"pods\.count\[1\]=None: Input should be a valid integer"),
        ("role", "prefil", r"pods\.role\[1\]='prefil': Input should be 'prefill', 'decode'"),
        ("role", 3, r"pods\.role\[1\]=3: Input should be 'prefill', 'decode'"),
        ("node", "n 1", r"pods\.node\[1\]='n 1': String should match pattern"),
        ("node", "", r"pods\.node\[1\]='': String should have at least 1 character"),
        ("node", ["n1"], r"pods\.node\[1\]=list: Input should be a valid string"),
    ],
)
def test_a_value_error_names_the_group_the_column_and_the_position(
    field: str, value: object, pattern: str, tmp_path: Path
) -> None:
    data = _pod_columns(valid_dict(), nodes_as_columns=True)
    data["groups"][0]["pods"][field][1] = value
    for suffix in (".json", ".yaml"):
        assert re.fullmatch(f"DeploymentGroup 'g1': {pattern}.*", _message(data, suffix, tmp_path))
    rows = _rows_1_3(valid_dict())
    rows["groups"][0]["pods"][1][field] = value
    assert _message(rows, ".json", tmp_path) == _as_rows(_message(data, ".json", tmp_path))


def _shape(change: str) -> dict[str, Any]:
    data = _pod_columns(valid_dict(), nodes_as_columns=True)
    cols = data["groups"][0]["pods"]
    if change == "short":
        cols["count"].pop()
    elif change == "missing":
        del cols["node"]
    elif change == "unknown":
        cols["host"] = cols["node"]
    elif change == "not-a-list":
        cols["role"] = "prefill"
    elif change == "version":
        data["format_version"] = "1.2"
    elif change == "version-rows":
        data = _pod_columns(valid_dict())
        data["format_version"] = "1.1"
    elif change == "scalar":
        data["groups"][0]["pods"] = 5
    return data


SHAPES = [
    ("short", r"^DeploymentGroup 'g1': pods: column 'count' has 1 value but column 'role' has 2 \(one per pod\)$"),
    ("missing", r"^DeploymentGroup 'g1': pods: column 'node' is missing \(columns: role, node, count\)$"),
    ("unknown", r"^DeploymentGroup 'g1': pods: unknown column 'host' \(columns: role, node, count\)$"),
    ("not-a-list", r"^DeploymentGroup 'g1': pods: column 'role' must be a list \(one value per pod\), got str$"),
    (
        "version",
        r"^DeploymentGroup 'g1': pods as columns \(a mapping of pod fields\) need format_version='1\.3' or later, "
        r"not '1\.2'$",
    ),
    (
        "version-rows",
        r"^DeploymentGroup 'g1': pods as columns \(a mapping of pod fields\) need format_version='1\.3' or later, "
        r"not '1\.1'$",
    ),
    ("scalar", r"^DeploymentGroup 'g1': pods=5: Input should be a valid list$"),
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
    assert err.startswith(f"{path}: DeploymentGroup 'g1': pods: column 'count' has")


# -- the same plans -------------------------------------------------------------------------------------

FAMILIES = [("production", 0), ("production", 1), ("heavy", 0), ("moe", 0)]


@pytest.mark.parametrize(("family", "seed"), FAMILIES, ids=[f"{f}-{s}" for f, s in FAMILIES])
def test_generated_plans_are_identical_on_both_forms(family: str, seed: int) -> None:
    cols = generate_instance(family, seed, columnar=True)
    rows = generate_instance(family, seed, columnar=False)
    assert all(isinstance(g.pods, PodTable) for g in cols.groups)
    assert all(isinstance(g.pods, list) for g in rows.groups)
    assert (cols.format_version, rows.format_version) == ("1.3", "1.1")
    assert cols == rows.model_copy(update={"format_version": "1.3"})
    plan = greedy_plan(cols, build_view(cols))
    # the greedy builds the models of the groups it scales in only (the view reads the columns)
    built = sum(m is not None for g in cols.groups for m in g.pods._models or [])  # type: ignore[attr-defined]
    assert built < sum(len(g.pods) for g in cols.groups) // 4
    assert plan == greedy_plan(rows, build_view(rows))
    assert verify(cols, plan) == []
    models = sum(m is not None for g in cols.groups for m in g.pods._models or [])  # type: ignore[attr-defined]
    after = apply_plan(cols, plan)
    # the plan applied keeps the pods as columns, and reads them without building their models
    assert sum(m is not None for g in cols.groups for m in g.pods._models or []) == models  # type: ignore[attr-defined]
    assert all(isinstance(g.pods, PodTable) for g in after.groups)
    assert after == apply_plan(rows, plan).model_copy(update={"format_version": "1.3"})
    assert loads_instance(json.dumps(after.model_dump(mode="json")), "after.json") == after


def test_cpsat_plans_are_identical_on_both_forms() -> None:
    cols = generate_instance("medium", 0, columnar=True)
    rows = generate_instance("medium", 0, columnar=False)
    a = solve(cols, "cpsat", time_limit=2.0, seed=0, num_workers=1)
    b = solve(rows, "cpsat", time_limit=2.0, seed=0, num_workers=1)
    assert a.plan == b.plan
    assert a.score == b.score


@settings(max_examples=40, deadline=None)
@given(data=instance_dicts())
def test_row_and_columnar_forms_load_equal_and_plan_alike(data: dict[str, Any]) -> None:
    try:
        rows = parse_instance(_rows_1_3(data), "fuzz")
    except InputError as exc:
        message = str(exc).removeprefix("fuzz: ")
        with pytest.raises(InputError) as col_exc:
            parse_instance(_pod_columns(data, nodes_as_columns=True), "fuzz")
        col_message = re.sub(r": nodes\.(\w+)\[\d+\]=", r": \1=", str(col_exc.value).removeprefix("fuzz: "))
        assert _as_rows(col_message) == message
        return
    cols = parse_instance(_pod_columns(data, nodes_as_columns=True), "fuzz")
    assert cols == rows
    assert greedy_plan(cols, build_view(cols)) == greedy_plan(rows, build_view(rows))


def test_a_pod_built_alone_is_the_same_model() -> None:
    table = parse_instance(_pod_columns(valid_dict())).groups[0].pods
    rows = parse_instance(_rows_1_3(valid_dict())).groups[0].pods
    for a, b in zip(table, rows, strict=True):
        assert isinstance(a, PodCount)
        assert a == b
        assert a.model_dump() == b.model_dump()
        assert a.model_fields_set == b.model_fields_set
        assert hash(a) == hash(b)


def test_groups_of_one_file_may_mix_the_forms(tmp_path: Path) -> None:
    inst = generate_instance("production", 0)
    data = inst.model_dump(mode="json")
    for g in data["groups"][::2]:  # every other group's pods as rows
        g["pods"] = [dict(zip(POD_FIELDS, row, strict=True)) for row in zip(*g["pods"].values(), strict=True)]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(data))
    back = load_instance(path)
    assert back == inst
    assert [isinstance(g.pods, PodTable) for g in back.groups[:4]] == [False, True, False, True]
    assert greedy_plan(back, build_view(back)) == greedy_plan(inst, build_view(inst))


# -- the pods' fast check (columns) against the per-pod loop (rows) ------------------------------------------


def _edited(data: dict[str, Any], edits: list[tuple[str, int, int]]) -> dict[str, Any]:
    """``data`` (rows) with its pods edited: a pod moved to another node (maybe of another domain or GPU
    type, or fuller), given another role, more pods, or listed twice."""
    out = copy.deepcopy(data)
    node_ids = [n["id"] for n in out["nodes"]]
    groups = [g for g in out["groups"] if g["pods"]]
    for kind, a, b in edits:
        group = groups[a % len(groups)]
        pod = group["pods"][b % len(group["pods"])]
        if kind == "node":
            pod["node"] = node_ids[b % len(node_ids)]
        elif kind == "role":
            pod["role"] = ("prefill", "decode", "prefill-attn", "serve")[b % 4]
        elif kind == "count":
            pod["count"] = min(64, pod["count"] + 1 + b % 8)
        else:
            group["pods"].append(dict(pod))
    return out


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 5),
    edits=st.lists(
        st.tuples(st.sampled_from(["node", "role", "count", "twice"]), st.integers(0, 999), st.integers(0, 999)),
        max_size=3,
    ),
)
def test_the_pods_fast_check_agrees_with_the_per_pod_loop(seed: int, edits: list[tuple[str, int, int]]) -> None:
    import hetero_opt.instance as module

    data = _edited(generate_instance("small", seed, columnar=False).model_dump(mode="json"), edits)
    try:
        expected: Instance | str = parse_instance(_rows_1_3(data), "f")  # nodes as rows: the per-pod loop alone
    except InputError as exc:
        expected = str(exc)
    verdicts: list[bool] = []
    fast = module._pods_ok
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "_pods_ok", lambda *args: verdicts.append(fast(*args)) or verdicts[-1])
        try:
            got: Instance | str = parse_instance(_pod_columns(data, nodes_as_columns=True), "f")
        except InputError as exc:
            got = str(exc)
    assert got == expected
    # accepted by the fast check (the loop did not run), or refused before the pods or by it (then the loop
    # named the error)
    assert verdicts == [True] if isinstance(got, Instance) else verdicts in ([], [False])
