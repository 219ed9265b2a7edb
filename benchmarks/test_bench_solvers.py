"""CP-SAT and MILP against greedy: small/medium/contention instances, and CP-SAT at production size."""

from __future__ import annotations

from typing import Any

import pytest

import hetero_opt
from hetero_opt.bench import best_bound, gaps
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


def test_cpsat_production(benchmark: Any, production: Instance) -> None:
    greedy = hetero_opt.solve(production, "greedy")
    result = benchmark.pedantic(
        hetero_opt.solve, args=(production, "cpsat"), kwargs={"time_limit": 2.0}, rounds=1, iterations=1
    )
    gap_unserved, gap_premium = gaps(result.score, best_bound({"cpsat": result}))
    print(
        f"\ncpsat on production: {result.status}, {result.wall_time_s:.2f} s, premium {result.score.premium_cost} "
        f"(greedy {greedy.score.premium_cost}), gap unserved {gap_unserved} GPUs, gap premium {gap_premium:.2f} %"
        + (f", fallback: {result.fallback_reason}" if result.fallback_reason else "")
    )
    assert hetero_opt.verify(production, result.plan) == []
    assert result.score <= greedy.score
    bound = lp_unserved_bound(production)
    assert bound is not None
    priority, fewest = bound
    top = result.score.priorities.index(priority)
    print(
        f"first stage (priority {priority}): cpsat leaves {result.score.unserved_gpus[top]} GPUs unserved, "
        f"LP bound {fewest} → proven gap {result.score.unserved_gpus[top] - fewest} GPUs"
    )
    assert result.score.unserved_gpus[top] >= fewest
