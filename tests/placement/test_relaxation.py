"""The LP relaxation (bounds on every term) and CP-SAT's LP-guided neighbourhood path."""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

import pytest
from conftest import INSTANCES_DIR, node, pd_service, request, run_backend
from conftest import make_instance as instance
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hetero_opt import Instance, Plan, build_view, load_instance, score, solve, verify
from hetero_opt.generate import generate_instance
from hetero_opt.placement.backend import MIN_STAGE_DTIME, Budget, SolveOptions
from hetero_opt.placement.binding import BindingError, GroupDraft, bind, bind_plan
from hetero_opt.placement.cpsat import CpSatBackend, neighbourhood
from hetero_opt.placement.cpsat.model import build
from hetero_opt.placement.cpsat.neighbourhood import (
    LP_SECONDS_PER_CELL,
    PHASE_A,
    PLANNED_CHUNK_SECONDS_PER_CELL,
    PLANNED_DTIME_PER_SECOND,
    PLANNED_SECONDS_PER_COLUMN,
    PLANNED_SHARE,
    _Chunks,
    _consolidate,
    _draft_key,
    _fixed,
    _fractional,
    _holdings,
    _integral,
    _make_room,
    _no_worse_than_greedy,
    _plan,
    _premium,
    _room_chunk,
    _short_below_top,
    lp_guided,
)
from hetero_opt.placement.cpsat.plans import add_load, model_variables
from hetero_opt.placement.cpsat.stages import GROUPS_SHARE, SERVED_SHARE, StagedSolver, first_stage_dtime
from hetero_opt.placement.greedy import greedy_counts
from hetero_opt.placement.plan import Unserved
from hetero_opt.placement.relaxation import (
    MIP_PRESOLVE_SECONDS_PER_COLUMN,
    MIP_ROOT_SECONDS_PER_CHECK_COLUMN,
    _lexicographic_weights,
    build_relaxation,
    solve_freed,
    solve_full_service,
    solve_relaxation,
    wanted_gpus,
)
from placement.test_cpsat import small_instances


def lp_bounds(inst: Instance) -> tuple[dict[int, int], int | None, int | None]:
    """(most GPUs served per class, least premium, least new groups) of the scale-out requests."""
    view = build_view(inst)
    lp = build_relaxation(view, [r for r in view.requests if r.delta > 0])
    out = solve_relaxation(lp, Budget(time.perf_counter() + 30))
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
    assert solve_relaxation(lp, Budget(time.perf_counter() + 30)).served_ub == {10: 8}
    pm = build(view, reqs, load)
    assert [row.rhs for row in pm.rows] == [8]  # 2 nodes x 8 free - 8 used


# 100 examples: of 400 run while writing decision 58 (17 s), 58 reached the class-by-class path's premium
# bound and 69 skipped a class's full-service LP, every bound below every plan
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_instances())
def test_lp_bound_never_above_the_proven_optimum(inst: Instance) -> None:
    full = run_backend(inst, CpSatBackend("full"), time_limit=10.0)
    guided = run_backend(inst, CpSatBackend("lp"), time_limit=10.0)  # the LP plan as it is, unchecked
    for out in (full, guided):
        assert verify(inst, out.plan) == []
    assert score(inst, full.plan).modelled() <= score(inst, full.greedy).modelled()
    assert guided.bound is not None
    for plan in (guided.plan, guided.greedy, full.plan):  # a bound is below every plan
        assert guided.bound <= score(inst, plan)


@pytest.mark.parametrize("seed", [0, 1])
def test_lp_guided_path_on_medium_instances_is_verified_and_bounded(seed: int) -> None:
    inst = generate_instance("medium", seed)
    out = run_backend(inst, CpSatBackend("lp"), time_limit=20.0)
    assert out.status != "fallback", out.fallback_reason
    assert verify(inst, out.plan) == []
    got = score(inst, out.plan)
    assert got.modelled() <= score(inst, out.greedy).modelled()
    assert out.bound is not None
    assert out.bound <= got
    assert out.stats["lp_cols"] > 0  # the LP path ran


# Pod sizes 2 and 3 are not a divisibility chain. n1 has 6 free GPUs, n2 has 4: 'a' (1+1 pods of 3)
# and 'b' (1+1 pods of 2) fit only as n1 = 3+3 and n2 = 2+2. Best fit (largest pods first onto the
# fullest node that fits) puts a 3 on n2 and strands the last 2; the greedy leaves 'b' unserved.
NOT_A_CHAIN = instance(
    nodes=[node("n1", "a", "a-1", free=6), node("n2", "a", "a-1", free=4)],
    services=[pd_service("a", "s1", p_size=3, d_size=3), pd_service("b", "s1", prio=5, p_size=2, d_size=2)],
    requests=[request("a", 1), request("b", 1)],
)


def test_counts_outside_a_chain_bind_and_serve_more_than_the_greedy() -> None:
    assert solve(NOT_A_CHAIN, "greedy").score.unserved_gpus == [0, 4]
    for solver in ("cpsat", "milp"):
        result = solve(NOT_A_CHAIN, solver)
        assert result.status != "fallback", result.fallback_reason
        assert result.score.unserved_gpus == [0, 0]  # 3+3 on n1, 2+2 on n2
        placed = {(c.service, p.node) for c in result.plan.changes for p in c.pods}
        assert placed == {("a", "n1"), ("b", "n2")}


