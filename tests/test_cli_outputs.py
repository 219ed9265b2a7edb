"""The command line's arguments and outputs: checked before any work, each error naming its flag.

The promise (README, ``docs/instance-format.md``): bad input gets exit 2 and one stderr line naming
the flag and the value, with nothing written and no input touched.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import INSTANCES_DIR

from hetero_opt.bench import run_suite
from hetero_opt.cli import main
from hetero_opt.errors import InputError

AUTOSCALE = INSTANCES_DIR / "autoscale"
K8S_NODES = Path(__file__).resolve().parent / "adapters" / "data" / "nodes-example.json"
TRACE = INSTANCES_DIR / "traces" / "azure_llm_2023_code.csv"
TWO = [INSTANCES_DIR / "s1_affinity.yaml", INSTANCES_DIR / "tier_preference.yaml"]


def _refused(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> str:
    """Run the CLI; assert exit 2, nothing on stdout and one stderr line holding every needle."""
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -------------------------------------------------------------------- bench --solvers


@pytest.mark.parametrize("solvers", ["", ",", " , "])
def test_bench_naming_no_solver_is_refused_before_the_suite_runs(
    solvers: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hetero_opt.bench.bench_instance", lambda task: pytest.fail("the suite ran"))
    _refused(capsys, ["bench", "tiny", "--solvers", solvers],
             f"--solvers={solvers!r} names no solver (one or more of greedy, cpsat, milp, milp-cbc)")


def test_run_suite_without_solvers_raises_input_error() -> None:
    with pytest.raises(InputError, match="names no solver"):
        run_suite("tiny", solvers=(), progress=False)
