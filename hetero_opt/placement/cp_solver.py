"""The one way the project makes a CP-SAT solver."""

from __future__ import annotations

from ortools.sat.python import cp_model


def new_cp_solver() -> cp_model.CpSolver:
    """A CP-SAT solver that leaves SIGINT to Python.

    OR-Tools' own handler (``catch_sigint_signal``, on by default) takes Ctrl-C during a solve as its time
    limit, so the plan was kept, weaker, as if nothing had happened; and after the solve it resets SIGINT
    to the default action, not to Python's handler, so any later Ctrl-C killed the process with no state
    saved (a simulation's checkpoint, a batch's manifest). Off, Ctrl-C is Python's KeyboardInterrupt.
    """
    solver = cp_model.CpSolver()
    solver.parameters.catch_sigint_signal = False
    return solver
