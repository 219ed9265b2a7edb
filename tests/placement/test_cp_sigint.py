"""Ctrl-C stays Python's around CP-SAT (a resume audit: OR-Tools' own SIGINT handler swallowed it during a
solve, then left SIGINT at the default action, which killed a simulation without its checkpoint)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_sigint_after_a_cpsat_solve_is_a_keyboard_interrupt() -> None:
    code = textwrap.dedent(
        """
        import os, signal
        import hetero_opt as ho
        inst = ho.load_instance("instances/tier_preference.yaml")
        assert ho.solve(inst, "cpsat", time_limit=2.0).status != "fallback"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        try:
            os.kill(os.getpid(), signal.SIGINT)
        except KeyboardInterrupt:
            print("caught")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    # before: the process died by SIGINT (returncode -2), nothing printed
    assert (r.returncode, r.stdout.strip()) == (0, "caught"), r.stderr[-2000:]


def test_every_cpsat_solver_of_the_project_leaves_sigint_to_python() -> None:
    from hetero_opt.placement.cp_solver import new_cp_solver

    assert new_cp_solver().parameters.catch_sigint_signal is False
    made_elsewhere = subprocess.run(
        ["grep", "-rn", "CpSolver()", "hetero_opt"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.splitlines()
    assert [line for line in made_elsewhere if "cp_solver.py" not in line] == []
