"""Staged lexicographic solve of the CP-SAT model, extraction into group drafts, binding.

Stages on one model, each hinted with the previous (complete) solution, the first with the greedy
plan: (1) GPUs served per priority class, highest first (several classes in one stage when exact
weights stay small; a class the incumbent already serves in full is fixed without solving), (2)
premium cost, (3) ``(E+1) * new groups - emptied groups``. A stage proven optimal is fixed with
``==``, otherwise with ``<=``/``>=`` the incumbent, so every stage is monotone. Scale-in and
scale-out share no constraint, so they are separate models (the lexicographic optimum of a sum of
independent parts is the sum of their optima).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from importlib.metadata import version as version_of
from typing import Literal

from ortools.sat.python import cp_model

from hetero_opt.instance import Instance
from hetero_opt.placement.backend import BackendOutput, SolveOptions
from hetero_opt.placement.binding import BindingError, GroupDraft, bind
from hetero_opt.placement.cpsat.model import HintError, PlacementModel, add_hint, build, plan_values
from hetero_opt.placement.cpsat.objective import Linear, class_weights
from hetero_opt.placement.greedy import greedy_plan
from hetero_opt.placement.objective import Score, score
from hetero_opt.placement.plan import Plan, Unserved
from hetero_opt.topology import TopologyView, build_view

BIG_MODEL_VARS = 2_000  # above this, skip symmetry detection and probing in presolve
DTIME_PER_SECOND = 1.0  # deterministic-time budget per second of wall-clock budget


class ModelInvalidError(Exception):
    """CP-SAT rejected the model: a bug in hetero_opt (deliberately not a RuntimeError)."""


class StageFailed(Exception):
    """A stage proved the model infeasible although the incumbent satisfies it."""


@dataclass
class Staged:
    """Result of the staged solve of one model."""

    values: list[int]
    proven: bool = True
    termination: list[str] = field(default_factory=list)
    unserved_lb: dict[int, int] = field(default_factory=dict)
    premium_lb: int | None = None
    groups_lb: int | None = None
    stats: dict[str, float] = field(default_factory=dict)


def _parameters(
    solver: cp_model.CpSolver, pm: PlacementModel, options: SolveOptions, budget: float, deterministic: bool
) -> None:
    """Seed, workers, budget; deterministic (interleaved) search or the faster parallel portfolio.

    Big models get a light presolve (no symmetry, no probing, one iteration) when deterministic, and
    none otherwise: at 18k variables full presolve alone takes about 0.6 s of a 2 s budget.
    """
    p = solver.parameters
    p.num_workers = max(1, options.num_workers)
    p.random_seed = options.seed
    p.max_time_in_seconds = max(budget, 0.01)
    p.log_search_progress = options.log
    big = len(pm.variables) > BIG_MODEL_VARS
    if deterministic:
        p.interleave_search = True
        p.max_deterministic_time = max(budget, 0.01) * DTIME_PER_SECOND
        if big:
            p.symmetry_level = 0
            p.cp_model_probing_level = 0
            p.max_presolve_iterations = 1
    elif big:
        p.cp_model_presolve = False


class StagedSolver:
    """Runs the stages of one :class:`PlacementModel` against a wall-clock deadline."""

    def __init__(
        self, pm: PlacementModel, values: list[int], options: SolveOptions, deadline: float, deterministic: bool
    ) -> None:
        self.pm = pm
        self.deterministic = deterministic
        self.options = options
        self.deadline = deadline
        self.out = Staged(values=values)

    def _stage(self, name: str, lin: Linear, sense: Literal["min", "max"], share: float) -> tuple[bool, float | None]:
        """Optimise ``lin`` from the incumbent; fix it; return (proven optimal, best bound)."""
        pm, out = self.pm, self.out
        incumbent = lin.value(out.values)
        if not lin.vars:
            return True, float(incumbent)
        add_hint(pm, out.values)
        if sense == "min":
            pm.model.minimize(lin.expr())
        else:
            pm.model.maximize(lin.expr())
        budget = max(0.0, self.deadline - time.perf_counter()) * share
        solver = cp_model.CpSolver()
        _parameters(solver, pm, self.options, budget, self.deterministic)
        status = solver.solve(pm.model)
        out.stats[f"{name}_wall_s"] = out.stats.get(f"{name}_wall_s", 0.0) + solver.wall_time
        out.termination.append(f"{name}:{solver.status_name(status)}")
        if status == cp_model.MODEL_INVALID:
            raise ModelInvalidError(pm.model.validate())
        if status == cp_model.INFEASIBLE:
            raise StageFailed(f"stage {name} is infeasible although the incumbent is feasible")
        proven = status == cp_model.OPTIMAL
        bound: float | None = solver.best_objective_bound if status != cp_model.UNKNOWN else None
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            values = list(solver.response_proto.solution)
            better = lin.value(values) <= incumbent if sense == "min" else lin.value(values) >= incumbent
            if better:
                out.values = values
        value = lin.value(out.values)
        if proven:
            pm.model.add(lin.expr() == value)
        elif sense == "min":
            pm.model.add(lin.expr() <= value)
        else:
            pm.model.add(lin.expr() >= value)
        out.proven = out.proven and proven
        return proven, bound

    def run(self) -> Staged:
        """Stages 1 to 3; returns the final assignment and proven bounds."""
        pm, out = self.pm, self.out
        classes = list(pm.max_served)
        i = 0
        while i < len(classes):
            prio = classes[i]
            lin = pm.served.get(prio, Linear())
            top = pm.max_served[prio]
            if lin.value(out.values) == top or not lin.vars:
                pm.model.add(lin.expr() == lin.value(out.values))
                out.unserved_lb[prio] = top - lin.value(out.values)
                i += 1
                continue
            j = i + 1
            while j < len(classes) and class_weights([pm.max_served[c] for c in classes[i : j + 1]]) is not None:
                j += 1
            chunk = classes[i:j]
            weights = class_weights([pm.max_served[c] for c in chunk]) or [1]
            total = Linear()
            for c, w in zip(chunk, weights, strict=True):
                total = total.plus(pm.served.get(c, Linear()).scaled(w))
            proven, bound = self._stage(f"served{prio}", total, "max", 0.4)
            for c in chunk:
                served = pm.served.get(c, Linear()).value(out.values)
                if proven:
                    pm.model.add(pm.served.get(c, Linear()).expr() == served)
                    out.unserved_lb[c] = pm.max_served[c] - served
                elif len(chunk) == 1 and bound is not None:
                    out.unserved_lb[c] = max(0, top - int(bound + 1e-6))
                else:
                    out.unserved_lb[c] = 0
            i = j
        _, bound = self._stage("premium", pm.premium, "min", 0.6)
        out.premium_lb = None if bound is None else math.ceil(bound - 1e-6)
        _, bound = self._stage("groups", pm.groups, "min", 0.9)
        out.groups_lb = None if bound is None else math.ceil(bound - 1e-6)
        return out


def extract(pm: PlacementModel, values: list[int]) -> tuple[list[GroupDraft], list[Unserved]]:
    """Group drafts (non-zero slots) and unserved records from a complete assignment."""
    drafts: list[GroupDraft] = []
    placed: dict[str, int] = {r.service.id: 0 for r in pm.requests}
    for o in pm.outs:
        units = values[o.units.index]
        if units > 0:
            d = GroupDraft(o.request.service.id, o.group, o.new, o.domain, units)
            for key, var in sorted(o.pods.items()):
                if values[var.index]:
                    d.counts[key] = values[var.index]
            drafts.append(d)
            placed[o.request.service.id] += units
    for s in pm.ins:
        units = values[s.units.index]
        if units > 0:
            d = GroupDraft(s.request.service.id, s.group, False, s.domain, -units)
            for key, var in sorted(s.pods.items()):
                if values[var.index]:
                    d.counts[key] = values[var.index]
            drafts.append(d)
            placed[s.request.service.id] -= units
    unserved = []
    for r in pm.requests:
        got = placed[r.service.id]
        if got != r.delta:
            if r.delta > 0:
                why = f"CP-SAT: no capacity for {r.delta - got} more units within {r.service.affinity} affinity"
            else:
                why = f"CP-SAT: groups hold only {-got} removable whole units"
            unserved.append(Unserved(service=r.service.id, wanted_units=r.delta, placed_units=got, reason=why))
    return drafts, unserved


class CpSatBackend:
    """OR-Tools CP-SAT placement backend (staged lexicographic objective, greedy hint)."""

    name = "cpsat"

    def __init__(self, deterministic: bool = True) -> None:
        """``deterministic``: same instance and seed give the same plan (interleaved search,
        deterministic-time budget); False runs the faster non-deterministic parallel portfolio."""
        self.deterministic = deterministic

    def available(self) -> bool:
        """CP-SAT ships with the ``ortools`` wheel, a hard dependency."""
        return True

    def solve(self, view: TopologyView, hint: Plan, options: SolveOptions) -> BackendOutput:
        """Solve scale-in, then scale-out, from ``hint``; return the bound plan or the hint on failure."""
        start = time.perf_counter()
        version = f"ortools {version_of('ortools')}"
        reqs = [r for r in view.requests if r.delta != 0]
        if options.export_model:
            pm_all = build(view, reqs)
            with contextlib.suppress(HintError):
                add_hint(pm_all, plan_values(pm_all, hint))
            pm_all.model.export_to_file(options.export_model + ".pb.txt")
        drafts: list[GroupDraft] = []
        unserved: list[Unserved] = []
        parts = [
            ("in", [r for r in reqs if r.delta < 0], start + 0.25 * options.time_limit),
            ("out", [r for r in reqs if r.delta > 0], start + options.time_limit),
        ]
        runs: list[Staged] = []
        stats: dict[str, float] = {}
        for tag, part, deadline in parts:
            if not part:
                continue
            pm = build(view, part)
            stats[f"{tag}_vars"] = float(len(pm.variables))
            stats[f"{tag}_relaxed_rows"] = float(pm.relaxed_rows)
            stats[f"{tag}_build_s"] = time.perf_counter() - start
            try:
                staged = StagedSolver(pm, plan_values(pm, hint), options, deadline, self.deterministic).run()
            except (HintError, StageFailed) as exc:
                return BackendOutput(hint, "fallback", type(exc).__name__, str(exc), None, version, stats)
            stats.update({f"{tag}_{k}": v for k, v in staged.stats.items()})
            runs.append(staged)
            d, u = extract(pm, staged.values)
            drafts += d
            unserved += u
        termination = " ".join(t for r in runs for t in r.termination)
        try:
            changes = bind(view, sorted(drafts, key=lambda d: (d.service, d.group)))
        except BindingError as exc:
            return BackendOutput(hint, "fallback", termination, f"binding failed: {exc}", None, version, stats)
        plan = Plan(changes=changes, unserved=unserved).canonical()
        status = "optimal" if all(r.proven for r in runs) else "feasible"
        if score(view.instance, hint, view) < score(view.instance, plan, view):
            # Ties on every modelled term can still lose on whole free nodes (binding only): keep the hint.
            plan = hint
            stats["hint_kept"] = 1.0
        stats["wall_s"] = time.perf_counter() - start
        return BackendOutput(plan, status, termination, "", _bound(view, runs), version, stats)


def _bound(view: TopologyView, runs: list[Staged]) -> Score | None:
    """Best proven bound on the score terms, or None if some stage proved no bound."""
    if any(r.premium_lb is None or r.groups_lb is None for r in runs):
        return None
    priorities = sorted({r.service.priority for r in view.requests}, reverse=True)
    unserved = [sum(r.unserved_lb.get(p, 0) for r in runs) for p in priorities]
    new_groups, emptied = 0, 0
    for r in runs:
        lb = r.groups_lb or 0
        if lb >= 0:
            new_groups += lb
        else:
            emptied += -lb
    return Score(
        priorities=priorities,
        unserved_gpus=unserved,
        premium_cost=sum(r.premium_lb or 0 for r in runs),
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
