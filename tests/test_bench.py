"""The benchmark runner: rows, columns, gaps, outputs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from rich.console import Console

from hetero_opt import Instance, bench
from hetero_opt.batch import SweepError
from hetero_opt.batch.manifest import MANIFEST_NAME
from hetero_opt.bench import SUITES, gaps, main_table, print_report, run_suite, totals_table
from hetero_opt.cli import main
from hetero_opt.placement.objective import Score


def _score(unserved: list[int], premium: int) -> Score:
    return Score(
        priorities=[10, 1][: len(unserved)],
        unserved_gpus=unserved,
        premium_cost=premium,
        new_groups=0,
        emptied_groups=0,
        whole_free_nodes=0,
    )


def test_gaps() -> None:
    assert math.isnan(gaps(_score([0, 0], 10), None)[0])
    # same unserved GPUs: premium gap (12 - 10) / 10 = 20 %
    assert gaps(_score([0, 0], 12), _score([0, 0], 10)) == (0.0, 20.0)
    # 16 unserved GPUs above the bound; the premium gap is then undefined
    unserved, premium = gaps(_score([0, 16], 5), _score([0, 0], 10))
    assert unserved == 16.0
    assert math.isnan(premium)


def test_run_suite_writes_outputs(tmp_path: Path) -> None:
    df = run_suite("contention", solvers=("greedy", "cpsat"), seeds=(0, 1), out_dir=tmp_path, progress=False)
    assert len(df) == 4
    assert set(df["solver"]) == {"greedy", "cpsat"}
    assert df["verify_ok"].all()
    for col in [
        "served_gpus",
        "premium_cost",
        "new_groups",
        "wall_time_s",
        "status",
        "gap_unserved_gpus",
        "cpsat_premium_ratio",
        "cpsat_time_ratio",
        "cpsat_better",
        "served_p100",
        "served_p50",
    ]:
        assert col in df.columns
    cpsat = df[df["solver"] == "cpsat"]
    greedy = df[df["solver"] == "greedy"]
    assert (cpsat["served_gpus"].to_numpy() >= greedy["served_gpus"].to_numpy()).all()
    assert (tmp_path / "bench.csv").stat().st_size > 0
    assert (tmp_path / "bench.png").stat().st_size > 0
    console = Console(record=True, width=200)
    print_report(df, console)
    text = console.export_text()
    assert "contention-s0-spill" in text
    assert "Totals per solver" in text
    assert main_table(df).row_count == 4
    assert totals_table(df).row_count == 2


@pytest.mark.parametrize("width", [80, 120])
def test_the_report_on_a_narrow_console_cuts_no_value_short(width: int) -> None:
    # before: at 120 columns "conte…", "optim…", "p100:…"; at 80 most columns were a few letters
    df = run_suite("contention", solvers=("greedy", "cpsat"), seeds=(0, 1, 2), progress=False)
    console = Console(record=True, width=width)
    print_report(df, console)
    text = console.export_text()
    lines = text.splitlines()
    assert "…" not in text
    assert max(map(len, lines)) <= width
    words = set(text.split())
    for r in df.itertuples(index=False):
        assert {r.instance, r.solver, r.status, str(r.premium_cost), *r.served_by_priority.split()} <= words
    for header in ("instance", "solver", "premium", "verified", "stage-1", "unserved", "optimal"):
        assert header in words
    assert sum(line.startswith("contention-s0-spill ") for line in lines) == 4  # results and gaps, per solver


def test_suites_name_families() -> None:
    assert SUITES["contention"] == ("contention", tuple(range(10)))
    assert SUITES["production"][1] == (0, 1, 2, 3)


def test_interrupted_suite_resumes_to_the_same_table(tmp_path: Path) -> None:
    solvers = ("greedy", "cpsat")
    full = run_suite("contention", solvers=solvers, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    csv_text = (tmp_path / "bench.csv").read_text()
    manifest = tmp_path / MANIFEST_NAME
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:2]) + lines[2][:40])  # killed while recording seed 2
    again = run_suite("contention", solvers=solvers, seeds=(0, 1, 2), out_dir=tmp_path, progress=False)
    timing = ["gen_time_s", "wall_time_s", "cpsat_time_ratio"]
    # seed 2 was solved again (its timings are new); everything else is what was recorded
    assert again.drop(columns=timing).equals(full.drop(columns=timing))
    assert again[again["seed"] < 2].equals(full[full["seed"] < 2])
    assert (tmp_path / "bench.csv").read_text().splitlines()[:5] == csv_text.splitlines()[:5]
    assert run_suite("contention", solvers=solvers, seeds=(0, 1, 2), out_dir=tmp_path, progress=False).equals(again)


def test_a_failed_instance_is_reported_and_the_others_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = bench.generate_instance

    def flaky(family: str, seed: int) -> Instance:
        if seed == 1:
            raise RuntimeError("generator crashed")
        return real(family, seed)

    monkeypatch.setattr(bench, "generate_instance", flaky)
    with pytest.raises(SweepError, match=r"1 of 2 tasks failed: task 1: bench:tiny:1: RuntimeError: generator crashed"):
        run_suite("tiny", solvers=("greedy",), seeds=(0, 1), out_dir=tmp_path, progress=False)
    assert not (tmp_path / "bench.csv").exists()
    monkeypatch.undo()
    df = run_suite("tiny", solvers=("greedy",), seeds=(0, 1), out_dir=tmp_path, progress=False)
    assert list(df["seed"]) == [0, 1]


def test_an_unknown_suite_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    assert main(["bench", "productio", "--solvers", "greedy", "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bench: suite='productio' is not one of [" in err
    assert "Traceback" not in err
    assert not out.exists()  # no manifest left behind
