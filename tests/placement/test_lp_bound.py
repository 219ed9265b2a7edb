"""The LP bound on the first stage is valid: no solver's plan beats it, and it is tight when exact."""

from __future__ import annotations

from conftest import INSTANCES_DIR, make_instance, node, pd_service, request

import hetero_opt as ho
from hetero_opt.placement.milp.bound import lp_unserved_bound
from hetero_opt.placement.objective import whole_free_bound
from hetero_opt.topology import build_view


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


def test_whole_free_nodes_are_bounded_by_what_the_served_gpus_leave() -> None:
    # Ten whole free 8-GPU nodes; 64 GPUs to place, all servable: at most 16 free GPUs stay outside the
    # placement, so at most 2 nodes stay whole, which the optimal plan attains (gap 0), on both models.
    inst = make_instance(
        nodes=[node(f"n{i}", "a", "a-1") for i in range(10)],
        services=[pd_service("chat", "s1", ratio=(4, 4))],
        requests=[request("chat", 1)],
    )
    for solver in ("cpsat", "milp"):
        result = ho.solve(inst, solver, time_limit=5.0)
        assert result.score.unserved_gpus == [0]
        assert (result.score.whole_free_nodes, result.bound.whole_free_nodes) == (2, 2)
        assert result.gaps["whole_free_nodes"] == 0


def test_whole_free_bound_counts_the_smallest_whole_nodes_first_and_only_whole_ones() -> None:
    view = build_view(
        make_instance(
            nodes=[
                node("big", "a", "a-1"),
                node("small", "a", "a-1", total=4, free=4),
                node("part", "a", "a-1", free=6),
            ],
            services=[pd_service("chat", "s1", p_size=4, d_size=4)],
            requests=[request("chat", 1)],
        )
    )
    # 18 free GPUs; 8 placed leaves room for 10: the 4-GPU node stays whole, the 8-GPU one cannot too
    assert whole_free_bound(view, [0]) == 1
    assert whole_free_bound(view, [8]) == 2  # nothing placed: both whole free nodes stay whole
