"""CP-SAT's two paths (full staged model, class blocks), the top-class-first stage, budgets, bounds."""

from __future__ import annotations

import time
from typing import Any

import pytest
from conftest import BackendRun, node, run_backend
from conftest import make_instance as instance
from hypothesis import HealthCheck, given, settings

from hetero_opt import Instance, build_view, score, solve, verify
from hetero_opt.generate import generate_instance
from hetero_opt.placement.backend import Budget, SolveOptions
from hetero_opt.placement.cpsat import CpSatBackend
from hetero_opt.placement.cpsat.blocks import planned_blocks
from hetero_opt.placement.cpsat.model import build
from hetero_opt.placement.cpsat.solver import _by_class
from hetero_opt.placement.greedy import greedy_counts
from placement.test_cpsat import CONTENTION, pd_service, small_instances


def run(inst: Instance, strategy: Any, time_limit: float = 5.0) -> BackendRun:
    """The backend's own output, checked against greedy, the verifier and its own bound."""
    out = run_backend(inst, CpSatBackend(strategy), time_limit=time_limit)
    assert out.status != "fallback", out.fallback_reason
    assert verify(inst, out.plan) == []
    got = score(inst, out.plan)
    assert got <= score(inst, out.greedy)
    assert out.bound is not None
    assert out.bound <= got
    return out


# 'top' (priority 10, S1 affinity, one new group at most) wants 2 units of 8+8 GPUs. S1 'a-1' (two
# free nodes) comes first in the greedy's order and holds one unit; the greedy opens its one group
# there and leaves 16 GPUs unserved. S1 'b-1' (four free nodes) holds both, but the greedy put 'low'
# (priority 1, 1+1 GPU pods, cluster affinity) on one of them after 'a-1' filled up.
SHORT_S1 = instance(
    nodes=[
        node("a1x", "a", "a-1"),
        node("a1y", "a", "a-1"),
        *(node(f"b1{k}", "b", "b-1") for k in "wxyz"),
    ],
    services=[
        pd_service("top", 10, "s1", ["H20"], ["H20"], max_new_groups=1),
        pd_service("low", 1, "cluster", ["H20"], ["H20"], p_size=1, d_size=1),
    ],
    requests=[{"service": "top", "target_units": 2}, {"service": "low", "target_units": 1}],
)


def test_greedy_leaves_the_top_class_short_on_short_s1() -> None:
    greedy = solve(SHORT_S1, "greedy")
    assert greedy.score.unserved_gpus == [16, 0]


@pytest.mark.parametrize("strategy", ["full", "blocks"])
def test_both_paths_serve_the_top_class_and_prove_the_first_stage(strategy: str) -> None:
    out = run(SHORT_S1, strategy)
    got = score(SHORT_S1, out.plan)
    assert got.unserved_gpus == [0, 0]  # 'top' moves to b-1, 'low' to a-1
    assert out.bound is not None
    assert out.bound.unserved_gpus[0] == 0
    tops = {p.node for c in out.plan.changes if c.service == "top" for p in c.pods}
    assert tops == {"b1w", "b1x", "b1y", "b1z"}


def test_full_model_trades_between_classes_but_blocks_do_not() -> None:
    # CONTENTION: 'hi' must move to L20 so that 'lo' fits on H20. The greedy serves 'hi' in full, so
    # the class blocks (each class alone, the other fixed) cannot see the trade; the full model can.
    assert score(CONTENTION, run(CONTENTION, "full").plan).unserved_gpus == [0, 0]
    assert score(CONTENTION, run(CONTENTION, "blocks").plan).unserved_gpus == [0, 16]


def test_solve_reports_the_first_stage_gap() -> None:
    result = solve(SHORT_S1, "cpsat")
    assert result.first_stage_gap == 0
    assert solve(SHORT_S1, "greedy").first_stage_gap is None


def test_a_top_class_settled_at_a_proven_bound_gets_no_model_of_its_own() -> None:
    # on SHORT_S1 the class blocks from the greedy's counts leave 'top' short, so the top class's own
    # CP-SAT model runs (and serves it); told that the hint's top class is at a proven bound (as the LP
    # path proves it where not everything fits), the blocks do not build that model: it could only move
    # the plan at the same score, and whether it started depended on the wall clock
    view = build_view(SHORT_S1)
    part = [r for r in view.requests if r.delta != 0]
    hint = greedy_counts(view)
    runs = {}
    for settled in (False, True):
        stats: dict[str, float] = {}
        budget = Budget(time.perf_counter() + 30, 1.0, True)
        result = _by_class(view, part, hint, None, SolveOptions(time_limit=5.0), budget, stats, "out", settled)
        runs[settled] = (any(k.startswith("out_top_") for k in stats), result.counts.units_by_service()["top"])
    assert runs == {False: (True, 2), True: (False, 1)}


def test_after_the_lp_path_the_blocks_keep_to_the_room_its_plan_leaves() -> None:
    # the same blocks with the wall clock ample: with no plan (None) or room for every model they run, the
    # top class's own model among them; with no room left by the LP path's plan none is built, the hint
    # is kept, and the termination says why (not "deadline": the same every run)
    view = build_view(SHORT_S1)
    part = [r for r in view.requests if r.delta != 0]
    hint = greedy_counts(view)
    runs = {}
    for room in (None, 30.0, 0.0):
        stats: dict[str, float] = {}
        budget = Budget(time.perf_counter() + 30, 1.0, True)
        result = _by_class(view, part, hint, None, SolveOptions(time_limit=5.0), budget, stats, "out", False, room)
        runs[room] = (result.counts.units_by_service()["top"], "SKIPPED(plan" in result.staged.termination[0])
    assert runs == {None: (2, False), 30.0: (2, False), 0.0: (1, True)}


def test_blocks_are_planned_by_size_not_by_clock() -> None:
    inst = generate_instance("production", 0)
    view = build_view(inst)
    outs = [r for r in view.requests if r.delta > 0]
    short = planned_blocks(view, outs, 2.0)
    assert [block[0].service.priority for block, _ in short] == [100]  # the top class always, alone at 2 s
    long = planned_blocks(view, outs, 60.0)
    assert [block[0].service.priority for block, _ in long] == [100, 50, 10] * 2  # two rounds


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_instances())
def test_random_instances_on_the_block_path(inst: Instance) -> None:
    run(inst, "blocks")


def test_same_seed_same_plan_on_both_paths() -> None:
    inst = generate_instance("contention", 1)
    for strategy in ("full", "blocks"):
        assert run(inst, strategy).plan == run(inst, strategy).plan


@pytest.mark.parametrize(("family", "seed"), [("tiny", 21), ("tiny", 61), ("small", 38)])
def test_a_lower_class_without_any_slot_is_no_error(family: str, seed: int) -> None:
    # A class that can place nothing anywhere has no slot and no silencing switch in the model.
    inst = generate_instance(family, seed)
    view = build_view(inst)
    outs = [r for r in view.requests if r.delta > 0]
    pm = build(view, outs)
    assert set(pm.max_served) - set(pm.slots_by_priority), "the case this test is about"
    for strategy in ("full", "blocks"):
        run(inst, strategy)
    assert verify(inst, solve(inst, "cpsat").plan) == []


@pytest.mark.parametrize(("family", "seed"), [("moe", 16), ("moe", 42), ("tiny", 33), ("small", 68)])
def test_block_path_bound_holds_with_scale_in(family: str, seed: int) -> None:
    # Scale-in lowers premium cost and empties groups: the bound's trivial terms must allow for it.
    run(generate_instance(family, seed), "blocks")
