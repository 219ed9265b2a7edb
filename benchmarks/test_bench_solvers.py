"""CP-SAT and MILP against greedy: small/medium/contention instances, and CP-SAT at production size."""

from __future__ import annotations

from typing import Any

import pytest

import hetero_opt
from hetero_opt.generate import generate_instance
from hetero_opt.instance import Instance
from hetero_opt.placement.milp.bound import lp_unserved_bound

CASES = [("small", s) for s in range(3)] + [("medium", s) for s in range(2)] + [("contention", s) for s in range(6)]


@pytest.mark.parametrize("solver", ["cpsat", "milp"])
@pytest.mark.parametrize(("family", "seed"), CASES)
def test_solver_never_worse_than_greedy(solver: str, family: str, seed: int) -> None:
    inst = generate_instance(family, seed)
    greedy = hetero_opt.solve(inst, "greedy")
    result = hetero_opt.solve(inst, solver, time_limit=2.0, num_workers=2)
    print(f"\n{inst.name} {solver}: {result.status} {result.wall_time_s:.3f} s, score {result.score.key()}")
    assert hetero_opt.verify(inst, result.plan) == []
    assert result.score <= greedy.score
    if family == "contention":
        assert result.score < greedy.score  # built so that a joint plan beats greedy


LIMIT_S, GOAL_S, LONGER_S = 2.0, 10.0, 10.0  # the limit, its stage-1 goal, a longer run


def test_cpsat_production(benchmark: Any, production: Instance) -> None:
    """Within the limit: a verified plan no worse than greedy, its first-stage gap, and when stage 1 was proven."""
    greedy = hetero_opt.solve(production, "greedy")
    result = benchmark.pedantic(
        hetero_opt.solve, args=(production, "cpsat"), kwargs={"time_limit": LIMIT_S}, rounds=1, iterations=1
    )
    again = hetero_opt.solve(production, "cpsat", time_limit=LIMIT_S)
    print(
        f"\ncpsat on production, {LIMIT_S:g} s limit: {result.status}, {result.wall_time_s:.2f} s wall, served "
        f"{result.score.unserved_gpus} unserved by class (greedy {greedy.score.unserved_gpus}), premium "
        f"{result.score.premium_cost} (greedy {greedy.score.premium_cost}); first-stage gap {result.first_stage_gap} "
        f"GPUs; same plan on a second run: {again.plan == result.plan}"
    )
    assert hetero_opt.verify(production, result.plan) == []
    assert result.score <= greedy.score
    assert result.first_stage_gap is not None
    bound = lp_unserved_bound(production)
    assert bound is not None
    priority, fewest = bound
    top = result.score.priorities.index(priority)
    proven = result.first_stage_gap == 0
    print(
        f"first stage (priority {priority}): cpsat leaves {result.score.unserved_gpus[top]} GPUs unserved; "
        f"its own bound {result.bound.unserved_gpus[top] if result.bound else None}, LP relaxation {fewest}; "
        + (
            f"proven optimal within {result.wall_time_s:.2f} s (goal: {GOAL_S:g} s)"
            if proven
            else f"not proven within {LIMIT_S:g} s"
        )
    )
    assert result.score.unserved_gpus[top] >= fewest
    longer = hetero_opt.solve(production, "cpsat", time_limit=LONGER_S)
    print(
        f"with a {LONGER_S:g} s limit: first-stage gap {longer.first_stage_gap} GPUs, "
        f"premium {longer.score.premium_cost}, {longer.wall_time_s:.2f} s wall"
    )
    assert longer.score <= greedy.score
