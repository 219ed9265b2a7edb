"""The ``hetero-opt`` command line: validate, solve (files and folders), schema, generate, bench."""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BUNDLED, INSTANCES_DIR

from hetero_opt import PlacementResult, load_instance, verify
from hetero_opt.cli import COMMANDS, SUMMARY_COLUMNS, SubParsers, main
from hetero_opt.placement.verify import Violation

TIER = str(INSTANCES_DIR / "tier_preference.yaml")


def test_validate_prints_one_ok_line_per_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, BUNDLED)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == len(BUNDLED)
    # tier_preference: 10 nodes x 8 GPUs, all free; S1s a-1, a-2, b-1, b-2, h-1 under S2s a, b, h
    assert f"{TIER}: ok (10 nodes, 80 GPUs (80 free), 5 S1s, 3 S2s, 1 service, 0 groups, 1 request)" in lines


def test_solve_folder_writes_one_verified_plan_per_instance_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    assert main(["solve", str(INSTANCES_DIR), "--solver", "greedy", "--out-dir", str(out_dir)]) == 0
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == sorted([f"{p.stem}.plan.json" for p in BUNDLED] + ["manifest.jsonl", "summary.csv"])
    for p in BUNDLED:
        result = PlacementResult.from_json((out_dir / f"{p.stem}.plan.json").read_text())
        assert verify(load_instance(p), result.plan) == []
    with (out_dir / "summary.csv").open() as f:
        rows = {r["instance"]: r for r in csv.DictReader(f)}
    assert set(rows) == {p.stem for p in BUNDLED}
    assert list(next(iter(rows.values()))) == list(SUMMARY_COLUMNS)
    tier = rows["tier_preference"]
    # 4 units x 16 GPUs served; premium 32x1 + 16x3 + 16x9 = 224
    assert (tier["solver"], tier["status"]) == ("greedy", "greedy")
    assert (tier["served_gpus"], tier["unserved_gpus"]) == ("64", "0")
    assert (tier["premium_cost"], tier["new_groups"], tier["violations"]) == ("224", "1", "0")
    assert rows["priority_contention"]["unserved_gpus_by_priority"] == "100:0;1:16"
    assert not list(out_dir.glob("*.tmp"))
    assert "tier_preference" in capsys.readouterr().out


def test_solve_one_file_with_cpsat(tmp_path: Path) -> None:
    assert main(["solve", TIER, "--solver", "cpsat", "--out-dir", str(tmp_path), "--time-limit", "2"]) == 0
    result = PlacementResult.from_json((tmp_path / "tier_preference.plan.json").read_text())
    assert result.solver == "cpsat"
    assert result.score.premium_cost == 224
    assert result.first_stage_gap == 0
    summary = (tmp_path / "summary.csv").read_text().splitlines()
    assert summary[1].split(",")[summary[0].split(",").index("first_stage_gap")] == "0"


def test_fast_mode_solves_the_same_instance(tmp_path: Path) -> None:
    args = ["solve", TIER, "--solver", "cpsat", "--out-dir", str(tmp_path), "--time-limit", "2", "--fast"]
    assert main(args) == 0
    result = PlacementResult.from_json((tmp_path / "tier_preference.plan.json").read_text())
    assert result.score.premium_cost == 224  # optimal either way on this small instance


def test_same_seed_same_plan_file(tmp_path: Path) -> None:
    for d in ("a", "b"):
        assert main(["solve", TIER, "--out-dir", str(tmp_path / d), "--seed", "3"]) == 0
    plans = [PlacementResult.from_json((tmp_path / d / "tier_preference.plan.json").read_text()) for d in "ab"]
    assert plans[0].plan == plans[1].plan


