"""The CP-SAT backend: top class first, then the staged full model when the budget allows it.

1. **Top class first.** The first lexicographic stage (GPUs served of the top priority class) is
   solved on a model of the top class alone: exact, since lower classes can always place nothing,
   and at production size a model a fifth of the full one, proven early.
2. **Completion.** When that serves more than the greedy's counts, the top class's counts are joined
   to the greedy's counts of the other classes, kept as they are where they fit together (or, if not,
   the other classes are re-placed by the greedy on what the top class leaves); the result is the new
   incumbent.
3. **Full model or class blocks.** When ``time_limit`` covers it (:data:`FULL_MODEL_SECONDS_PER_VAR`,
   a rule on the model's estimated size, so the path taken does not depend on machine load), the
   full model is built and solved in stages from the incumbent (:mod:`.stages`); otherwise the plan
   is improved one priority class at a time (:mod:`.blocks`), the top class first.

Scale-in and scale-out share no constraint, so they are separate models (the lexicographic optimum
of a sum of independent parts is the sum of their optima).

Every path works on counts (:class:`~hetero_opt.placement.binding.Counts`) and returns them;
``solve()`` binds them once. Node binding is left where it is needed (:mod:`.plans`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from importlib.metadata import version as version_of
from typing import Literal

from ortools.sat.python import cp_model

from hetero_opt.instance import Instance
from hetero_opt.placement.backend import BackendOutput, Budget, Hint, SolveOptions
from hetero_opt.placement.binding import BindingError, Counts, bind, bind_plan
from hetero_opt.placement.cp_solver import new_cp_solver
from hetero_opt.placement.cpsat.blocks import improve_by_class
from hetero_opt.placement.cpsat.model import HintError, add_hint, build
from hetero_opt.placement.cpsat.neighbourhood import Guided, lp_guided
from hetero_opt.placement.cpsat.objective import Linear
from hetero_opt.placement.cpsat.plans import (
    Ranking,
    canonical,
    count_values,
    estimated_vars,
    extract,
    fits,
    model_variables,
    reasons_of,
    residual_view,
    restrict,
    trivial_bounds,
)
from hetero_opt.placement.cpsat.stages import (
    SCALE_IN_SHARE,
    ModelInvalidError,
    Staged,
    StagedSolver,
    StageFailed,
    StageResult,
    has_time_to_build,
    within_plan,
)
from hetero_opt.placement.greedy import greedy_counts
from hetero_opt.placement.objective import Score, modelled, whole_free_bound
from hetero_opt.placement.plan import GroupChange
from hetero_opt.topology import RequestView, TopologyView, build_view

# The full model is built only when time_limit >= this * its estimated variable count. Below that,
# class blocks do better: at production size (29k variables) the full model with a 5-10 s limit
# spends its budget on presolve and ends with a worse premium than the blocks reach in 2 s.
FULL_MODEL_SECONDS_PER_VAR = 5e-4


@dataclass
class TopResult:
    """The top class's served stage, solved on a model of the top class alone."""

    priority: int
    served: int  # GPUs of the top class its solution serves
    proven: bool
    bound: float | None
    termination: str
    counts: Counts = field(default_factory=Counts)


def top_class_first(
    view: TopologyView,
    part: list[RequestView],
    hint: Counts,
    options: SolveOptions,
    budget: Budget,
    nodes: list[GroupChange] | None = None,
) -> tuple[TopResult | None, dict[str, float]]:
    """Solve the served stage of the top priority class on a model of that class alone.

    None when ``hint`` already serves the whole top class. ``nodes``: the hint bound, if the caller has
    it (only a model with node rows reads it).
    """
    classes = sorted({r.service.priority for r in part}, reverse=True)
    start = time.perf_counter()
    pm = build(view, [r for r in part if r.service.priority == classes[0]])
    values = count_values(pm, hint.drafts, nodes)
    served = pm.served.get(classes[0], Linear())
    if not served.vars or served.value(values) == pm.max_served[classes[0]]:
        return None, {}
    solver = StagedSolver(pm, values, options, budget)
    res = solver.served_stage(0)
    drafts, unserved = extract(pm, res.values)
    stats = {"vars": float(len(pm.variables)), "s": time.perf_counter() - start, **solver.out.stats}
    top = TopResult(classes[0], served.value(res.values), res.proven, res.bound, solver.out.termination[-1])
    top.counts = Counts(drafts, reasons_of(unserved))
    return top, stats


