"""CP-SAT's paths on counts (decision 36): terms 1-4 from counts, the packing rows' fit test, hints from
counts, the one time budget, and no binding inside CP-SAT where pod sizes form a chain."""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetero_opt import Instance, build_view, score, solve
from hetero_opt.generate import generate_instance
from hetero_opt.placement import binding
from hetero_opt.placement.backend import DTIME_PER_SECOND, MIP_WORK_PER_SECOND, Budget
from hetero_opt.placement.binding import BindingError, GroupDraft, bind, bind_plan
from hetero_opt.placement.cpsat import blocks, neighbourhood, plans, solver
from hetero_opt.placement.cpsat.model import build
from hetero_opt.placement.cpsat.plans import count_values, fits
from hetero_opt.placement.greedy import greedy_counts
from hetero_opt.placement.objective import modelled
from placement.test_cpsat import small_instances


@pytest.mark.parametrize(("family", "seed"), [("tiny", 0), ("small", 1), ("moe", 0), ("medium", 2)])
def test_terms_1_to_4_of_counts_are_those_of_their_plan(family: str, seed: int) -> None:
    inst = generate_instance(family, seed)
    view = build_view(inst)
    counts = greedy_counts(view)
    assert modelled(view, counts.drafts) == score(inst, bind_plan(view, counts), view).modelled()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=small_instances(), extra=st.integers(0, 64), pick=st.integers(0, 1_000))
def test_the_fit_test_of_counts_agrees_with_binding(inst: Instance, extra: int, pick: int) -> None:
    # pod sizes 1, 2, 4, 8 form a chain: counts that pass the packing rows always bind, and no others
    view = build_view(inst)
    drafts = [d for d in greedy_counts(view).drafts if d.units > 0]
    assert fits(view, drafts)
    cells = [(i, key) for i, d in enumerate(drafts) for key in sorted(d.counts)]
    if not cells:
        return
    i, key = cells[pick % len(cells)]
    grown = [GroupDraft(d.service, d.group, d.new, d.domain, d.units, Counter(d.counts)) for d in drafts]
    grown[i].counts[key] += extra  # more pods of one role in one cell (units aside: only the capacity counts)
    try:
        bind(view, sorted(grown, key=lambda d: (d.service, d.group)))
        binds = True
    except BindingError:
        binds = False
    assert fits(view, grown) == binds


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=small_instances())
def test_a_hint_from_counts_satisfies_every_capacity_row(inst: Instance) -> None:
    view = build_view(inst)
    counts = greedy_counts(view)
    pm = build(view, [r for r in view.requests if r.delta != 0])
    values = count_values(pm, counts.drafts)
    assert all(row.slack(values) >= 0 for row in pm.rows)


def test_the_budget_hands_out_parts_and_spends_in_its_whole() -> None:
    now = time.perf_counter()
    whole = Budget(now + 10.0, 1.0, True)
    part = whole.part(0.25)  # deterministic: a share of the deterministic time, the same wall deadline
    assert (part.deadline, part.dtime) == (whole.deadline, 0.25)
    split = whole.split(0.5, now=now)  # a share of both
    assert split.deadline == pytest.approx(now + 5.0)
    assert split.dtime == 0.5
    wall = whole.wall_share(0.95, now=now)  # a share of the wall time left only
    assert wall.deadline == pytest.approx(now + 9.5)
    assert wall.dtime == 1.0
    part.spend(0.1)
    assert part.dtime == pytest.approx(0.15)
    assert whole.dtime == pytest.approx(0.9)  # what a part spends, the whole spends
    portfolio = Budget(now + 10.0)
    assert portfolio.dtime == math.inf
    assert not portfolio.deterministic
    assert Budget(now - 1.0).left() == 0.0


def test_the_planned_mip_work_follows_the_limit_is_shared_and_spent_like_deterministic_time() -> None:
    now = time.perf_counter()
    whole = Budget.new(now + 10.0, 10.0, deterministic=True)
    assert whole.work == pytest.approx(MIP_WORK_PER_SECOND * 10.0)  # from time_limit alone, not the clock
    assert whole.dtime == pytest.approx(DTIME_PER_SECOND * 10.0)
    assert whole.split(0.5, now=now).work == pytest.approx(whole.work / 2)
    assert whole.part(0.25).work == pytest.approx(whole.work / 4)
    mip = whole.wall_share(0.9, now=now)  # a MIP's stage: its share of the wall and of the planned work
    assert mip.work == pytest.approx(0.9 * whole.work)
    mip.spend_work(1.0)
    assert whole.work == pytest.approx(MIP_WORK_PER_SECOND * 10.0 - 1.0)  # what a part spends, the whole spends
    portfolio = Budget.new(now + 10.0, 10.0, deterministic=False)  # the wall decides: no planned work
    assert portfolio.work == math.inf
    portfolio.spend_work(1.0)
    assert portfolio.work == math.inf


def test_cpsat_binds_nothing_itself_where_pod_sizes_form_a_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    # medium seed 0 at 2 s: the full model from the top class first; solve() binds the greedy's counts and
    # the backend's, once each, and CP-SAT binds nothing in between
    calls: list[str] = []
    real = binding.bind

    def counted(view: object, drafts: list[GroupDraft]) -> object:
        calls.append("bind")
        return real(view, drafts)  # type: ignore[arg-type]

    for module in (plans, solver, blocks, neighbourhood):
        if hasattr(module, "bind"):
            monkeypatch.setattr(module, "bind", counted)
    result = solve(generate_instance("medium", 0), "cpsat", time_limit=2.0)
    assert result.status == "optimal"
    assert calls == []
