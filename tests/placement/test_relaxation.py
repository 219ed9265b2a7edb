"""The LP relaxation (bounds on every term) and CP-SAT's LP-guided neighbourhood path."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from conftest import INSTANCES_DIR, node, pd_service, request
from conftest import make_instance as instance
from hypothesis import HealthCheck, given, settings

from hetero_opt import Instance, build_view, load_instance, score, verify
from hetero_opt.generate import generate_instance
from hetero_opt.placement.backend import SolveOptions
from hetero_opt.placement.cpsat import CpSatBackend
from hetero_opt.placement.cpsat.model import build
from hetero_opt.placement.greedy import greedy_plan
from hetero_opt.placement.relaxation import build_relaxation, solve_relaxation
from placement.test_cpsat import small_instances


def lp_bounds(inst: Instance) -> tuple[dict[int, int], int | None, int | None]:
    """(most GPUs served per class, least premium, least new groups) of the scale-out requests."""
    view = build_view(inst)
    lp = build_relaxation(view, [r for r in view.requests if r.delta > 0])
    out = solve_relaxation(lp, time.perf_counter() + 30)
    assert out.complete
    return out.served_ub, out.premium_lb, out.groups_lb


def test_tier_preference_bound_equals_the_known_optimum() -> None:
    # 4 units of 16 GPUs: low 2 units (32 x 1) + medium 1 (16 x 3) + high 1 (16 x 9) = 224, one group
    served, premium, groups = lp_bounds(load_instance(INSTANCES_DIR / "tier_preference.yaml"))
    assert served == {10: 64}
    assert premium == 224
    assert groups == 1


# One S1 of two free 8-GPU H20 nodes; a unit is 1 prefill + 1 decode pod of 8 GPUs.
TWO_NODES = instance(
    nodes=[node("n1", "a", "a-1"), node("n2", "a", "a-1")],
    services=[pd_service("chat", "s1")],
    requests=[request("chat", 2)],
)


def test_relaxation_serves_what_fits_and_no_more() -> None:
    # 16 free GPUs hold exactly one 16-GPU unit, though two were asked for
    served, premium, _ = lp_bounds(TWO_NODES)
    assert served == {10: 16}
    assert premium == 16  # 16 GPUs on a low-tier S1 at weight 1


def test_load_uses_capacity_in_the_packing_rows() -> None:
    view = build_view(TWO_NODES)
    reqs = list(view.requests)
    load = {("a-1", "H20"): Counter({8: 1})}  # one 8-GPU pod already placed: 8 GPUs left, no unit fits
    lp = build_relaxation(view, reqs, load)
    # the relaxation places half a unit (8 of its 16 GPUs); no whole unit fits
    assert solve_relaxation(lp, time.perf_counter() + 30).served_ub == {10: 8}
    pm = build(view, reqs, load)
    assert [row.rhs for row in pm.rows] == [8]  # 2 nodes x 8 free - 8 used


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_instances())
def test_lp_bound_never_above_the_proven_optimum(inst: Instance) -> None:
    view = build_view(inst)
    greedy = greedy_plan(inst, view)
    full = CpSatBackend("full").solve(view, greedy, SolveOptions(time_limit=10.0))
    guided = CpSatBackend("lp").solve(view, greedy, SolveOptions(time_limit=10.0))
    for out in (full, guided):
        assert verify(inst, out.plan, view) == []
        assert score(inst, out.plan, view) <= score(inst, greedy, view)
    assert guided.bound is not None
    assert guided.bound <= score(inst, guided.plan, view)
    if full.status == "optimal":
        assert guided.bound <= score(inst, full.plan, view)


@pytest.mark.parametrize("seed", [0, 1])
def test_lp_guided_path_on_medium_instances_is_verified_and_bounded(seed: int) -> None:
    inst = generate_instance("medium", seed)
    view = build_view(inst)
    greedy = greedy_plan(inst, view)
    out = CpSatBackend("lp").solve(view, greedy, SolveOptions(time_limit=20.0))
    assert out.status != "fallback", out.fallback_reason
    assert verify(inst, out.plan, view) == []
    got = score(inst, out.plan, view)
    assert got <= score(inst, greedy, view)
    assert out.bound is not None
    assert out.bound <= got
    assert out.stats["lp_cols"] > 0  # the LP path ran