def test_a_plan_failing_verification_exits_1_and_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = Violation(code="node-capacity", entity="node 'a1'", message="adds 16 GPUs, 8 free")
    monkeypatch.setattr("hetero_opt.batch.solve_batch.verify", lambda inst, plan: [broken])
    assert main(["solve", TIER, "--out-dir", str(tmp_path)]) == 1
    assert not (tmp_path / "tier_preference.plan.json").exists()
    with (tmp_path / "summary.csv").open() as f:
        (row,) = csv.DictReader(f)
    assert row["violations"] == "1"
    assert "[node-capacity] node 'a1'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["solve", "no/such/file.yaml", "--out-dir", "OUT"], r"no/such/file\.yaml: no such file or folder"),
        (["solve", TIER, "--out-dir", "OUT", "--time-limit", "0"], r"--time-limit=0\.0 must be positive"),
        (["solve", TIER, "--out-dir", "OUT", "--workers", "0"], r"--workers=0 must be at least 1"),
        (["generate", "--family", "nope", "--seed", "1", "--out", "OUT/x.json"], r"family='nope' is not one of"),
        (["generate", "--family", "tiny", "--out", "OUT/x.txt"], r"--out='OUT/x\.txt' must end in"),
        (["bench", "tiny", "--solvers", "greedy,gurobi"], r"--solvers: solver='gurobi' is not one of"),
    ],
    ids=["missing-path", "time-limit", "workers", "family", "out-suffix", "solver-name"],
)
def test_bad_arguments_exit_2_with_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = [a.replace("OUT", str(out)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert re.search(message.replace("OUT", re.escape(str(out))), err[0]), err[0]
    assert not out.exists()


def test_empty_folder_and_clashing_stems_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["solve", str(empty), "--out-dir", str(tmp_path / "o")]) == 2
    assert "holds no *.json" in capsys.readouterr().err
    (tmp_path / "x.json").write_text(json.dumps(load_instance(TIER).model_dump(mode="json")))
    (tmp_path / "x.yaml").write_text(Path(TIER).read_text())
    assert main(["solve", str(tmp_path / "x.json"), str(tmp_path / "x.yaml"), "--out-dir", str(tmp_path / "o")]) == 2
    assert "stem 'x'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_file_that_is_no_instance_file_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # before: "malformed JSON at line 1 column 1" (any suffix but .yaml/.yml was read as JSON)
    trace = INSTANCES_DIR / "traces" / "azure_llm_2023_conv.csv"
    bare = tmp_path / "cluster"
    bare.write_text(Path(TIER).read_text())
    expected = "not an instance file: expected .json, .yaml or .yml, got"
    for f, got in ((trace, "a '.csv' file"), (bare, "a file without a suffix")):
        assert main(["validate", str(f)]) == 2
        assert capsys.readouterr().err == f"{f}: {expected} {got}\n"
    assert main(["solve", str(trace), "--out-dir", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == f"{trace}: {expected} a '.csv' file\n"
    assert not (tmp_path / "o").exists()


def test_schema_prints_valid_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Instance"
    assert "format_version" in schema["required"]


def test_generate_writes_a_valid_instance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tiny.yaml"
    assert main(["generate", "--family", "tiny", "--seed", "1", "--out", str(out)]) == 0
    assert load_instance(out).name == "tiny-s1"
    assert main(["validate", str(out)]) == 0


def test_generate_without_the_generator_module_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "hetero_opt.generate", None)
    assert main(["generate", "--family", "tiny", "--out", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err == "hetero_opt.generate: module is not installed in this build\n"


def test_bench_runs_a_suite_and_prints_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "tiny", "--solvers", "greedy", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "bench.csv").exists()
    assert "greedy" in capsys.readouterr().out


def test_a_subcommand_is_one_function_pair_and_one_registration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_hello(sub: SubParsers) -> None:
        sub.add_parser("hello").add_argument("--who", default="world")

    def run_hello(args: argparse.Namespace) -> int:
        print(f"hello {args.who}")
        return 0

    monkeypatch.setitem(COMMANDS, "hello", (add_hello, run_hello))
    assert main(["hello", "--who", "S1"]) == 0
    assert capsys.readouterr().out == "hello S1\n"


def test_python_dash_m_and_help() -> None:
    proc = subprocess.run([sys.executable, "-m", "hetero_opt", "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0
    for name in ("validate", "solve", "schema", "generate", "bench"):
        assert name in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "hetero_opt", "validate", "missing.yaml"], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stderr) == (2, "missing.yaml: cannot read file (No such file or directory)\n")


def test_demo_verifies_every_bundled_plan(capsys: pytest.CaptureFixture[str]) -> None:
    from hetero_opt.demo import run_placement_demo

    assert run_placement_demo(solvers=("greedy",))
    out = capsys.readouterr().out
    for p in BUNDLED:
        assert p.stem[:15] in out


def test_version_prints_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"hetero-opt {version('hetero_opt')}\n"


def test_generate_help_names_every_family_and_the_columnar_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    from hetero_opt.generate import COLUMNAR_MIN_NODES, FAMILIES

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(f in text for f in FAMILIES)
    assert f"columns from {COLUMNAR_MIN_NODES:,} nodes" in text


@pytest.mark.parametrize(
    ("form", "version", "kind"), [("rows", "1.1", list), ("columns", "1.4", dict), ("plain-columns", "1.3", dict)]
)
def test_generate_writes_the_nodes_as_asked(form: str, version: str, kind: type, tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    assert main(["generate", "--family", "tiny", "--nodes-as", form, "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["format_version"] == version
    assert isinstance(data["nodes"], kind)
    assert all(isinstance(g["pods"], kind) for g in data["groups"])  # the groups' pods in the same form
    if kind is dict:  # runs (1.4) only where asked for: plain columns are lists, each value once per node
        runs = {f for f, c in data["nodes"].items() if isinstance(c, dict)}
        assert bool(runs) == (form == "columns")