def complete(view: TopologyView, top: TopResult, part: list[RequestView], hint: Counts) -> Counts:
    """The top class's counts plus the other classes' counts, as close to ``hint`` as fits.

    The hint's counts of the other classes are kept as they are when they and the top class's fit
    together (:func:`~.plans.fits`: the packing rows, no node named, where pod sizes form a chain);
    only if not are the other classes re-placed by the greedy on what the top class leaves free (the
    greedy allocates nodes, so the top class's counts are bound for it: the one binding left here).

    Raises
    ------
    BindingError
        If the top class's counts cannot be bound to nodes (pod sizes outside a divisibility chain).
    """
    others = [r for r in part if r.service.priority != top.priority]
    kept = restrict(hint, others)
    if fits(view, [*top.counts.drafts, *kept.drafts]):
        return Counts(canonical([*top.counts.drafts, *kept.drafts]), {**kept.reasons, **top.counts.reasons})
    top_changes = bind(view, canonical(top.counts.drafts))
    rest = greedy_counts(residual_view(view, top_changes), others)
    return Counts(canonical([*top.counts.drafts, *rest.drafts]), {**rest.reasons, **top.counts.reasons})


@dataclass
class PartResult:
    """One part (scale-in or scale-out) solved: counts per group change (with why a request is not served
    in full), stage record."""

    counts: Counts
    staged: Staged
    has_ins: bool


Strategy = Literal["auto", "full", "blocks", "lp"]


class CpSatBackend:
    """OR-Tools CP-SAT placement backend (top class first, staged lexicographic objective)."""

    name = "cpsat"

    def __init__(self, strategy: Strategy = "auto") -> None:
        """``strategy``: ``full`` always builds the full model, ``blocks`` always takes the class-block
        path, ``lp`` returns the LP-guided plan (:mod:`.neighbourhood`) when the LP solves in time,
        ``auto`` starts from the LP-guided plan and then takes the full model where ``time_limit``
        covers its estimated size, else the class blocks unless the LP plan already meets its bounds."""
        self.strategy = strategy

    def available(self) -> bool:
        """CP-SAT ships with the ``ortools`` wheel, a hard dependency."""
        return True

    def solve(self, view: TopologyView, greedy: Hint, options: SolveOptions) -> BackendOutput:
        """Solve scale-in, then scale-out, from the greedy's counts; return counts, or none on failure.

        Every path works on counts and returns them as they are; ``solve()`` binds them once.
        """
        start = time.perf_counter()
        budget = Budget.of(options)
        version = f"ortools {version_of('ortools')}"
        reqs = [r for r in view.requests if r.delta != 0]
        if options.export_model:
            pm_all = build(view, reqs)
            with contextlib.suppress(HintError):
                add_hint(pm_all, count_values(pm_all, greedy.counts.drafts, greedy.plan.changes))
            pm_all.model.export_to_file(options.export_model + ".pb.txt")
        ins, outs = [r for r in reqs if r.delta < 0], [r for r in reqs if r.delta > 0]
        results: list[PartResult] = []
        stats: dict[str, float] = {}
        try:
            if ins:
                part_budget = budget.part(SCALE_IN_SHARE if outs else 1.0)
                results.append(_solve_part(view, ins, greedy, options, part_budget, stats, "in", self.strategy))
            if outs:
                results.append(_solve_part(view, outs, greedy, options, budget, stats, "out", self.strategy))
        except (HintError, StageFailed, BindingError) as exc:
            return BackendOutput(None, "fallback", type(exc).__name__, str(exc), None, version, stats)
        termination = " ".join(t for r in results for t in r.staged.termination)
        reasons = {s: why for r in results for s, why in r.counts.reasons.items()}
        counts = Counts([d for r in results for d in r.counts.drafts], reasons)
        status = "optimal" if all(r.staged.proven for r in results) else "feasible"
        stats["wall_s"] = time.perf_counter() - start
        return BackendOutput(counts, status, termination, "", _bound(view, results), version, stats)


