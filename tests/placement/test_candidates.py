"""Candidate domains: the restricted model used when the full one is too big for the time limit."""

from __future__ import annotations

import time

import pytest

from hetero_opt import build_view, verify
from hetero_opt.generate import generate_instance
from hetero_opt.placement.backend import Budget, SolveOptions
from hetero_opt.placement.binding import bind_plan
from hetero_opt.placement.candidates import candidate_domains
from hetero_opt.placement.cpsat import neighbourhood
from hetero_opt.placement.cpsat.plans import restrict
from hetero_opt.placement.cpsat.solver import _lp_bounds
from hetero_opt.placement.greedy import greedy_counts, greedy_plan
from hetero_opt.placement.objective import score
from hetero_opt.placement.plan import Plan


@pytest.mark.parametrize("seed", [0, 1])
def test_the_hint_and_the_groups_domains_are_always_candidates(seed: int) -> None:
    inst = generate_instance("medium", seed)
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    hint = greedy_counts(view)
    domains = candidate_domains(view, part, hint, cells=1)  # the smallest budget: only what must stay
    for r in part:
        must = {g.domain for g in view.groups_by_service.get(r.service.id, [])}
        must |= {d.domain for d in hint.drafts if d.service == r.service.id and d.units > 0}
        assert must <= domains[r.service.id]


def test_a_larger_cell_budget_keeps_more_domains() -> None:
    inst = generate_instance("medium", 0)
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    small = candidate_domains(view, part, None, cells=200)
    large = candidate_domains(view, part, None, cells=20_000)
    assert all(small[s] <= large[s] for s in small)
    assert sum(map(len, large.values())) > sum(map(len, small.values()))


@pytest.mark.parametrize("seed", [0, 2])
def test_the_restricted_lp_path_is_never_worse_than_its_hint_and_bounds_nothing(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    inst = generate_instance("medium", seed)
    view = build_view(inst)
    part = [r for r in view.requests if r.delta > 0]
    # the full model needs 2 s by the size rule: at 1 s the LP path restricts itself to half the cells
    cells = view.candidate_cells(part)
    monkeypatch.setattr(neighbourhood, "LP_SECONDS_PER_CELL", 2.0 / cells)
    monkeypatch.setattr(neighbourhood, "SECONDS_PER_NODE", 0.0)
    monkeypatch.setattr(neighbourhood, "MIN_RESTRICTED_CELLS_PER_REQUEST", 1)
    hint = greedy_plan(inst, view)
    ins = [u for u in hint.unserved if u.wanted_units < 0]
    restricted_hint = restrict(greedy_counts(view), part)
    why: dict[str, float] = {}
    guided = neighbourhood.lp_guided(
        view, part, SolveOptions(time_limit=1.0), Budget(time.perf_counter() + 30, 1.0, True), why, restricted_hint
    )
    assert guided is not None, why
    assert guided.restricted
    assert why["lp_restricted_cells"] == cells // 2
    staged = _lp_bounds(part, guided)
    assert (staged.unserved_lb, staged.premium_lb, staged.groups_lb) == ({}, 0, 0)  # no bound claimed
    bound = bind_plan(view, guided.counts, part)
    plan = Plan(changes=bound.changes, unserved=[*bound.unserved, *ins])
    removals = [c for c in hint.changes if c.units < 0]
    full = Plan(changes=[*plan.changes, *removals], unserved=plan.unserved)
    assert verify(inst, full, view) == []
    assert score(inst, full, view).unserved_gpus <= score(inst, hint, view).unserved_gpus
