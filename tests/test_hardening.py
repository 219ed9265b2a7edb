"""Regression tests of issue 11 (defects found by fuzzing): instance files, validation, the CLI.

Each test is named after its defect. The CLI's promise: exit 0 with verified plans, or exit 2 with
ONE stderr line naming the file (or flag), the entity, the field and the value, and nothing written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import failing_write, group, instance_dict, moe_service, node, pd_service, refused, request

import hetero_opt as ho
from hetero_opt.cli import main
from hetero_opt.errors import InputError
from hetero_opt.instance import MAX_UNITS, current_units
from hetero_opt.io import load_instance
from hetero_opt.placement.apply import apply_plan


def _write(tmp_path: Path, data: dict[str, Any], name: str = "x.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


_refused = refused  # the CLI refuses in one line


def _solve_ok(capsys: pytest.CaptureFixture[str], path: Path, out: Path, solver: str) -> dict[str, Any]:
    assert main(["solve", str(path), "--solver", solver, "--out-dir", str(out), "--time-limit", "1"]) == 0
    capsys.readouterr()
    plan: dict[str, Any] = json.loads((out / f"{path.stem}.plan.json").read_text())["plan"]
    return plan


# -------------------------------------------------------------------- defect 1: ids across levels


def _cross_level(s2_of_c0: str) -> dict[str, Any]:
    return instance_dict(
        nodes=[node("n2", "s2-b", "s1-b", cluster="c1"), node("n1", s2_of_c0, "s1-a", cluster="c0")],
        services=[pd_service("svc", "s2", p_size=4, d_size=4)],
        requests=[request("svc", 2)],
    )


@pytest.mark.parametrize(
    ("s2_of_c0", "needle"),
    [
        ("c1", "Node 'n1': s2='c1' is already used as a cluster id"),  # an S2 named like another cluster
        ("c0", "Node 'n1': s2='c0' is already used as a cluster id"),  # an S2 named like its own cluster
        ("s1-b", "Node 'n1': s2='s1-b' is already used as an S1 id"),  # an S2 named like an S1
        ("n2", "Node 'n1': s2='n2' is already used as a node id"),  # an S2 named like a node
    ],
)
def test_ids_shared_across_levels_are_refused_at_validation(
    s2_of_c0: str, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _cross_level(s2_of_c0))
    _refused(capsys, ["validate", str(path)], str(path), needle)
    _refused(capsys, ["solve", str(path), "--out-dir", str(tmp_path / "out")], needle)
    assert not (tmp_path / "out").exists()


def test_ids_shared_across_levels_renamed_apart_solve_and_verify(
    solver: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The fuzzed instance with its ids made distinct: every solver's plan passes the verifier.
    path = _write(tmp_path, _cross_level("s2-a"))
    plan = _solve_ok(capsys, path, tmp_path / "out", solver)
    assert sum(c["units"] for c in plan["changes"]) == 2  # 2 units of 8 GPUs fit 16 free GPUs


def test_ids_topology_id_with_at_sign_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # '@' separates service and domain in a new group's id; a switch id may not hold one.
    data = _cross_level("s2-a")
    data["nodes"][0]["s1"] = "s1@a"
    path = _write(tmp_path, data)
    _refused(capsys, ["validate", str(path)], "Node 'n2': s1='s1@a'", "pattern")


# -------------------------------------------------------------------- defect 2: generated group ids


def _clash(service_id: str = "svc", b: str = "b") -> dict[str, Any]:
    # group '<svc>@<b>' already exists in domain 'a'; the scale-out opens a group in S2 <b>.
    return instance_dict(
        nodes=[node("a1", "a", "a-1", free=0), node("b1", b, "b-1"), node("b2", b, "b-2")],
        services=[pd_service(service_id, "s2", p_size=4, d_size=4, max_new_groups=1)],
        groups=[group(f"{service_id}@{b}", service_id, "a", ("prefill", "a1", 1), ("decode", "a1", 1))],
        requests=[request(service_id, 3)],
    )


def test_generated_group_id_with_clash_suffix_is_valid(
    solver: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _clash())
    plan = _solve_ok(capsys, path, tmp_path / "out", solver)
    (change,) = plan["changes"]
    assert (change["group"], change["domain"], change["units"]) == ("svc@b#2", "b", 2)
    after = apply_plan(load_instance(path), ho.Plan.model_validate(plan))  # the next cycle's instance validates
    assert {g.id for g in after.groups} == {"svc@b", "svc@b#2"}


def test_generated_group_id_of_longest_ids_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 200-character service and domain ids: the new id '<200>@<200>#2' (403 characters) stays valid.
    service_id, b = "s" * 200, "b" * 200
    path = _write(tmp_path, _clash(service_id, b))
    plan = _solve_ok(capsys, path, tmp_path / "out", "greedy")
    assert plan["changes"][0]["group"] == f"{service_id}@{b}#2"


# -------------------------------------------------------------------- defect 3: bounded counts and seed


@pytest.mark.parametrize(
    ("path", "value", "needle"),
    [
        ("max_units", 2**63, "Service 'svc': max_units=9223372036854775808"),
        ("min_units", MAX_UNITS + 1, "Service 'svc': min_units=1000001"),
        ("max_new_groups", 2**63, "Service 'svc': max_new_groups=9223372036854775808"),
        ("target_units", 2**63, "ScalingRequest 'svc': target_units=9223372036854775808"),
        ("count", 65, "DeploymentGroup 'svc@b': pods.0.count=65"),
    ],
)
def test_counts_beyond_bounds_are_refused(
    path: str, value: int, needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _clash()
    if path == "target_units":
        data["requests"][0]["target_units"] = value
    elif path == "count":
        data["groups"][0]["pods"][0]["count"] = value
    else:
        data["services"][0][path] = value
    file = _write(tmp_path, data)
    _refused(capsys, ["solve", str(file), "--solver", "cpsat", "--out-dir", str(tmp_path / "o")], needle)
    assert not (tmp_path / "o").exists()


def test_counts_at_their_bound_solve_with_cpsat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _clash()
    data["services"][0] |= {"max_units": MAX_UNITS, "max_new_groups": MAX_UNITS}
    data["requests"][0]["target_units"] = MAX_UNITS
    path = _write(tmp_path, data)
    assert main(["solve", str(path), "--solver", "cpsat", "--seed", str(2**31 - 1), "--out-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "x.plan.json").read_text())["plan"]["unserved"][0]["placed_units"] == 2


@pytest.mark.parametrize("seed", ["2147483648", "-1"])
def test_seed_out_of_range_is_refused(seed: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _clash())
    args = ["solve", str(path), "--solver", "cpsat", "--seed", seed, "--out-dir", str(tmp_path / "o")]
    _refused(capsys, args, f"--seed={seed} must be in 0..2147483647")
    with pytest.raises(InputError, match=f"seed={seed} must be an integer in 0..2147483647"):
        ho.solve(load_instance(path), "cpsat", seed=int(seed))


# -------------------------------------------------------------------- defect 4: deep nesting


@pytest.mark.parametrize("name", ["deep.json", "deep.yaml"])
def test_deeply_nested_input_is_an_input_error(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / name
    path.write_text("[" * (100_000 if name.endswith(".json") else 5_000))  # PyYAML scans slowly: 5k is enough
    _refused(capsys, ["validate", str(path)], f"{path}: nesting is too deep to parse")
    # Deep but parseable: validation reports the field, not a RecursionError.
    path.write_text(json.dumps(_clash() | {"name": json.loads("[" * 100 + "]" * 100)}))
    _refused(capsys, ["validate", str(path)], f"{path}: name=list")


# -------------------------------------------------------------------- defect 5: non-UTF-8, every file reported


def test_non_utf8_file_names_the_file_and_validate_reports_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"format_version": "1.0", "name": "\xff"}')
    good = _write(tmp_path, _clash(), "good.json")
    assert main(["validate", str(bad), str(good)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"{bad}: not UTF-8 text: byte 0xff at offset 35"]
    assert out.startswith(f"{good}: ok (")


def test_huge_integer_literal_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "huge.json"
    path.write_text('{"format_version": "1.0", "nodes": ' + "9" * 5000 + "}")
    _refused(capsys, ["validate", str(path)], f"{path}: unreadable value:")


# -------------------------------------------------------------------- defect 6: folders


def test_out_dir_naming_a_file_or_under_a_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, _clash())
    a_file = tmp_path / "f"
    a_file.write_text("x")
    _refused(capsys, ["solve", str(path), "--out-dir", str(a_file)], f"--out-dir '{a_file}': is a file, not a folder")
    under = a_file / "sub" / "dir"
    _refused(capsys, ["solve", str(path), "--out-dir", str(under)], f"'{a_file}' is a file, not a folder")
    assert a_file.read_text() == "x"


def test_out_dir_not_writable_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, where permissions do not bind: the OS's answer is simulated.
    path = _write(tmp_path, _clash())
    monkeypatch.setattr("hetero_opt.io.os.access", lambda p, mode: False)
    _refused(capsys, ["solve", str(path), "--out-dir", str(tmp_path / "o")], "is not writable")
    assert not (tmp_path / "o").exists()


def test_out_dir_write_failure_exits_2_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, _clash())
    out = tmp_path / "o"
    failing_write(monkeypatch, "summary.csv", PermissionError(13, "Permission denied"))
    _refused(
        capsys,
        ["solve", str(path), "--out-dir", str(out)],
        f"{out / 'summary.csv'}: cannot write (Permission denied); the plans are kept",
        "the same command again writes the summary",
    )
    # batches are resumable (issue 13): the plan written first stays, with its manifest line, and no
    # partial file is left; once writing works again the same command finishes from there
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", f"{path.stem}.plan.json"]
    monkeypatch.undo()
    assert main(["solve", str(path), "--out-dir", str(out)]) == 0
    assert (out / "summary.csv").exists()


def test_unreadable_input_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()

    def refuse(self: Path) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", refuse)
    _refused(capsys, ["solve", str(folder), "--out-dir", str(tmp_path / "o")], f"{folder}: cannot read folder")


# -------------------------------------------------------------------- defect 10: time limits


@pytest.mark.parametrize("limit", ["nan", "inf", "-1", "1e9"])
def test_time_limit_nan_or_out_of_range_is_refused(
    limit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _clash())
    _refused(capsys, ["solve", str(path), "--time-limit", limit, "--out-dir", str(tmp_path / "o")], "--time-limit=")
    with pytest.raises(InputError, match=r"time_limit=.* must be a number in"):
        ho.solve(load_instance(path), "cpsat", time_limit=float(limit))
    assert not (tmp_path / "o").exists()
    assert math.isfinite(ho.solve(load_instance(path), "greedy", time_limit=86_400).wall_time_s)


# -------------------------------------------------------------------- found by the fuzz suite


def test_moe_replica_split_across_s1s_is_not_a_removable_unit(
    solver: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Group 'g': replica 1 whole on x1 (S1 b-0), replica 2 split (attn x3 in b-0, ffn y1 in b-1),
    # decode pods on x2 and y2. Only one replica can be removed whole: the group holds 1 unit, not 2,
    # and scaling to 0 removes that unit (before: greedy removed 0 attn pods and raised PlanError).
    pods = [("prefill-attn", "x1", 1), ("prefill-ffn", "x1", 1), ("decode", "x2", 1)]
    pods += [("prefill-attn", "x3", 1), ("prefill-ffn", "y1", 1), ("decode", "y2", 1)]
    data = instance_dict(
        nodes=[
            node("x1", "b", "b-0", free=0),
            node("x2", "b", "b-0", free=0),
            node("x3", "b", "b-0", free=4),
            node("y1", "b", "b-1", free=4),
            node("y2", "b", "b-1", free=0),
        ],
        services=[moe_service("moe", "s2")],
        groups=[group("g", "moe", "b", *pods)],
        requests=[request("moe", 0)],
    )
    path = _write(tmp_path, data)
    assert current_units(load_instance(path), "moe") == 1
    plan = _solve_ok(capsys, path, tmp_path / "out", solver)
    (change,) = plan["changes"]
    assert change["units"] == -1
    removed = {p["role"]: p["node"] for p in change["pods"]}
    assert removed["prefill-attn"][0] == removed["prefill-ffn"][0] == "x"  # one replica, inside S1 b-0


def test_min_units_above_current_with_a_short_scale_out_is_no_violation(
    solver: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 'svc' holds 0 units with min_units 2 and asks 2; one 8-GPU unit fits the one free node (of 16
    # GPUs asked). Falling short of min on a scale-out is unserved demand, not a broken plan (before:
    # the verifier's min-units check rejected greedy's plan and solve raised PlanError).
    data = instance_dict(
        nodes=[node("n1", "a", "a-1")],
        services=[pd_service("svc", "s2", p_size=4, d_size=4, min_units=2)],
        requests=[request("svc", 2)],
    )
    plan = _solve_ok(capsys, _write(tmp_path, data), tmp_path / "out", solver)
    assert [(u["service"], u["placed_units"]) for u in plan["unserved"]] == [("svc", 1)]