def _solve_part(
    view: TopologyView,
    part: list[RequestView],
    greedy: Hint,
    options: SolveOptions,
    budget: Budget,
    stats: dict[str, float],
    tag: str,
    strategy: Strategy = "auto",
) -> PartResult:
    """Scale-out: the LP-guided plan first (:mod:`.neighbourhood`), kept with its bounds when it meets
    them and the full model does not fit; then the staged full model or the class blocks from it."""
    start = time.perf_counter()
    est = estimated_vars(view, part)
    stats[f"{tag}_estimated_vars"] = float(est)
    fits_limit = options.time_limit >= FULL_MODEL_SECONDS_PER_VAR * est  # a rule on size, not on the clock
    lp_staged: Staged | None = None
    hint = restrict(greedy.counts, part)
    nodes: list[GroupChange] | None = greedy.plan.changes  # the same counts bound (by solve(), once)
    guided: Guided | None = None
    if tag == "out" and strategy in ("auto", "lp"):
        guided = _guided(view, part, options, budget, stats, hint)
        if guided is not None:
            lp_staged = _lp_bounds(part, guided)
            # Where the full model fits the limit it proves every term: the LP plan is only its hint.
            if strategy == "lp" or (not fits_limit and _meets(view, part, guided.counts, lp_staged)):
                return PartResult(guided.counts, lp_staged, False)  # its counts as they are
            if Ranking(view).compare(guided.counts, hint) < 0:
                hint, nodes = guided.counts, None
    # the hint's top class at the LP path's proven bound: no CP-SAT model of the top class can serve more (its
    # completion could still better a lower term; where it ran depended on the wall clock)
    settled = lp_staged is not None and _top_wanted(part) - _top_served(part, hint) == lp_staged.unserved_lb.get(
        max(r.service.priority for r in part), -1
    )
    room = guided.room if guided is not None else None
    result = _solve_existing(
        view, part, hint, nodes, options, budget, stats, tag, strategy, start, est, fits_limit, settled, room
    )
    if lp_staged is not None:
        result.staged = _tighter(result.staged, lp_staged)
    return result


#: The limit of the short look (:func:`_guided`), and the limit from which a call takes one.
SHORT_LOOK_S = 1.0
SHORT_LOOK_FROM_S = 5.0


def _guided(
    view: TopologyView,
    part: list[RequestView],
    options: SolveOptions,
    budget: Budget,
    stats: dict[str, float],
    hint: Counts,
) -> Guided | None:
    """The LP-guided counts of a scale-out part, or None (LP not solved in time).

    From :data:`SHORT_LOOK_FROM_S`, a short look: the path once more as a call of :data:`SHORT_LOOK_S` would
    run it, on its own budget, after the full path; its counts replace the full path's where they rank better
    (the bounds stay the full path's), and what follows (CP-SAT, the counts its hint) starts from them. The
    path is not monotone in the limit: a short call restricts each request to a few candidate domains, and on
    heavy seeds 6 and 13 that found better plans than the full path at 10 s (the top class of 6 at its proven
    optimum, 612 against 652). The look costs 0.2-0.6 s of wall on heavy production (decision 70). It is not
    in the full path's plan on size, which it follows and does not change; it is skipped where less than
    twice its limit is left on the wall clock (a machine so busy that the plan's margin is gone).
    """
    guided = lp_guided(view, part, options, budget, stats, hint)
    if guided is None:
        return None
    stats.update({f"lp_{k}" if not k.startswith("lp_") else k: v for k, v in guided.stats.items()})
    stats["lp_fixed_requests"] = float(guided.fixed)
    stats["lp_freed_requests"] = float(guided.freed)
    if options.time_limit >= SHORT_LOOK_FROM_S and budget.left() >= 2 * SHORT_LOOK_S:
        start = time.perf_counter()
        short = replace(options, time_limit=SHORT_LOOK_S, budget=None)
        own = Budget.new(start + SHORT_LOOK_S, SHORT_LOOK_S, options.deterministic)
        look = lp_guided(view, part, short, own, {}, hint)
        taken = look is not None and Ranking(view).compare(look.counts, guided.counts) < 0
        stats["lp_short_look_s"] = time.perf_counter() - start
        stats["lp_short_look_taken"] = float(taken)
        if taken and look is not None:
            guided.drafts, guided.unserved = look.drafts, look.unserved
            guided.termination.append("short-look:BETTER")
    return guided


def _lp_bounds(part: list[RequestView], guided: Guided) -> Staged:
    """The relaxation's bounds as a stage record of the part (terms it did not bound stay trivial; all of
    them when the relaxation was restricted to candidate domains)."""
    wanted: dict[int, int] = {}
    for r in part:
        wanted[r.service.priority] = wanted.get(r.service.priority, 0) + r.delta * r.service.gpus_per_unit
    out = guided.outcome
    staged = Staged(values=[], proven=False, termination=["lp", *guided.termination])
    if guided.restricted:
        staged.termination[0] = "lp(restricted)"
        return staged
    staged.unserved_lb = {p: max(0, w - out.served_ub.get(p, w)) for p, w in wanted.items()}
    staged.premium_lb = out.premium_lb or 0
    staged.groups_lb = out.groups_lb or 0
    return staged


