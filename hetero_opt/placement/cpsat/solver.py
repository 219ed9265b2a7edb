"""The CP-SAT backend: top class first, then the staged full model when the budget allows it.

1. **Top class first.** The first lexicographic stage (GPUs served of the top priority class) is
   solved on a model of the top class alone: exact, since lower classes can always place nothing,
   and at production size a model a fifth of the full one, proven early.
2. **Completion.** When that serves more than the greedy plan, the top class is bound around the
   greedy plan's other additions, kept as they are (or, if that does not fit, the other classes are
   re-placed by the greedy on what the top class leaves); the result is the new incumbent.
3. **Full model or class blocks.** When ``time_limit`` covers it (:data:`FULL_MODEL_SECONDS_PER_VAR`,
   a rule on the model's estimated size, so the path taken does not depend on machine load), the
   full model is built and solved in stages from the incumbent (:mod:`.stages`); otherwise the plan
   is improved one priority class at a time (:mod:`.blocks`), the top class first.

Scale-in and scale-out share no constraint, so they are separate models (the lexicographic optimum
of a sum of independent parts is the sum of their optima).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from importlib.metadata import version as version_of
from typing import Literal

from ortools.sat.python import cp_model

from hetero_opt.instance import Instance
from hetero_opt.placement.backend import BackendOutput, Budget, Hint, SolveOptions
from hetero_opt.placement.binding import BindingError, Counts, GroupDraft, bind, drafts_of
from hetero_opt.placement.cpsat.blocks import improve_by_class
from hetero_opt.placement.cpsat.model import HintError, add_hint, build, plan_values
from hetero_opt.placement.cpsat.neighbourhood import Guided, lp_guided
from hetero_opt.placement.cpsat.objective import Linear
from hetero_opt.placement.cpsat.plans import (
    estimated_vars,
    extract,
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
)
from hetero_opt.placement.greedy import greedy_plan
from hetero_opt.placement.objective import Score, score
from hetero_opt.placement.plan import Plan, Unserved
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
    drafts: list[GroupDraft] = field(default_factory=list)
    unserved: list[Unserved] = field(default_factory=list)


def top_class_first(
    view: TopologyView, part: list[RequestView], hint: Plan, options: SolveOptions, budget: Budget
) -> tuple[TopResult | None, dict[str, float]]:
    """Solve the served stage of the top priority class on a model of that class alone.

    None when ``hint`` already serves the whole top class.
    """
    classes = sorted({r.service.priority for r in part}, reverse=True)
    start = time.perf_counter()
    pm = build(view, [r for r in part if r.service.priority == classes[0]])
    values = plan_values(pm, hint)
    served = pm.served.get(classes[0], Linear())
    if not served.vars or served.value(values) == pm.max_served[classes[0]]:
        return None, {}
    solver = StagedSolver(pm, values, options, budget)
    res = solver.served_stage(0)
    drafts, unserved = extract(pm, res.values)
    stats = {"vars": float(len(pm.variables)), "s": time.perf_counter() - start, **solver.out.stats}
    top = TopResult(classes[0], served.value(res.values), res.proven, res.bound, solver.out.termination[-1])
    top.drafts, top.unserved = drafts, unserved
    return top, stats


def complete(view: TopologyView, top: TopResult, part: list[RequestView], hint: Plan) -> Plan:
    """The top class's placement plus the other classes' placement, as close to ``hint`` as fits.

    The top class is bound to nodes around the hint's other additions, which are kept as they are;
    only if that does not fit are the other classes re-placed by the greedy on what the top class
    leaves free.

    Raises
    ------
    BindingError
        If the top class's counts cannot be bound to nodes (pod sizes outside a divisibility chain).
    """
    others = [r for r in part if r.service.priority != top.priority]
    kept = restrict(hint, others)
    with contextlib.suppress(BindingError):
        changes = bind(residual_view(view, kept.changes), top.drafts)
        return Plan(changes=[*changes, *kept.changes], unserved=[*top.unserved, *kept.unserved]).canonical()
    top_changes = bind(view, top.drafts)
    rest = greedy_plan(view.instance, residual_view(view, top_changes), others)
    return Plan(changes=[*top_changes, *rest.changes], unserved=[*top.unserved, *rest.unserved]).canonical()


@dataclass
class PartResult:
    """One part (scale-in or scale-out) solved: counts per group change, unserved, stage record."""

    drafts: list[GroupDraft]
    unserved: list[Unserved]
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
        """Solve scale-in, then scale-out, from the greedy's plan; return counts, or none on failure.

        The solver paths work on the hint bound to nodes (class blocks keep its node picks around what
        they re-place); their plans are returned as counts, which ``solve()`` binds once.
        """
        start = time.perf_counter()
        hint = greedy.plan
        budget = Budget.of(options)
        version = f"ortools {version_of('ortools')}"
        reqs = [r for r in view.requests if r.delta != 0]
        if options.export_model:
            pm_all = build(view, reqs)
            with contextlib.suppress(HintError):
                add_hint(pm_all, plan_values(pm_all, hint))
            pm_all.model.export_to_file(options.export_model + ".pb.txt")
        ins, outs = [r for r in reqs if r.delta < 0], [r for r in reqs if r.delta > 0]
        results: list[PartResult] = []
        stats: dict[str, float] = {}
        try:
            if ins:
                part_budget = budget.part(SCALE_IN_SHARE if outs else 1.0)
                results.append(_solve_part(view, ins, hint, options, part_budget, stats, "in", self.strategy))
            if outs:
                results.append(_solve_part(view, outs, hint, options, budget, stats, "out", self.strategy))
        except (HintError, StageFailed, BindingError) as exc:
            return BackendOutput(None, "fallback", type(exc).__name__, str(exc), None, version, stats)
        termination = " ".join(t for r in results for t in r.staged.termination)
        reasons = {u.service: u.reason for r in results for u in r.unserved}
        counts = Counts([d for r in results for d in r.drafts], reasons)
        status = "optimal" if all(r.staged.proven for r in results) else "feasible"
        stats["wall_s"] = time.perf_counter() - start
        return BackendOutput(counts, status, termination, "", _bound(view, results), version, stats)


def _solve_part(
    view: TopologyView,
    part: list[RequestView],
    hint: Plan,
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
    fits = options.time_limit >= FULL_MODEL_SECONDS_PER_VAR * est  # a rule on size, not on the clock
    lp_staged: Staged | None = None
    if tag == "out" and strategy in ("auto", "lp"):
        guided = _guided(view, part, options, budget, stats, restrict(hint, part))
        if guided is not None:
            lp_staged = _lp_bounds(part, guided)
            guided_score = score(view.instance, guided.plan, view)
            # Where the full model fits the limit it proves every term: the LP plan is only its hint.
            if strategy == "lp" or (not fits and _meets(part, guided.plan, guided_score.premium_cost, lp_staged)):
                return PartResult(guided.drafts, guided.plan.unserved, lp_staged, False)  # its counts as they are
            if guided_score < score(view.instance, restrict(hint, part), view):
                hint = guided.plan
    result = _solve_existing(view, part, hint, options, budget, stats, tag, strategy, start, est, fits)
    if lp_staged is not None:
        result.staged = _tighter(result.staged, lp_staged)
    return result


def _guided(
    view: TopologyView,
    part: list[RequestView],
    options: SolveOptions,
    budget: Budget,
    stats: dict[str, float],
    hint: Plan,
) -> Guided | None:
    """The LP-guided plan of a scale-out part, or None (LP not solved in time, counts that do not bind)."""
    try:
        guided = lp_guided(view, part, options, budget, stats, hint)
    except BindingError:
        stats["lp_binding_failed"] = 1.0
        return None
    if guided is not None:
        stats.update({f"lp_{k}" if not k.startswith("lp_") else k: v for k, v in guided.stats.items()})
        stats["lp_fixed_requests"] = float(guided.fixed)
        stats["lp_freed_requests"] = float(guided.freed)
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


def _meets(part: list[RequestView], plan: Plan, premium: int, bounds: Staged) -> bool:
    """True when ``plan`` (premium cost ``premium``) attains the bounds on served GPUs of every class and
    on premium cost."""
    placed = plan.units_by_service()
    served: dict[int, int] = {}
    wanted: dict[int, int] = {}
    for r in part:
        p = r.service.priority
        served[p] = served.get(p, 0) + placed.get(r.service.id, 0) * r.service.gpus_per_unit
        wanted[p] = wanted.get(p, 0) + r.delta * r.service.gpus_per_unit
    if any(wanted[p] - served[p] != bounds.unserved_lb.get(p, 0) for p in wanted):
        return False
    return premium == bounds.premium_lb


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
    hint: Plan,
    options: SolveOptions,
    budget: Budget,
    stats: dict[str, float],
    tag: str,
    strategy: Strategy,
    start: float,
    est: int,
    fits: bool,
) -> PartResult:
    """The staged full model of ``part`` (``est`` estimated variables) when the time limit covers it
    (``fits``), else the class blocks."""
    if strategy == "blocks" or (strategy in ("auto", "lp") and not fits):
        return _by_class(view, part, hint, options, budget, stats, tag)
    if not has_time_to_build(budget, est):
        return _by_class(view, part, hint, options, budget, stats, tag)  # it skips what it cannot build
    several = len({r.service.priority for r in part}) > 1
    top, top_stats = top_class_first(view, part, hint, options, budget) if several else (None, {})
    stats.update({f"{tag}_top_{k}": v for k, v in top_stats.items()})
    incumbent = _improved(view, part, restrict(hint, part), top)
    pm = build(view, part)
    stats[f"{tag}_vars"] = float(len(pm.variables))
    stats[f"{tag}_relaxed_rows"] = float(pm.relaxed_rows)
    stats[f"{tag}_build_s"] = time.perf_counter() - start
    values = plan_values(pm, incumbent)
    served = pm.served.get(max(r.service.priority for r in part), Linear())
    first = None if top is None or served.value(values) != top.served else StageResult(values, top.proven, top.bound)
    staged = StagedSolver(pm, values, options, budget).run(first)
    if top is not None:
        staged.termination.insert(0, top.termination)
    stats.update({f"{tag}_{k}": v for k, v in staged.stats.items()})
    drafts, unserved = extract(pm, staged.values)
    return PartResult(drafts, unserved, staged, bool(pm.ins))


def _improved(view: TopologyView, part: list[RequestView], incumbent: Plan, top: TopResult | None) -> Plan:
    """``incumbent``, or its completion around ``top``'s placement when that scores better.

    Counts outside a divisibility chain of pod sizes may not bind to nodes: then ``incumbent``.
    """
    if top is None:
        return incumbent
    try:
        completed = complete(view, top, part, incumbent)
    except BindingError:
        return incumbent
    return completed if score(view.instance, completed, view) < score(view.instance, incumbent, view) else incumbent


def _by_class(
    view: TopologyView,
    part: list[RequestView],
    hint: Plan,
    options: SolveOptions,
    budget: Budget,
    stats: dict[str, float],
    tag: str,
) -> PartResult:
    """Class blocks from the hint; then, if the top class is still short, its stage on the whole capacity.

    The first block (the top class on what the other classes' placements leave) usually serves
    the whole top class, which proves the first stage at once. Only if it does not is the top
    class's stage solved on the whole capacity (exact; lower classes may then be re-placed).
    """
    blocks = improve_by_class(view, part, restrict(hint, part), options, budget)
    stats.update({f"{tag}_{k}": v for k, v in blocks.stats.items()})
    plan, top = blocks.plan, None
    top_size = estimated_vars(view, [r for r in part if r.service.priority == max(q.service.priority for q in part)])
    if _top_served(part, plan) < _top_wanted(part) and has_time_to_build(budget, top_size):
        top, top_stats = top_class_first(view, part, plan, options, budget)
        stats.update({f"{tag}_top_{k}": v for k, v in top_stats.items()})
        plan = _improved(view, part, plan, top)
    staged = Staged(values=[], proven=False, termination=[*blocks.termination, *([top.termination] if top else [])])
    prio = max(r.service.priority for r in part)
    served, wanted = _top_served(part, plan), _top_wanted(part)
    if served == wanted:
        staged.unserved_lb[prio] = 0
    elif top is not None and top.proven:
        staged.unserved_lb[prio] = wanted - top.served
    elif top is not None and top.bound is not None:
        staged.unserved_lb[prio] = max(0, wanted - int(top.bound + 1e-6))
    staged.premium_lb, staged.groups_lb = trivial_bounds(view, part)
    return PartResult(drafts_of(view, plan.changes), plan.unserved, staged, any(r.delta < 0 for r in part))


def _top_wanted(part: list[RequestView]) -> int:
    """GPUs the top priority class of ``part`` asks for."""
    prio = max(r.service.priority for r in part)
    return sum(abs(r.delta) * r.service.gpus_per_unit for r in part if r.service.priority == prio)


def _top_served(part: list[RequestView], plan: Plan) -> int:
    """GPUs of the top priority class of ``part`` that ``plan`` serves."""
    prio = max(r.service.priority for r in part)
    placed = plan.units_by_service()
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
        whole_free_nodes=sum(1 for n in view.instance.nodes if n.gpus_free == n.gpus_total),
    )


def hint_is_feasible(instance: Instance) -> bool:
    """True when the greedy plan, as a complete hint, satisfies every constraint of the full model."""
    view = build_view(instance)
    hint = greedy_plan(instance, view)
    pm = build(view, [r for r in view.requests if r.delta != 0])
    try:
        add_hint(pm, plan_values(pm, hint))
    except HintError:
        return False
    solver = cp_model.CpSolver()
    solver.parameters.fix_variables_to_their_hinted_value = True
    solver.parameters.num_workers = 1
    status = solver.solve(pm.model)
    if status == cp_model.MODEL_INVALID:
        raise ModelInvalidError(pm.model.validate())
    return status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
