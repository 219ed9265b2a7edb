"""The second start of phase A (decision 69): where the class-by-class path leaves a class below the top more
short than the greedy, the top class as placed, the lower classes by the greedy around it, then room chunks;
taken only where lexicographically better."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from hetero_opt import build_view, solve, verify
from hetero_opt.generate import generate_instance
from hetero_opt.placement.backend import Budget, SolveOptions
from hetero_opt.placement.binding import GroupDraft
from hetero_opt.placement.cpsat import neighbourhood as nb
from hetero_opt.placement.cpsat.plans import add_load
from hetero_opt.placement.greedy import greedy_counts
from hetero_opt.topology import TopologyView


def _run(view: TopologyView, drafts: list[GroupDraft], planned: float = 0.0) -> nb._Chunks:
    load: dict[tuple[str, str], Counter[int]] = {}
    add_load(view, drafts, load)
    options = SolveOptions(time_limit=2.0)
    budget = Budget.new(time.perf_counter() + 30.0, options.time_limit, True)
    return nb._Chunks(view, options, budget, list(drafts), load, {}, [], {}, planned=planned)


@pytest.fixture(scope="module")
def view() -> TopologyView:
    return build_view(generate_instance("heavy", 4, num_nodes=800, num_services=20, num_requests=10))


def test_a_lower_class_left_short_where_the_greedy_serves_it_is_served_again(view: TopologyView) -> None:
    part = list(view.requests)
    greedy = greedy_counts(view, part)
    drafts = [d for d in greedy.drafts if d.units > 0]
    # drop the drafts of the lowest class's request the greedy places most of: that class is now more short
    # than the greedy's
    low = min(r.service.priority for r in part)
    placed = Counter({d.service: 0 for d in drafts})
    for d in drafts:
        placed[d.service] += d.units
    victim = max((r.service.id for r in part if r.service.priority == low), key=lambda s: (placed[s], s))
    assert placed[victim] > 0
    cut = [d for d in drafts if d.service != victim]
    assert nb._lower_class_worse(view, part, cut, greedy)
    run = _run(view, cut)
    before = nb._draft_key(view, part, run.drafts)
    nb._second_start(run, part, greedy, 0)
    after = nb._draft_key(view, part, run.drafts)
    assert run.termination[-1].endswith(":BETTER")
    assert after < before
    assert after[0] == before[0]  # the top class served as much (a room chunk may move its requests, never cut them)
    assert not nb._lower_class_worse(view, part, run.drafts, greedy)
    assert run.planned > 0.0  # its chunks count in the plan on size, taken or not


def test_no_second_start_where_no_class_is_worse_than_the_greedy(view: TopologyView) -> None:
    part = list(view.requests)
    greedy = greedy_counts(view, part)
    run = _run(view, [d for d in greedy.drafts if d.units > 0], planned=0.25)
    drafts = list(run.drafts)
    nb._second_start(run, part, greedy, 0)
    assert (run.drafts, run.termination, run.planned) == (drafts, [], 0.25)


def test_lp_guided_runs_the_second_start_after_phase_a_where_the_classes_compete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On this instance the class-by-class path leaves class 10 more short than the greedy: phase A's room
    chunks are planned within its whole share of the limit, the second start's beyond it, and the plan (the
    second start not taken here: it serves less of class 50) is verified."""
    shares: list[float] = []
    make_room = nb._make_room

    def recording(run: nb._Chunks, *args: object) -> None:
        shares.append(run.share)
        make_room(run, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(nb, "_make_room", recording)
    inst = generate_instance("heavy", 4, num_nodes=800, num_services=20, num_requests=10)
    result = solve(inst, "cpsat", time_limit=2.0)
    assert shares[0] == nb.PLANNED_SHARE
    assert len(shares) > 1
    assert all(s == pytest.approx(nb.PLANNED_SHARE + nb.SECOND_START_SHARE) for s in shares[1:])
    assert result.stats["lp_second_start_taken"] == 0.0
    assert verify(inst, result.plan) == []
    assert tuple(result.score.unserved_gpus) <= tuple(solve(inst, "greedy").score.unserved_gpus)
