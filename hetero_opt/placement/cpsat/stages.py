"""Staged lexicographic solve of one CP-SAT placement model within a time budget.

Stages on one model, each hinted with the incumbent (a complete feasible assignment): (1) GPUs
served, one priority class at a time from the highest, (2) premium cost, (3) ``(E+1) * new groups
- emptied groups``. A stage proven optimal is fixed with ``==``, otherwise with ``<=``/``>=`` the
incumbent, so every stage is monotone and every stage bound is a valid lexicographic bound.

The served stage of class *c* runs with every lower class silent (placing nothing). That is exact:
a lower class can always place nothing, so it cannot change how much of *c* fits. The stage's
solution, merged with the incumbent's lower classes (repaired by emptying lower slots of any
capacity row the merge overfills), is the next incumbent.

Budget: every stage takes a part of the call's one :class:`~hetero_opt.placement.backend.Budget`
(set by ``solve()``); in deterministic mode (the default) it gets a share of the deterministic time,
derived from ``time_limit`` alone, so the same instance and seed give the same plan; the wall-clock
deadline is a safety net that also caps every stage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

from ortools.sat.python import cp_model

from hetero_opt.placement.backend import MIN_STAGE_DTIME, Budget, SolveOptions
from hetero_opt.placement.cp_solver import new_cp_solver
from hetero_opt.placement.cpsat.model import PlacementModel, add_hint, set_objective, set_quiet, with_quiet
from hetero_opt.placement.cpsat.objective import Linear

BIG_MODEL_VARS = 2_000  # above this, skip symmetry detection and probing in presolve
# A stage whose deterministic budget is below this per variable cannot even load its hint at this
# size (it ends UNKNOWN): skip it; and one with less wall time left than STAGE_SECONDS_PER_VAR.
STAGE_DTIME_PER_VAR = 1e-5
STAGE_SECONDS_PER_VAR = 1e-5  # a stage with less wall time left than this per variable is skipped (presolve)
SCALE_IN_SHARE = 0.1  # of the budget for the (small) scale-in model
SERVED_SHARE, PREMIUM_SHARE, GROUPS_SHARE = 0.7, 0.8, 1.0  # of what is left when the stage starts


# Building a CP-SAT model in Python takes about this per variable here (production's 5.7k-variable
# top-class model: 0.15 s quiet, up to 0.4 s under load): a model is not built with less wall time left.
BUILD_SECONDS_PER_VAR = 5e-5


# CP-SAT's deterministic time per wall second as the plan on size counts it (the LP path's chunks and the
# class blocks after it; cpsat.neighbourhood has the measurements).
PLANNED_DTIME_PER_SECOND = 0.08


def used_dtime(stats: dict[str, float]) -> float:
    """The deterministic time a staged solve's CP-SAT used, from its ``stats`` (each stage's ``*_dtime``;
    stage floors included, which the budget it was given may not show)."""
    return sum(v for k, v in stats.items() if k.endswith("_dtime"))


def first_stage_dtime(num_vars: int, share: float = SERVED_SHARE) -> float:
    """The least deterministic time with which a staged solve of a model of ``num_vars`` variables runs its first
    stage, which takes ``share`` of it (:class:`StagedSolver`'s rule: at least :data:`MIN_STAGE_DTIME`, and
    :data:`STAGE_DTIME_PER_VAR` per variable; a hair over, so that the share, rounded, still reaches it). A model
    planned with less is built only to skip its stages (heavy seed 7 built seven chunks that way)."""
    return max(MIN_STAGE_DTIME, STAGE_DTIME_PER_VAR * num_vars / share * (1 + 1e-9))


def within_plan(budget: Budget, room: float | None, num_vars: int) -> Budget | None:
    """``budget`` for a model of ``num_vars`` variables (:func:`~hetero_opt.placement.cpsat.plans.model_variables`)
    built within ``room`` seconds of the plan on size (None: no plan, ``budget`` as it is), its deterministic time
    capped at what the plan leaves after the build; None where the plan does not fit the build and
    :func:`first_stage_dtime`."""
    if room is None:
        return budget
    left = room - BUILD_SECONDS_PER_VAR * num_vars
    if left < first_stage_dtime(num_vars) / PLANNED_DTIME_PER_SECOND:
        return None
    capped = min(budget.dtime, left * PLANNED_DTIME_PER_SECOND)
    return Budget(budget.deadline, capped, budget.deterministic, budget, budget.work)


def has_time_to_build(budget: Budget, num_vars: int) -> bool:
    """True when the wall budget left covers building a model of ``num_vars`` variables."""
    return budget.deadline - time.perf_counter() >= BUILD_SECONDS_PER_VAR * num_vars


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
    premium_lb: int = 0
    groups_lb: int = 0
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class StageResult:
    """Best assignment of one stage (never worse than its hint), whether proven, and the bound."""

    values: list[int]
    proven: bool
    bound: float | None


def _parameters(
    solver: cp_model.CpSolver, pm: PlacementModel, options: SolveOptions, wall: float, dtime: float
) -> None:
    """Seed, workers, limits; deterministic (interleaved) search or the faster parallel portfolio.

    Big models get a light presolve (no symmetry, no probing, one iteration) when deterministic, and
    none otherwise: at 18k variables full presolve alone takes about 0.6 s of a 2 s budget.
    """
    p = solver.parameters
    p.num_workers = max(1, options.num_workers)
    p.random_seed = options.seed
    p.max_time_in_seconds = max(wall, 0.001)
    p.log_search_progress = options.log
    big = len(pm.variables) > BIG_MODEL_VARS
    if options.deterministic:
        p.interleave_search = True
        p.max_deterministic_time = max(dtime, 0.001)
        if big:
            p.symmetry_level = 0
            p.cp_model_probing_level = 0
            p.max_presolve_iterations = 1
    elif big:
        p.cp_model_presolve = False


class StagedSolver:
    """Runs the stages of one :class:`PlacementModel` within a :class:`Budget`."""

    def __init__(
        self, pm: PlacementModel, values: list[int], options: SolveOptions, budget: Budget, single: bool = False
    ) -> None:
        """``single``: one sequential CP-SAT worker (deterministic by itself, no interleaving); small
        neighbourhood models are proven faster so than by the interleaved portfolio (about 0.14 against
        more than 0.37 deterministic time on a 5k-variable production neighbourhood)."""
        self.pm = pm
        self.options = options
        self.budget = budget
        self.single = single
        self.out = Staged(values=values)

    def _stage(
        self, name: str, lin: Linear, sense: Literal["min", "max"], share: float, hint: list[int]
    ) -> StageResult:
        """Optimise ``lin`` from ``hint`` (a complete feasible assignment)."""
        pm, out = self.pm, self.out
        incumbent = lin.value(hint)
        if not lin.vars:
            return StageResult(hint, True, float(incumbent))
        wall, dtime = self.budget.limits(share)
        if dtime < STAGE_DTIME_PER_VAR * len(pm.variables):
            out.termination.append(f"{name}:SKIPPED(budget)")
            return StageResult(hint, False, None)
        if wall < STAGE_SECONDS_PER_VAR * len(pm.variables):
            out.termination.append(f"{name}:SKIPPED(deadline)")
            return StageResult(hint, False, None)
        add_hint(pm, hint)
        set_objective(pm, [v.index for v in lin.vars], lin.coefs, sense)
        solver = new_cp_solver()
        _parameters(solver, pm, self.options, wall, dtime)
        if self.single:
            solver.parameters.num_workers = 1
            solver.parameters.interleave_search = False
        status = solver.solve(pm.model)
        # OR-Tools 9.15 reports the same search's deterministic time with a last digit that varies from run to
        # run (an audit, 40 solves of one model): rounded, the budget it leaves, and the plan on size that
        # reads it, are the same every run
        used = round(solver.deterministic_time, 9)
        self.budget.spend(used)
        out.stats[f"{name}_wall_s"] = out.stats.get(f"{name}_wall_s", 0.0) + solver.wall_time
        out.stats[f"{name}_dtime"] = round(out.stats.get(f"{name}_dtime", 0.0) + used, 9)
        out.termination.append(f"{name}:{solver.status_name(status)}")
        if status == cp_model.MODEL_INVALID:
            raise ModelInvalidError(pm.model.validate())
        if status == cp_model.INFEASIBLE:
            raise StageFailed(f"stage {name} is infeasible although its hint is feasible")
        bound = solver.best_objective_bound if status != cp_model.UNKNOWN else None
        values = hint
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            found = list(solver.response_proto.solution)
            better = lin.value(found) <= incumbent if sense == "min" else lin.value(found) >= incumbent
            if better:
                values = found
        return StageResult(values, status == cp_model.OPTIMAL, bound)

    def _fix(self, lin: Linear, value: int, proven: bool, sense: Literal["min", "max"]) -> None:
        """Keep the stage's value in every later stage: ``==`` if proven, else no worse."""
        if proven:
            self.pm.model.add(lin.expr() == value)
        elif sense == "min":
            self.pm.model.add(lin.expr() <= value)
        else:
            self.pm.model.add(lin.expr() >= value)
        self.out.proven = self.out.proven and proven

    def served_stage(self, k: int) -> StageResult:
        """Maximise GPUs served of the k-th priority class with every lower class silent."""
        pm, out = self.pm, self.out
        classes = list(pm.max_served)
        lower = [c for c in classes[k + 1 :] if c in pm.quiet]  # a class with no slot places nothing anyway
        set_quiet(pm, lower, True)
        try:
            res = self._stage(
                f"served{classes[k]}",
                pm.served.get(classes[k], Linear()),
                "max",
                SERVED_SHARE,
                with_quiet(pm, lower, out.values, True),
            )
        finally:
            set_quiet(pm, lower, False)
        return StageResult(with_quiet(pm, lower, res.values, False), res.proven, res.bound)

    def run(self, first: StageResult | None = None, skip: frozenset[str] = frozenset()) -> Staged:
        """Served stages (class by class), then premium and groups; returns assignment and bounds.

        ``first``: the top class's served stage already solved on a model of the top class alone
        (see :func:`~hetero_opt.placement.cpsat.solver.top_class_first`): an incumbent (complete
        assignment of this model) that serves what it proved, with its proof and bound.
        ``skip``: stages (``served``, ``premium``, ``groups``) kept at the incumbent's value unsolved.
        """
        pm, out = self.pm, self.out
        classes = list(pm.max_served)
        for k, prio in enumerate(classes):
            lin = pm.served.get(prio, Linear())
            top = pm.max_served[prio]
            if "served" in skip and lin.vars and lin.value(out.values) < top:
                self._fix(lin, lin.value(out.values), False, "max")
                out.termination.append(f"served{prio}:SKIPPED")
                continue
            if not lin.vars or lin.value(out.values) == top:
                self._fix(lin, lin.value(out.values), True, "max")
                out.unserved_lb[prio] = top - lin.value(out.values)
                continue
            res = first if k == 0 and first is not None else self.served_stage(k)
            served = lin.value(res.values)
            if served > lin.value(out.values):
                out.values = merge(
                    pm, res.values, out.values, [pm.slots_by_priority.get(c, []) for c in reversed(classes[k + 1 :])]
                )
            else:
                served = lin.value(out.values)
            self._fix(lin, served, res.proven, "max")
            if res.proven:
                out.unserved_lb[prio] = top - served
            else:
                out.unserved_lb[prio] = 0 if res.bound is None else max(0, top - math.floor(res.bound + 1e-6))
        for name, lin, share in (("premium", pm.premium, PREMIUM_SHARE), ("groups", pm.groups, GROUPS_SHARE)):
            if name in skip:
                self._fix(lin, lin.value(out.values), False, "min")
                out.termination.append(f"{name}:SKIPPED")
                continue
            res = self._stage(name, lin, "min", share, out.values)
            out.values = res.values
            self._fix(lin, lin.value(out.values), res.proven, "min")
            lb = lin.lowest(pm.upper) if res.bound is None else math.ceil(res.bound - 1e-6)
            if name == "premium":
                out.premium_lb = lb
            else:
                out.groups_lb = lb
        return out


def merge(
    pm: PlacementModel, upper_part: list[int], incumbent: list[int], lower_slots: list[list[list[int]]]
) -> list[int]:
    """``upper_part`` with the lower classes' slots taken from ``incumbent``, made feasible again.

    Only the capacity rows link slots, so a lower-class slot (lowest class first) that has pods in
    an overfilled row is emptied until no row is overfilled; an all-zero slot is always feasible.
    """
    values = list(upper_part)
    for per_class in lower_slots:
        for s in per_class:
            for i in s:
                values[i] = incumbent[i]
    for row in pm.rows:
        if row.slack(values) >= 0:
            continue
        members = set(row.index)
        for per_class in lower_slots:
            for s in per_class:
                if any(values[i] and i in members for i in s):
                    for i in s:
                        values[i] = 0
                if row.slack(values) >= 0:
                    break
            if row.slack(values) >= 0:
                break
    return values