def _meets(view: TopologyView, part: list[RequestView], counts: Counts, bounds: Staged) -> bool:
    """True when ``counts`` attain the bounds on served GPUs of every class and on premium cost."""
    placed = counts.units_by_service()
    served: dict[int, int] = {}
    wanted: dict[int, int] = {}
    for r in part:
        p = r.service.priority
        served[p] = served.get(p, 0) + placed.get(r.service.id, 0) * r.service.gpus_per_unit
        wanted[p] = wanted.get(p, 0) + r.delta * r.service.gpus_per_unit
    if any(wanted[p] - served[p] != bounds.unserved_lb.get(p, 0) for p in wanted):
        return False
    return modelled(view, counts.drafts)[1] == bounds.premium_lb


def _tighter(a: Staged, b: Staged) -> Staged:
    """``a`` with the lexicographically larger of the two bounds (both valid, so the larger is too)."""
    classes = sorted(set(a.unserved_lb) | set(b.unserved_lb), reverse=True)

    def key(s: Staged) -> tuple[object, ...]:
        return tuple(s.unserved_lb.get(p, 0) for p in classes), s.premium_lb, s.groups_lb

    best = b if key(b) > key(a) else a
    a.unserved_lb, a.premium_lb, a.groups_lb = dict(best.unserved_lb), best.premium_lb, best.groups_lb
    return a


def _solve_existing(
    view: TopologyView,
    part: list[RequestView],
    hint: Counts,
    nodes: list[GroupChange] | None,
    options: SolveOptions,
    budget: Budget,
    stats: dict[str, float],
    tag: str,
    strategy: Strategy,
    start: float,
    est: int,
    fits: bool,
    settled: bool = False,
    room: float | None = None,
) -> PartResult:
    """The staged full model of ``part`` (``est`` estimated variables) from the counts ``hint`` (bound as
    ``nodes``, if known) when the time limit covers it (``fits``), else the class blocks. ``settled``: the
    hint's top class is at a proven bound (read by the class blocks only; the full model proves every term).
    ``room``: seconds the LP path's plan on size leaves (deterministic mode), which the class blocks keep to."""
    if strategy == "blocks" or (strategy in ("auto", "lp") and not fits):
        return _by_class(view, part, hint, nodes, options, budget, stats, tag, settled, room)
    if not has_time_to_build(budget, est):  # the blocks skip what they cannot build
        return _by_class(view, part, hint, nodes, options, budget, stats, tag, settled, room)
    several = len({r.service.priority for r in part}) > 1
    top, top_stats = top_class_first(view, part, hint, options, budget, nodes) if several else (None, {})
    stats.update({f"{tag}_top_{k}": v for k, v in top_stats.items()})
    incumbent = _improved(view, part, hint, top)
    pm = build(view, part)
    stats[f"{tag}_vars"] = float(len(pm.variables))
    stats[f"{tag}_relaxed_rows"] = float(pm.relaxed_rows)
    stats[f"{tag}_build_s"] = time.perf_counter() - start
    values = count_values(pm, incumbent.drafts, nodes if incumbent is hint else None)
    served = pm.served.get(max(r.service.priority for r in part), Linear())
    first = None if top is None or served.value(values) != top.served else StageResult(values, top.proven, top.bound)
    staged = StagedSolver(pm, values, options, budget).run(first)
    if top is not None:
        staged.termination.insert(0, top.termination)
    stats.update({f"{tag}_{k}": v for k, v in staged.stats.items()})
    drafts, unserved = extract(pm, staged.values)
    return PartResult(Counts(drafts, reasons_of(unserved)), staged, bool(pm.ins))


def _improved(view: TopologyView, part: list[RequestView], incumbent: Counts, top: TopResult | None) -> Counts:
    """``incumbent``, or its completion around ``top``'s placement when that scores better (terms 1-4, then
    whole free nodes as ``solve()`` will bind them).

    Counts outside a divisibility chain of pod sizes may not bind to nodes: then ``incumbent``.
    """
    if top is None:
        return incumbent
    try:
        completed = complete(view, top, part, incumbent)
    except BindingError:
        return incumbent
    return completed if Ranking(view).compare(completed, incumbent) < 0 else incumbent


