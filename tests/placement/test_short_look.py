"""The short look (decision 70): from a 5-s limit, the LP-guided path once more as a 1-s call runs it, after
the full path and on its own budget; its plan replaces the full path's only where it ranks better."""

from __future__ import annotations

import pytest

from hetero_opt import solve, verify
from hetero_opt.generate import generate_instance
from hetero_opt.placement.cpsat import solver as cpsat_solver


@pytest.mark.parametrize("seed", [4, 9])
def test_the_short_look_leaves_a_verified_plan_no_worse_than_without_it(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its counts are taken only where they rank better, and what follows starts from them (deterministic: the
    same answer every run on a quiet machine)."""
    inst = generate_instance("heavy", seed, num_nodes=800, num_services=20, num_requests=10)
    limit = cpsat_solver.SHORT_LOOK_FROM_S
    with_look = solve(inst, "cpsat", time_limit=limit)
    assert "lp_short_look_s" in with_look.stats
    assert verify(inst, with_look.plan) == []
    monkeypatch.setattr(cpsat_solver, "SHORT_LOOK_FROM_S", float("inf"))  # no look
    without = solve(inst, "cpsat", time_limit=limit)
    assert "lp_short_look_s" not in without.stats
    ours = (tuple(with_look.score.unserved_gpus), with_look.score.premium_cost)
    theirs = (tuple(without.score.unserved_gpus), without.score.premium_cost)
    assert ours <= theirs


def test_no_short_look_below_its_limit() -> None:
    inst = generate_instance("heavy", 4, num_nodes=800, num_services=20, num_requests=10)
    result = solve(inst, "cpsat", time_limit=2.0)
    assert "lp_short_look_s" not in result.stats