def test_exact_packing_where_best_fit_fails() -> None:
    view = build_view(NOT_A_CHAIN)
    drafts = [
        GroupDraft("a", "a@a-1", True, "a-1", 1, Counter({("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 1})),
        GroupDraft("b", "b@a-1", True, "a-1", 1, Counter({("prefill", "a-1", "H20"): 1, ("decode", "a-1", "H20"): 1})),
    ]
    changes = bind(view, drafts)
    assert verify(NOT_A_CHAIN, Plan(changes=changes), view) == []
    with pytest.raises(BindingError):  # one more 2-GPU pod than the 10 free GPUs can hold
        bind(view, [*drafts, GroupDraft("b", "b@a-1", True, "a-1", 1, Counter({("decode", "a-1", "H20"): 1}))])


def test_a_chunk_without_budget_is_placed_by_the_greedy_and_recorded() -> None:
    # each S1 holds half a unit, so the LP places 'chat' fractionally; no integer placement serves it,
    # so neither full-service MIP finds one and the most-served ones (on the LP's support, which found one,
    # so not on its alternatives; then over every request, the instance being small) place nothing; it is freed for
    # CP-SAT; with no deterministic budget left the chunk is skipped: the greedy places it (here:
    # nowhere) and the plan still carries its unserved record, so it verifies
    inst = instance(
        nodes=[node("n1", "a", "a-1"), node("n2", "b", "b-1")],
        services=[pd_service("chat", "s1")],
        requests=[request("chat", 1)],
    )
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    guided = lp_guided(view, part, SolveOptions(time_limit=2.0), Budget(time.perf_counter() + 10, 0.0, True))
    assert guided is not None
    assert guided.termination == [
        "mip-support:NONE",
        "mip-alternatives:NONE",
        "mip-support-most:FEASIBLE",
        "mip-every-request:FEASIBLE",
        "rins0:SKIPPED(budget)",
        "greedy[1 requests]",
    ]
    plan = bind_plan(view, guided.counts, part)  # the counts as solve() binds them
    assert verify(inst, plan, view) == []
    assert [(u.service, u.placed_units) for u in plan.unserved] == [("chat", 0)]


def test_lp_guided_path_is_deterministic() -> None:
    inst = generate_instance("medium", 2)
    runs = [run_backend(inst, CpSatBackend("lp"), time_limit=20.0) for _ in range(2)]
    assert runs[0].plan == runs[1].plan
    assert runs[0].bound == runs[1].bound


def test_a_chunk_is_taken_where_the_plan_on_size_fits_it() -> None:
    # the plan counts the LP path by its columns, then what the run has planned (MIPs' work, chunks' builds
    # and the deterministic time they used; no wall clock): the next chunk is taken where its build and its
    # floor (the deterministic time at which its first stage runs) fit in what is left of PLANNED_SHARE of
    # the limit; it gets its floor and an even share of what the builds and floors of the chunks that fit leave
    view = build_view(generate_instance("medium", 2))
    part = [r for r in view.requests if r.delta > 0]
    chunks = [part[i : i + 2] for i in range(0, 8, 2)]
    cost = [PLANNED_CHUNK_SECONDS_PER_CELL * view.candidate_cells(c) for c in chunks]
    needed = [first_stage_dtime(model_variables(view, c, None), SERVED_SHARE) for c in chunks]
    floor = [d / PLANNED_DTIME_PER_SECOND for d in needed]
    columns = 10_000
    lp_s = PLANNED_SECONDS_PER_COLUMN * columns
    room = cost[0] + cost[1] + floor[0] + floor[1] + cost[2] / 2  # two chunks fit, not three
    options = SolveOptions(time_limit=(lp_s + room) / PLANNED_SHARE)
    run = _Chunks(view, options, Budget(time.perf_counter() + 10, 1.0, True), [], {}, {}, [], {})
    fits, dtime = _plan(run, chunks, columns, SERVED_SHARE)
    assert fits
    assert dtime == pytest.approx((floor[0] + cost[2] / 4) * PLANNED_DTIME_PER_SECOND)
    run.planned = room - cost[1] - floor[1] / 2  # what the first chunk's build and CP-SAT used
    assert _plan(run, chunks[1:], columns, SERVED_SHARE) == (False, None)  # the second's build and floor no longer fit
    # the parallel portfolio (deterministic=False) has no deterministic time to plan: every chunk, the wall decides
    fast = _Chunks(view, options, Budget(time.perf_counter() + 10), [], {}, {}, [], {})
    assert _plan(fast, chunks, columns, SERVED_SHARE) == (True, None)


def test_consolidation_passes_over_a_chunk_the_plan_does_not_fit_to_a_smaller_one() -> None:
    # phase B: a chunk whose build and floor do not fit what the plan leaves is passed over, and a later
    # chunk that needs less still runs (its stages, with at least its floor)
    view = build_view(generate_instance("large", 0))
    part = [r for r in view.requests if r.delta > 0]
    big, small = part[:8], [min(part[8:], key=lambda r: model_variables(view, [r], None))]

    def need(chunk: list[Any]) -> float:  # planned seconds: its build and its first stage's floor
        floor = first_stage_dtime(model_variables(view, chunk, None), GROUPS_SHARE)
        return PLANNED_CHUNK_SECONDS_PER_CELL * view.candidate_cells(chunk) + floor / PLANNED_DTIME_PER_SECOND

    assert need(big) > need(small) * 1.1
    options = SolveOptions(time_limit=need(small) * 1.05 / PLANNED_SHARE)  # room for the small one only
    termination: list[str] = []
    run = _Chunks(view, options, Budget(time.perf_counter() + 30, 1.0, True), [], {}, {}, termination, {})
    _consolidate(run, [big, small], 0)
    assert termination[-1] == "consolidation:1 of 2 chunks planned"
    assert termination[0].startswith("rins0[")  # the small chunk ran, its stage too
    assert "groups:SKIPPED(budget)" not in termination[0]
    assert run.count == 1


def _blocked_instance() -> Instance:
    # S1 a-1 holds two L20 nodes, b-1 two H20 nodes: one unit of two 8-GPU pods each. 'hi' (priority 100)
    # prefers L20 and takes H20 too; 'mid' (50), 'lo2' (10, 16 GPUs) and 'lo' (10, 8 GPUs) take L20 only
    return instance(
        nodes=[
            node("n1", "a", "a-1", "L20"),
            node("n2", "a", "a-1", "L20"),
            node("n3", "b", "b-1"),
            node("n4", "b", "b-1"),
        ],
        services=[
            pd_service("hi", "cluster", prio=100, p_types=("L20", "H20"), d_types=("L20", "H20")),
            pd_service("mid", "cluster", prio=50, p_types=("L20",), d_types=("L20",)),
            pd_service("lo", "cluster", prio=10, p_types=("L20",), d_types=("L20",), p_size=4, d_size=4),
            pd_service("lo2", "cluster", prio=10, p_types=("L20",), d_types=("L20",)),
            pd_service("none", "cluster", prio=10, max_new_groups=0),
        ],
        requests=[request(s, 1) for s in ("hi", "mid", "lo", "lo2", "none")],
    )


def _greedy_run(view: Any, part: list[Any], time_limit: float, termination: list[str]) -> Any:
    """A chunk run (deterministic budget) from the greedy's drafts of ``part``."""
    counts = greedy_counts(view, part)
    load: dict[Any, Counter[int]] = {}
    add_load(view, counts.drafts, load)
    options = SolveOptions(time_limit=time_limit)
    return _Chunks(
        view, options, Budget(time.perf_counter() + 30, 10.0, True), counts.drafts, load, {}, termination, {}
    )


def test_a_room_chunk_moves_a_higher_class_off_the_capacity_a_lower_class_needs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the greedy puts 'hi' on its preferred L20 (a-1), the only capacity the others can use: all short, while
    # 'hi' serves as much on b-1's H20. Targets: 'mid' (class 50) first, then class 10 by GPUs short ('lo2'
    # before 'lo', against their ids); 'none' is short too but has no slot (no group, none to open).
    # 'mid''s chunk re-places it with 'hi' (holding its cells): 'hi' moves to H20 and 'mid' takes a-1.
    # 'lo2''s chunk holds 'mid', which no other cell takes: it stays (no class loses), 'lo2' stays short
    view = build_view(_blocked_instance())
    part = [r for r in view.requests if r.delta > 0]
    termination: list[str] = []
    run = _greedy_run(view, part, 10.0, termination)
    assert {d.service: d.units for d in run.drafts} == {"hi": 1}
    assert [r.service.id for r in _short_below_top(run, part)] == ["mid", "lo2", "lo"]
    chunks: list[list[str]] = []  # each chunk as the run builds it, at its turn

    def recorded(*args: Any) -> list[Any]:
        chunk = _room_chunk(*args)
        chunks.append([r.service.id for r in chunk])
        return chunk

    monkeypatch.setattr(neighbourhood, "_room_chunk", recorded)
    _make_room(run, part, 0)
    assert termination[-1] == "room:3 of 3 chunks"
    # (the first three are the plan's look-ahead, from the greedy's drafts; then 'lo2' and 'lo' at their turns)
    assert chunks == [["mid", "hi"], ["lo2", "hi"], ["lo", "hi"], ["lo2", "mid"], ["lo", "mid"]]
    assert all(t.startswith(f"rins{k}[") for k, t in enumerate(termination[:-1]))
    placed = {d.service: (d.units, sorted(d.counts)) for d in run.drafts}
    assert placed == {
        "hi": (1, [("decode", "b-1", "H20"), ("prefill", "b-1", "H20")]),
        "mid": (1, [("decode", "a-1", "L20"), ("prefill", "a-1", "L20")]),
    }


def test_where_the_wall_decides_each_chunk_shares_it_with_every_later_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    # deterministic=False: a chunk's budget is 1/left of the wall time left, left counting it and every phase-A
    # chunk after it, those of the later groups too (else the last top-class chunk takes all the wall time)
    view = build_view(_blocked_instance())
    part = [r for r in view.requests if r.delta > 0]
    run = _greedy_run(view, part, 10.0, [])
    run.budget = Budget(time.perf_counter() + 30)
    lefts: list[int] = []
    monkeypatch.setattr(_Chunks, "solve", lambda self, chunk, hint, left, skip, dtime=None: lefts.append(left) or True)
    _fractional(run, [part[:1], part[1:2]], None, 0, "fractional-top", 3)
    _make_room(run, part, 0, 2)
    assert lefts == [5, 4, 5, 4, 3]


def test_the_lp_path_makes_room_for_a_lower_class(monkeypatch: pytest.MonkeyPatch) -> None:
    # the same instance through the LP path: not everything fits, so it goes class by class, the top class's
    # premium first (on L20); the room chunks then serve 'mid' as above, and the plan verifies. (The staged
    # LP of every class, which places 'hi' on H20 at once, is left out: it runs only where the limit is
    # STAGED_FACTOR times what the path needs, as on this small instance, not on the heavy family at 10 s.)
    monkeypatch.setattr(neighbourhood, "STAGED_FACTOR", 1e9)
    inst = _blocked_instance()
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    guided = lp_guided(view, part, SolveOptions(time_limit=10.0), Budget(time.perf_counter() + 30, 10.0, True))
    assert guided is not None
    assert "room:3 of 3 chunks" in guided.termination
    plan = bind_plan(view, guided.counts, part)
    assert sorted((c.service, c.units) for c in plan.changes) == [("hi", 1), ("mid", 1)]
    assert verify(inst, plan, view) == []


def test_room_chunks_keep_to_the_plan_on_size() -> None:
    # with no plan left (deterministic mode) no room chunk is built; the drafts stay as they were
    view = build_view(_blocked_instance())
    part = [r for r in view.requests if r.delta > 0]
    termination: list[str] = []
    run = _greedy_run(view, part, 1e-3, termination)
    drafts = list(run.drafts)
    _make_room(run, part, 0)
    assert termination == ["room:0 of 3 chunks"]
    assert run.drafts == drafts


def test_a_room_chunks_partners_hold_the_most_in_one_of_its_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    # 'lo' (S1 affinity, L20) may open a group in a-1 or d-1; 'hi' holds 8 GPUs in each, 'hi2' 16 in d-1: over
    # both S1s they hold as much, but a unit grows within one S1, and in d-1 'hi2' frees twice what 'hi' can
    monkeypatch.setattr(neighbourhood, "ROOM_PARTNERS", 1)
    inst = instance(
        nodes=[node(f"a{i}", "a", "a-1", "L20") for i in range(2)]
        + [node(f"d{i}", "d", "d-1", "L20") for i in range(4)],
        services=[
            pd_service("hi", "cluster", prio=100, p_types=("L20",), d_types=("L20",)),
            pd_service("hi2", "cluster", prio=100, p_types=("L20",), d_types=("L20",)),
            pd_service("lo", "s1", prio=10, p_types=("L20",), d_types=("L20",)),
        ],
        requests=[request("hi", 1), request("hi2", 1), request("lo", 1)],
    )
    view = build_view(inst)
    part = {r.service.id: r for r in view.requests}
    drafts = [
        GroupDraft("hi", "hi-new", True, "c", 1, Counter({("prefill", "a-1", "L20"): 1, ("decode", "d-1", "L20"): 1})),
        GroupDraft(
            "hi2", "hi2-new", True, "c", 1, Counter({("prefill", "d-1", "L20"): 1, ("decode", "d-1", "L20"): 1})
        ),
    ]
    run = _Chunks(
        view, SolveOptions(time_limit=10.0), Budget(time.perf_counter() + 30, 10.0, True), drafts, {}, {}, [], {}
    )
    assert _holdings(run, part) == {("a-1", "L20"): Counter({"hi": 8}), ("d-1", "L20"): Counter({"hi": 8, "hi2": 16})}
    assert [r.service.id for r in _room_chunk(run, part["lo"], part, _holdings(run, part))] == ["lo", "hi2"]


def test_a_chunks_floor_is_what_its_first_stage_needs_to_run() -> None:
    # the plan counts a model by its variables without building it; and a staged solve given its floor
    # (first_stage_dtime) runs its first stage, where a little less makes StagedSolver skip it
    for family, seed in [("medium", 2), ("moe", 1), ("contention", 0), ("small", 1)]:
        view = build_view(generate_instance(family, seed))
        for i in range(0, len(view.requests), 3):
            chunk = view.requests[i : i + 3]
            assert model_variables(view, chunk, None) == len(build(view, chunk, {}, None).variables)
    view = build_view(generate_instance("large", 0))
    chunk = [r for r in view.requests if r.delta > 0][:20]  # big enough that MIN_STAGE_DTIME does not decide
    floor = first_stage_dtime(model_variables(view, chunk, None), SERVED_SHARE)
    assert floor > MIN_STAGE_DTIME / SERVED_SHARE

    def first_stage(dtime: float) -> str:
        pm = build(view, chunk, {}, None)
        budget = Budget(time.perf_counter() + 30, dtime, True)
        staged = StagedSolver(pm, [0] * len(pm.variables), SolveOptions(), budget, single=True).run(skip=PHASE_A)
        return staged.termination[0]

    ran = first_stage(floor)
    assert ran.startswith("served")
    assert "SKIPPED" not in ran
    assert first_stage(floor * 0.95).endswith("SKIPPED(budget)")


def test_full_service_lp_is_none_when_not_everything_fits() -> None:
    view = build_view(TWO_NODES)  # two units asked, one fits
    lp = build_relaxation(view, [r for r in view.requests if r.delta > 0])
    assert solve_full_service(lp, Budget(time.perf_counter() + 30)) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_service_lp_gives_the_staged_bounds_in_one_solve(seed: int) -> None:
    view = build_view(generate_instance("medium", seed))
    lp = build_relaxation(view, [r for r in view.requests if r.delta > 0])
    staged = solve_relaxation(lp, Budget(time.perf_counter() + 30))
    direct = solve_full_service(lp, Budget(time.perf_counter() + 30), groups=True)
    if staged.served_ub != wanted_gpus(lp):  # some class cannot be fully served, even fractionally
        assert direct is None
    else:
        assert direct is not None
        assert direct.full_service
        assert (direct.served_ub, direct.premium_lb) == (staged.served_ub, staged.premium_lb)
        assert direct.groups_lb == staged.groups_lb  # the groups stage too, when asked for
        deferred = solve_full_service(lp, Budget(time.perf_counter() + 30), groups=True, defer=True)
        assert deferred is not None
        assert deferred.groups_lb is None
        assert deferred.groups_stage is not None
        deferred.groups_stage(Budget(time.perf_counter() + 30), None)  # run later, from the same LP's optimum
        assert (deferred.groups_lb, deferred.groups_stage) == (staged.groups_lb, None)


@pytest.mark.parametrize("seed", [0, 2])
def test_the_mip_neighbourhood_serves_the_freed_requests_and_binds(seed: int) -> None:
    # medium seeds 0 and 2: every request fits, the LP leaves 2 and 6 requests fractional; the MIP's
    # placement serves every freed request in full, is never below the LP bound, and its counts bind to
    # nodes and verify
    inst = generate_instance("medium", seed)
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    lp = build_relaxation(view, part)
    out = solve_full_service(lp, Budget(time.perf_counter() + 30))
    assert out is not None
    assert out.values is not None
    freed = {sid for sid, ok in _integral(lp, out.values).items() if not ok}
    assert freed
    hood = solve_freed(lp, out.values, freed, Budget(time.perf_counter() + 30), 1000, out.reduced)
    assert hood is not None
    assert all(ok for ok in _integral(lp, hood.values).values())
    assert _premium(lp, hood.values) >= (out.premium_lb or 0)
    drafts, _ = _fixed(view, lp, hood.values, dict.fromkeys(_integral(lp, hood.values), True))
    placed = Counter[str]()
    for d in drafts:
        placed[d.service] += d.units
    assert all(placed[r.service.id] == r.delta for r in part)
    changes = bind(view, drafts)
    ins = [
        Unserved(service=r.service.id, wanted_units=r.delta, placed_units=0, reason="scale-in not placed here")
        for r in view.requests
        if r.delta < 0
    ]
    assert verify(inst, Plan(changes=changes, unserved=ins), view) == []


def test_when_not_everything_fits_the_top_class_is_placed_first_and_bounded() -> None:
    # one S1 of two 8-GPU nodes holds one 16-GPU unit; 'hi' (priority 100) and 'lo' (10) each ask one:
    # no LP serves both, so the LP path goes class by class and bounds only the top class
    inst = instance(
        nodes=[node("n1", "a", "a-1"), node("n2", "a", "a-1")],
        services=[pd_service("hi", "s1", prio=100), pd_service("lo", "s1", prio=10)],
        requests=[request("hi", 1), request("lo", 1)],
    )
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    lp = build_relaxation(view, part)
    assert solve_full_service(lp, Budget(time.perf_counter() + 30)) is None
    guided = lp_guided(view, part, SolveOptions(time_limit=2.0), Budget(time.perf_counter() + 10, 1.0, True))
    assert guided is not None
    assert guided.outcome.served_ub == {100: 16}
    plan = bind_plan(view, guided.counts, part)  # the counts as solve() binds them
    assert [(c.service, c.units) for c in plan.changes] == [("hi", 1)]
    assert [(u.service, u.placed_units) for u in plan.unserved] == [("lo", 0)]
    assert verify(inst, plan, view) == []


@pytest.mark.parametrize(
    ("hi", "mid", "skipped", "unserved"),
    [
        (3, 1, "lp_class100_full_service_skipped", (16, 16, 16)),  # 'hi' itself cannot be served in full
        (1, 3, "lp_class50_full_service_skipped", (0, 32, 16)),  # 'hi' fits; 'mid' does not
    ],
)
def test_a_class_the_greedy_leaves_short_skips_the_lp_that_serves_it_in_full(
    hi: int, mid: int, skipped: str, unserved: tuple[int, ...]
) -> None:
    # four 8-GPU nodes in one S1 hold two 16-GPU units; 'hi' (100), 'mid' (50), 'lo' (10) ask more. Where
    # the greedy leaves the top class short and its LP cannot serve it in full, neither can every request:
    # the LP of them all is never built; a lower class the greedy leaves short goes straight to the staged
    # LP. Plan and bounds are those of the path without the greedy's counts (the LPs dropped are known
    # infeasible or are tried again as stages).
    inst = instance(
        nodes=[node(f"n{i}", "a", "a-1") for i in range(4)],
        services=[pd_service("hi", "s1", prio=100), pd_service("mid", "s1", prio=50), pd_service("lo", "s1")],
        requests=[request("hi", hi), request("mid", mid), request("lo", 1)],
    )
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    runs = []
    for hint in (greedy_counts(view), None):
        budget = Budget(time.perf_counter() + 10, 1.0, True)
        guided = lp_guided(view, part, SolveOptions(time_limit=2.0), budget, None, hint)
        assert guided is not None
        runs.append((guided.stats, _draft_key(view, part, guided.drafts), guided.outcome.served_ub))
    (with_hint, key, served_ub), (without, key_without, served_ub_without) = runs
    assert with_hint.get(skipped) == 1.0
    assert skipped not in without
    assert (key, served_ub) == (key_without, served_ub_without)
    assert key[:3] == unserved


@pytest.mark.parametrize("no_slot_priority", [100, 30])
def test_a_class_that_fits_nowhere_does_not_stop_the_class_by_class_path(no_slot_priority: int) -> None:
    # 32 H20 GPUs in one S1; 'nol20' wants L20 only (no slot anywhere); 'mid' and 'lo' ask 64 GPUs: not
    # everything fits, so the path goes class by class; the slotless class places nothing and the
    # classes below it are still placed by their own LPs (mid's unit, then one of lo's three)
    inst = instance(
        nodes=[node(f"n{i}", "a", "a-1") for i in range(4)],
        services=[
            pd_service("nol20", "s1", prio=no_slot_priority, p_types=("L20",), d_types=("L20",)),
            pd_service("mid", "s1", prio=50),
            pd_service("lo", "s1", prio=10),
        ],
        requests=[request("nol20", 1), request("mid", 1), request("lo", 3)],
    )
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    why: dict[str, float] = {}
    guided = lp_guided(view, part, SolveOptions(time_limit=2.0), Budget(time.perf_counter() + 10, 1.0, True), why)
    assert guided is not None, why
    assert not any("NOT_SOLVED" in t for t in guided.termination)
    plan = bind_plan(view, guided.counts, part)  # the counts as solve() binds them
    assert sorted((c.service, c.units) for c in plan.changes) == [("lo", 1), ("mid", 1)]
    assert verify(inst, plan, view) == []


def test_where_the_limit_is_ample_the_staged_lp_corrects_class_by_class() -> None:
    # contention seed 3: placing class 100 first, alone, costs class 50 32 GPUs; the staged LP over
    # all classes places class 100 elsewhere and serves class 50 in full: (0, 0, 3) at premium 571,
    # the optimum (CP-SAT's full model proves it; greedy leaves (0, 16, 0))
    inst = generate_instance("contention", 3)
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    guided = lp_guided(view, part, SolveOptions(time_limit=5.0), Budget(time.perf_counter() + 30, 0.25, True))
    assert guided is not None
    assert "staged-lp:BETTER" in guided.termination
    assert _draft_key(view, part, guided.drafts) == (0, 0, 3, 571)
    assert solve(inst, "cpsat", time_limit=5.0).score.unserved_gpus == [0, 0, 3]


def test_an_lp_without_a_slot_is_solved_not_out_of_time() -> None:
    # the only request fits nowhere: every LP of it is solved at once with every bound 0, and the LP
    # path returns a plan that records the request unserved (it used to give up as "not solved in time")
    inst = instance(
        nodes=[node("n1", "a", "a-1")],
        services=[pd_service("nol20", "s1", p_types=("L20",), d_types=("L20",))],
        requests=[request("nol20", 1)],
    )
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    lp = build_relaxation(view, part)
    budget = Budget(time.perf_counter() + 30)
    for out in (solve_relaxation(lp, budget), solve_full_service(lp, budget)):
        assert out is not None
        assert (out.served_ub, out.premium_lb, out.complete) == ({10: 0}, 0, True)
    why: dict[str, float] = {}
    guided = lp_guided(view, part, SolveOptions(time_limit=2.0), Budget(time.perf_counter() + 10, 1.0, True), why)
    assert guided is not None, why
    plan = bind_plan(view, guided.counts, part)  # the counts as solve() binds them
    assert [(u.service, u.placed_units) for u in plan.unserved] == [("nol20", 0)]


# 'chat' (the top class, S1 affinity, a unit of two 4-GPU pods) fits one pod in each of two S1s: its LP
# serves it in full (half a unit in each), no placement serves any of it; 'batch' (below it, on L20) fits.
HALF_UNITS = instance(
    nodes=[node("n1", "a", "a-1", free=4), node("n2", "b", "b-1", free=4), node("n3", "d", "d-1", gpu="L20")],
    services=[
        pd_service("chat", "s1", prio=10, p_size=4, d_size=4),
        pd_service("batch", "s1", prio=5, p_types=("L20",), d_types=("L20",), p_size=2, d_size=2),
    ],
    requests=[request("chat", 1), request("batch", 1)],
)


def test_the_top_classs_bound_is_what_a_mip_over_the_whole_class_proves_it_serves() -> None:
    # 'chat' (the top class, S1 affinity, a unit of two 4-GPU pods) fits one pod in each of two S1s,
    # so its LP serves it in full (half a unit in each) while no placement serves any of it; 'batch'
    # (below it, on L20) fits. The MIP over every request and slot of the class proves that 'chat' is
    # served nothing: the bound on its unserved GPUs is all 8 of them, the plan's own.
    inst = HALF_UNITS
    result = solve(inst, "cpsat", time_limit=5.0)
    assert result.score.unserved_gpus == [8, 0]
    assert result.bound.unserved_gpus[0] == 8
    assert result.gaps["unserved_gpus"][0] == 0


def test_counts_of_an_lp_outside_a_chain_are_never_taken_when_the_top_class_is_short() -> None:
    # (found in review) 'hi' cannot be served in full, so the LP of every request is skipped at first; its
    # classes' LPs are each a chain, but together the sizes on x-1 are not (2, 3 and 4 GPUs). The staged
    # alternative over every request must not run on that LP (its counts did not bind: solve() fell back
    # to the greedy's [20, 10]); the class-by-class counts bind and the call proves [10, 10]
    inst = instance(
        gpu_types=[{"id": "H20"}, {"id": "L20"}, {"id": "A100"}],
        nodes=[
            node("y1", "y", "y-1", gpu="A100", free=4),
            node("x1", "x", "x-1", free=4),
            node("x2", "x", "x-1", free=4),
            node("z1", "z", "z-1", gpu="L20"),
        ],
        services=[
            pd_service("hi", "cluster", prio=100, p_types=("A100", "H20"), d_types=("L20",), p_size=2, d_size=8),
            pd_service("lo", "cluster", prio=10, p_types=("A100",), d_types=("H20",), p_size=4, d_size=3, ratio=(1, 2)),
        ],
        requests=[request("hi", 2), request("lo", 1)],
    )
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    budget = Budget(time.perf_counter() + 30, 1.0, True)
    guided = lp_guided(view, part, SolveOptions(time_limit=2.0), budget, None, greedy_counts(view))
    if guided is not None:
        bind(view, guided.drafts)  # raises BindingError if they cannot be bound
    result = solve(inst, "cpsat", time_limit=2.0)
    assert result.status != "fallback", result.fallback_reason
    assert result.score.unserved_gpus == [10, 10]


def test_where_the_served_terms_are_proven_one_lp_bounds_the_premium_too() -> None:
    # two 8-GPU H20 nodes hold one of the two 16-GPU units 'chat' (the top class) asks for: even
    # fractionally it cannot be served in full, so the LP path goes class by class and proves 'chat' at
    # 16 GPUs; 'batch' below it is served in full on L20. The served terms are then the optimum's, and the
    # LP of every request holding them bounds premium, which the plan attains (its gap is 0)
    inst = instance(
        nodes=[node("n1", "a", "a-1"), node("n2", "a", "a-1"), node("n3", "d", "d-1", gpu="L20")],
        services=[
            pd_service("chat", "s1", prio=10),
            pd_service("batch", "s1", prio=5, p_types=("L20",), d_types=("L20",), p_size=2, d_size=2),
        ],
        requests=[request("chat", 2), request("batch", 1)],
    )
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    budget = Budget(time.perf_counter() + 30, 1.0, True)
    guided = lp_guided(view, part, SolveOptions(time_limit=5.0), budget, None, greedy_counts(view))
    assert guided is not None
    unserved_top, unserved_batch, premium = _draft_key(view, part, guided.drafts)
    assert (unserved_top, unserved_batch) == (16, 0)
    assert f"premium-bound:{premium}" in guided.termination
    assert (guided.outcome.served_ub, guided.outcome.premium_lb) == ({10: 16, 5: 4}, premium)
    # where the limit covers the path but not twice it (the rule on size), the extra LP is not taken
    limit = 1.5 * LP_SECONDS_PER_CELL * view.candidate_cells(part)
    short = lp_guided(view, part, SolveOptions(time_limit=limit), budget, None, greedy_counts(view))
    assert short is not None
    assert not any(t.startswith("premium-bound") for t in short.termination)
    assert short.outcome.premium_lb is None


def test_the_groups_bound_is_solved_only_where_the_plan_attains_the_served_and_premium_bounds() -> None:
    # 'chat' fits in full fractionally (half a unit in each of two S1s) but not at all in integers: the
    # plan misses the LP's served bound, so the groups stage (a bound that cannot matter then, and 2 s of
    # a 10-s call on heavy production) is never run. Where the plan attains them (medium seed 0), it is.
    inst = HALF_UNITS
    for case, attained in ((inst, False), (generate_instance("medium", 0), True)):
        view = build_view(case)
        part = [r for r in view.requests if r.delta > 0]
        budget = Budget(time.perf_counter() + 30, 1.0, True)
        guided = lp_guided(view, part, SolveOptions(time_limit=20.0), budget, None, greedy_counts(view))
        assert guided is not None
        assert guided.outcome.full_service
        assert ("lp_groups_s" in guided.stats) is attained
        assert (guided.outcome.groups_lb is not None) is attained


def test_a_warm_stage_runs_primal_simplex_and_leaves_the_default_for_the_next() -> None:
    # min x + y s.t. x + y >= 1, then (the last optimum kept by a row) max x: primal from the warm basis.
    import highspy
    import numpy as np

    from hetero_opt.placement.relaxation import _run_lp

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.addVars(2, np.zeros(2), np.full(2, 5.0))
    h.addRows(
        1,
        np.array([1.0]),
        np.array([highspy.kHighsInf]),
        2,
        np.array([0], dtype=np.int32),
        np.array([0, 1], dtype=np.int32),
        np.array([1.0, 1.0]),
    )
    h.changeColsCost(2, np.array([0, 1], dtype=np.int32), np.array([1.0, 1.0]))
    budget = Budget(time.perf_counter() + 10)
    _run_lp(h, budget, None)
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    h.addRow(-highspy.kHighsInf, 1.0, 2, np.array([0, 1], dtype=np.int32), np.array([1.0, 1.0]))
    h.changeColsCost(2, np.array([0, 1], dtype=np.int32), np.array([-1.0, 0.0]))
    _run_lp(h, budget, None, warm=True)
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    assert h.getInfo().objective_function_value == pytest.approx(-1.0)
    strategy = h.getOptionValue("simplex_strategy")
    assert (strategy[1] if isinstance(strategy, tuple) else strategy) == 1  # HiGHS's default (dual), restored


def test_lexicographic_weights_make_each_class_outweigh_every_class_below() -> None:
    # the most each class serves, highest first: 10, 5, 3 GPUs. Lowest weight 1; the middle one must
    # beat 3 GPUs of the lowest (4); the top one 5 GPUs at 4 plus 3 at 1 (24)
    assert _lexicographic_weights([10, 5, 3]) == [24.0, 4.0, 1.0]
    assert _lexicographic_weights([7]) is None  # one class: its own served stage, nothing to weigh
    assert _lexicographic_weights([10, 2**13, 2**13]) is None  # past MAX_LEXICOGRAPHIC_WEIGHT: one by one


@given(st.lists(st.integers(0, 60), min_size=2, max_size=4), st.data())
def test_weighted_served_orders_plans_as_the_classes_do_one_by_one(most: list[int], data: st.DataObject) -> None:
    weights = _lexicographic_weights(most)
    assume(weights is not None)
    assert weights is not None
    plans = st.tuples(*(st.integers(0, m) for m in most))
    a, b = data.draw(plans), data.draw(plans)

    def weighted(served: tuple[int, ...]) -> float:
        return sum(w * s for w, s in zip(weights, served, strict=True))

    assert (weighted(a) > weighted(b)) == (a > b)  # tuples compare lexicographically, highest class first


@pytest.mark.parametrize(
    ("family", "seed", "over"),
    [("contention", s, {}) for s in range(3)] + [("medium", s, {"num_nodes": 60}) for s in range(2)],
)
def test_the_weighted_served_stage_reaches_the_class_by_class_optimum(
    family: str, seed: int, over: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a MIP over every slot of every request, served GPUs per class then premium: as one weighted run
    # (each class outweighs all below) and as one run per class, the same served GPUs per class and premium
    import numpy as np

    from hetero_opt.placement import relaxation

    view = build_view(generate_instance(family, seed, **over))
    part = [r for r in view.requests if r.delta > 0]
    lp = build_relaxation(view, part)
    assert len(lp.served) >= 2  # several classes, or nothing is weighed
    outcome = solve_relaxation(lp, Budget(time.perf_counter() + 30))
    values = outcome.values
    assert values is not None
    ids = {r.service.id for r in part}

    def placed() -> tuple[tuple[int, ...], int, int | None]:
        hood = solve_freed(lp, values, ids, Budget(time.perf_counter() + 30), 100_000, np.zeros(lp.num_cols), False)
        assert hood is not None
        served = tuple(round(float(lp.cost_vector(("served", p)) @ hood.values)) for p in lp.served)
        return served, _premium(lp, hood.values), hood.top_served_ub

    used: list[list[float] | None] = []
    original = relaxation._lexicographic_weights

    def spy(most: list[int]) -> list[float] | None:
        used.append(original(most))
        return used[-1]

    monkeypatch.setattr(relaxation, "_lexicographic_weights", spy)
    weighted = placed()
    assert used[-1] is not None  # the weighted run did weigh the classes
    monkeypatch.setattr(relaxation, "_lexicographic_weights", lambda most: None)
    assert placed() == weighted
    assert weighted[2] == weighted[0][0]  # the top class's served stage proven either way: its bound is what it serves


def test_only_the_top_classs_served_stage_bounds_the_top_class(monkeypatch: pytest.MonkeyPatch) -> None:
    # one MIP per class (no weights): where the first served stage (the top class's) leaves no bound, a
    # later class's stage must not leave its own dual bound as the top class's
    import numpy as np

    from hetero_opt.placement import relaxation

    view = build_view(generate_instance("contention", 0))
    part = [r for r in view.requests if r.delta > 0]
    lp = build_relaxation(view, part)
    assert len(lp.served) >= 2
    outcome = solve_relaxation(lp, Budget(time.perf_counter() + 30))
    assert outcome.values is not None
    weights: list[float] = []  # one per call
    original = relaxation._top_served_ub

    def first_leaves_none(h: Any, fixed: float, weight: float) -> int | None:
        weights.append(weight)
        return None if len(weights) == 1 else original(h, fixed, weight)

    monkeypatch.setattr(relaxation, "_lexicographic_weights", lambda most: None)
    monkeypatch.setattr(relaxation, "_top_served_ub", first_leaves_none)
    ids = {r.service.id for r in part}
    hood = solve_freed(lp, outcome.values, ids, Budget(time.perf_counter() + 30), 100_000, np.zeros(lp.num_cols), False)
    assert hood is not None
    assert weights == [1.0]  # asked of the first served stage only
    assert hood.top_served_ub is None


def test_a_mip_stops_at_its_planned_work_the_same_way_every_run() -> None:
    # HiGHS's MIP has no deterministic work limit of its own; its interrupt checks, made at fixed points of
    # its search, are one: the same planned work gives the same placement (and spends the same work), and
    # work that does not cover a run's presolve starts no run
    view = build_view(generate_instance("medium", 2))
    part = [r for r in view.requests if r.delta > 0]
    lp = build_relaxation(view, part)
    out = solve_full_service(lp, Budget(time.perf_counter() + 30))
    assert out is not None
    x = out.values
    assert x is not None
    freed = {sid for sid, ok in _integral(lp, x).items() if not ok}

    def run(work: float) -> tuple[Any, Budget]:
        budget = Budget(time.perf_counter() + 30, 1.0, True, None, work)
        return solve_freed(lp, x, freed, budget, 1000, out.reduced), budget

    free, _ = run(math.inf)
    assert free is not None
    k = int(free.stats["mip_cols"])
    assert "mip_checks" not in free.stats  # no planned work: not counted, not limited
    ample, _ = run(1e9)  # planned work that never binds: every check counted, the same placement
    assert ample is not None
    assert (ample.values == free.values).all()
    assert ample.proven
    made = int(ample.stats["mip_checks"])
    presolve, check = MIP_PRESOLVE_SECONDS_PER_COLUMN * k, MIP_ROOT_SECONDS_PER_CHECK_COLUMN * k
    stopped = 0
    for checks in range(1, made):  # every point short of the end: interrupted there, the same way twice
        planned = presolve + checks * check
        (a, spent_a), (b, spent_b) = run(planned), run(planned)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert (a.values == b.values).all()
            assert a.stats["mip_checks"] == b.stats["mip_checks"]
            assert a.stats["mip_planned_s"] < planned + check  # interrupted at the check that reaches it
            if a.stats["mip_checks"] < made:  # (a check in the search costs less than one at the root)
                stopped += 1
                assert not a.proven  # an interrupted MIP proves nothing
        assert spent_a.work == spent_b.work >= 0.0
    assert stopped > 0  # some interrupted run had a placement to compare
    none, budget = run(presolve * 0.99)
    assert none is None
    assert budget.work == pytest.approx(presolve * 0.99)  # not started: nothing spent


def test_a_stopped_mips_dual_bound_bounds_the_top_class_and_tightens_its_lp() -> None:
    # the top class of a loaded instance on its own LP: a MIP over every request and slot of the class,
    # interrupted at each of its checks, leaves a bound on the GPUs the class can serve that is never below
    # what the uninterrupted MIP proves it serves, and at some checks already below the LP's bound
    import numpy as np

    view = build_view(generate_instance("heavy", 0, num_nodes=400, num_services=10, num_requests=5))
    part = [r for r in view.requests if r.delta > 0]
    top = max(r.service.priority for r in part)
    reqs = [r for r in part if r.service.priority == top]
    lp = build_relaxation(view, reqs)
    out = solve_relaxation(lp, Budget(time.perf_counter() + 30), stop_before="groups")
    x = out.values
    assert x is not None
    ids = {r.service.id for r in reqs}

    def run(work: float) -> Any:
        budget = Budget(time.perf_counter() + 30, 1.0, True, None, work)
        return solve_freed(lp, x, ids, budget, 100_000, np.zeros(lp.num_cols), False)

    whole = run(1e9)
    assert whole is not None
    assert whole.proven
    optimum = round(float(lp.cost_vector(("served", top)) @ whole.values))
    assert whole.top_served_ub == optimum < out.served_ub[top]  # proven: the bound is what it serves
    k, made = int(whole.stats["mip_cols"]), int(whole.stats["mip_checks"])
    tighter = 0
    for checks in range(1, made):
        hood = run(MIP_PRESOLVE_SECONDS_PER_COLUMN * k + checks * MIP_ROOT_SECONDS_PER_CHECK_COLUMN * k)
        if hood is not None and hood.top_served_ub is not None:
            assert hood.top_served_ub >= optimum  # a valid bound wherever the MIP stopped
            tighter += hood.top_served_ub < out.served_ub[top]
    assert tighter > 0  # some stopped MIP already bounds the class below its LP


def test_requests_a_stopped_mip_placed_worse_than_the_greedy_get_the_greedys_placement() -> None:
    # the freed requests left unplaced (as a MIP stopped by its planned work may leave them) are placed by
    # the greedy around the others, which serves more; a placement at least as good as the greedy's is kept
    view = build_view(generate_instance("medium", 2))
    part = [r for r in view.requests if r.delta > 0]
    greedy = greedy_counts(view, part).drafts
    freed = part[:2]
    ids = {r.service.id for r in freed}
    short = [d for d in greedy if d.service not in ids]
    termination: list[str] = []
    drafts, load = _no_worse_than_greedy(view, part, freed, short, {}, termination)
    assert termination == ["greedy-around:BETTER"]
    assert _draft_key(view, part, drafts) < _draft_key(view, part, short)
    assert {d.service for d in drafts if d.units > 0} >= ids
    assert sum(sum(c.values()) for c in load.values()) > 0  # the load follows the drafts
    kept, _ = _no_worse_than_greedy(view, part, freed, drafts, load, termination)
    assert kept == drafts  # already as good as the greedy's: kept as it is
    assert termination == ["greedy-around:BETTER"]