def _by_class(
    view: TopologyView,
    part: list[RequestView],
    hint: Counts,
    nodes: list[GroupChange] | None,
    options: SolveOptions,
    budget: Budget,
    stats: dict[str, float],
    tag: str,
    settled: bool = False,
    room: float | None = None,
) -> PartResult:
    """Class blocks from the hint; then, if the top class is still short (and not ``settled`` at a proven
    bound), its stage on the whole capacity; both within ``room`` (seconds the plan on size leaves, if any).

    The first block (the top class on what the other classes' placements leave) usually serves
    the whole top class, which proves the first stage at once. Only if it does not is the top
    class's stage solved on the whole capacity (exact; lower classes may then be re-placed).
    """
    blocks = improve_by_class(view, part, hint, options, budget, room)
    stats.update({f"{tag}_{k}": v for k, v in blocks.stats.items()})
    counts, top = blocks.counts, None
    top_class = [r for r in part if r.service.priority == max(q.service.priority for q in part)]
    top_size = estimated_vars(view, top_class)
    mine = within_plan(budget, blocks.room, model_variables(view, top_class, None))  # as for a block
    short = _top_served(part, counts) < _top_wanted(part)
    if not settled and short and mine is not None and has_time_to_build(budget, top_size):
        top, top_stats = top_class_first(view, part, counts, options, mine, nodes if counts is hint else None)
        stats.update({f"{tag}_top_{k}": v for k, v in top_stats.items()})
        counts = _improved(view, part, counts, top)
    staged = Staged(values=[], proven=False, termination=[*blocks.termination, *([top.termination] if top else [])])
    prio = max(r.service.priority for r in part)
    served, wanted = _top_served(part, counts), _top_wanted(part)
    if served == wanted:
        staged.unserved_lb[prio] = 0
    elif top is not None and top.proven:
        staged.unserved_lb[prio] = wanted - top.served
    elif top is not None and top.bound is not None:
        staged.unserved_lb[prio] = max(0, wanted - int(top.bound + 1e-6))
    staged.premium_lb, staged.groups_lb = trivial_bounds(view, part)
    return PartResult(counts, staged, any(r.delta < 0 for r in part))  # its counts as they are


def _top_wanted(part: list[RequestView]) -> int:
    """GPUs the top priority class of ``part`` asks for."""
    prio = max(r.service.priority for r in part)
    return sum(abs(r.delta) * r.service.gpus_per_unit for r in part if r.service.priority == prio)


def _top_served(part: list[RequestView], counts: Counts) -> int:
    """GPUs of the top priority class of ``part`` that ``counts`` serve."""
    prio = max(r.service.priority for r in part)
    placed = counts.units_by_service()
    return sum(abs(placed.get(r.service.id, 0)) * r.service.gpus_per_unit for r in part if r.service.priority == prio)


def _bound(view: TopologyView, results: list[PartResult]) -> Score:
    """Proven lexicographic lower bound on the score: no plan scores better (trivial terms where unproven)."""
    priorities = sorted({r.service.priority for r in view.requests}, reverse=True)
    unserved = [sum(r.staged.unserved_lb.get(p, 0) for r in results) for p in priorities]
    new_groups, emptied = 0, 0
    for r in results:
        if r.has_ins:  # scale-in only: groups = -emptied
            emptied += -r.staged.groups_lb
        else:
            new_groups += r.staged.groups_lb
    return Score(
        priorities=priorities,
        unserved_gpus=unserved,
        premium_cost=sum(r.staged.premium_lb for r in results),
        new_groups=new_groups,
        emptied_groups=emptied,
        whole_free_nodes=whole_free_bound(view, unserved),
    )


def hint_is_feasible(instance: Instance) -> bool:
    """True when the greedy plan, as a complete hint, satisfies every constraint of the full model."""
    view = build_view(instance)
    counts = greedy_counts(view)
    pm = build(view, [r for r in view.requests if r.delta != 0])
    try:
        add_hint(pm, count_values(pm, counts.drafts, bind_plan(view, counts).changes))
    except HintError:
        return False
    solver = new_cp_solver()
    solver.parameters.fix_variables_to_their_hinted_value = True
    solver.parameters.num_workers = 1
    status = solver.solve(pm.model)
    if status == cp_model.MODEL_INVALID:
        raise ModelInvalidError(pm.model.validate())
    return status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
