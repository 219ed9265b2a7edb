"""A bound for stage 1 from the LP relaxation of the MILP (CP-SAT proves none at production size)."""

from __future__ import annotations

import math

import pulp

from hetero_opt.instance import Instance
from hetero_opt.placement.milp.model import build_model
from hetero_opt.topology import build_view


def lp_unserved_bound(instance: Instance) -> tuple[int, int] | None:
    """``(priority, fewest unserved GPUs)`` of the top priority class, from the LP relaxation.

    No integer plan can leave fewer GPUs of that class unserved, so ``plan − bound`` is the
    proven gap of the first lexicographic stage. ``None`` when there is no scale-out or the LP
    does not solve to optimality.
    """
    model = build_model(build_view(instance))
    classes = [p for p, e in model.served_by_priority.items() if len(e) > 0 and model.wanted_by_priority.get(p, 0) > 0]
    if not classes:
        return None
    top = max(classes)
    for var in model.variables():
        var.cat = pulp.LpContinuous
    model.prob.setObjective(-model.served_by_priority[top])
    model.prob.solve(pulp.HiGHS(msg=False, mip=False))
    if pulp.LpStatus[model.prob.status] != "Optimal":
        return None
    served_max = math.floor(-float(pulp.value(model.prob.objective)) + 1e-6)
    return top, max(0, model.wanted_by_priority[top] - served_max)
