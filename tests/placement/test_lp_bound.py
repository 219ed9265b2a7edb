"""The LP bound on the first stage is valid: no solver's plan beats it, and it is tight when exact."""

from __future__ import annotations

from conftest import INSTANCES_DIR

import hetero_opt as ho
from hetero_opt.placement.milp.bound import lp_unserved_bound


def test_bound_is_below_every_plan_and_equals_the_milp_optimum_on_priority_contention() -> None:
    instance = ho.load_instance(INSTANCES_DIR / "priority_contention.yaml")
    bound = lp_unserved_bound(instance)
    assert bound is not None
    priority, fewest = bound
    milp = ho.solve(instance, "milp", time_limit=10.0)
    top = milp.score.priorities.index(priority)
    for solver in ("greedy", "cpsat", "milp"):
        result = ho.solve(instance, solver, time_limit=10.0)
        assert result.score.unserved_gpus[top] >= fewest
    assert milp.status == "optimal"
    assert milp.score.unserved_gpus[top] == fewest  # the top class is served in full: 0 unserved


def test_scale_in_counts_as_demand_and_is_fully_servable() -> None:
    # removing 3 units of 8 GPUs = 24 GPUs of priority 10; the groups hold them, so the bound is 0
    instance = ho.load_instance(INSTANCES_DIR / "scale_in_premium.yaml")
    assert lp_unserved_bound(instance) == (10, 0)
