"""The MILP backend: staged lexicographic solves of :mod:`.model` with HiGHS or CBC through PuLP.

Stages, each optimising one objective term and fixing it before the next (never a weighted sum):
served GPUs per priority class (highest first), premium cost, new groups, emptied groups. Every
stage starts from the best solution so far (the greedy plan first), so a stage that runs out of
time keeps an incumbent at least as good; a class the incumbent already serves in full is fixed
without a solve. The counts are returned; :func:`~hetero_opt.placement.solve.solve` binds them to nodes.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pulp

from hetero_opt.placement.backend import BackendOutput, Budget, Hint, SolveOptions
from hetero_opt.placement.binding import Counts, GroupDraft
from hetero_opt.placement.milp.model import (
    InSlot,
    MilpModel,
    OutSlot,
    build_model,
    evaluate,
    hint_values,
    is_feasible,
)
from hetero_opt.placement.objective import Score, gpu_cost, whole_free_bound
from hetero_opt.placement.slots import limit_zero_keeps_out
from hetero_opt.topology import TopologyView

ENGINES = {"highs": "HiGHS", "cbc": "PULP_CBC_CMD"}


@dataclass
class StageResult:
    """How one stage ended: its value at the kept solution and what the solver proved."""

    name: str
    value: int
    optimal: bool
    bound: float | None
    termination: str
    seconds: float


class _HighsWithStart(pulp.HiGHS):  # type: ignore[misc]
    """PuLP's in-process HiGHS plus a MIP start (PuLP 3.3.2 passes none to HiGHS)."""

    def __init__(self, start: dict[str, int] | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start = start

    def callSolver(self, lp: Any) -> None:
        if self.start is not None:
            cols = lp.variables()
            index = np.array([v.index for v in cols], dtype=np.int32)
            value = np.array([float(self.start.get(v.name, 0)) for v in cols], dtype=np.float64)
            lp.solverModel.setSolution(len(cols), index, value)
        # HiGHS keeps one process-wide thread pool sized by the first solve; a later solve with
        # another ``threads`` fails unless the pool is reset first.
        lp.solverModel.resetGlobalScheduler(True)
        lp.solverModel.run()


# Handing a model to the solver costs about this per variable (PuLP writes it, HiGHS or CBC reads
# it): a stage with less time left than that would overshoot the deadline, so it is skipped.
SETUP_SECONDS_PER_VAR = 2e-5
# PuLP builds about 15k variables per second here (production size: 29k variables,
# 25k pod cells, 1.1-2.3 s): a model whose build alone would eat the limit is not started.
BUILD_SECONDS_PER_CELL = 1e-4


class MilpBackend:
    """Independent MILP backend (PuLP) used to cross-check CP-SAT's optimality.

    Parameters
    ----------
    engine
        ``highs`` (in-process via highspy) or ``cbc`` (PuLP's bundled CBC executable).
    """

    def __init__(self, engine: str = "highs") -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine='{engine}' is not one of {sorted(ENGINES)}")
        self.engine = engine
        self.name = "milp" if engine == "highs" else "milp-cbc"

    def available(self) -> bool:
        """True when PuLP reports the engine usable here."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return ENGINES[self.engine] in pulp.listSolvers(onlyAvailable=True)

    def version(self) -> str:
        """``pulp <version> + <engine> <version>``."""
        if self.engine == "highs":
            import highspy

            return f"pulp {pulp.__version__} + HiGHS {highspy.Highs().version()}"
        return f"pulp {pulp.__version__} + CBC (bundled)"

    def solve(self, view: TopologyView, hint: Hint, options: SolveOptions) -> BackendOutput:
        """Counts for ``view``'s requests in lexicographic stages from the greedy's counts; none on failure."""
        start = time.perf_counter()
        budget = Budget.of(options)
        version = self.version()
        cells = view.candidate_cells([r for r in view.requests if r.delta != 0])
        if options.time_limit < BUILD_SECONDS_PER_CELL * cells:
            reason = (
                f"{self.name}: a model of ~{cells} pod cells takes longer than time_limit={options.time_limit:g} s "
                f"to build and solve here"
            )
            return BackendOutput(None, "fallback", "too large", reason, None, version, {"cells": float(cells)})
        model = build_model(view)
        stats: dict[str, float] = {
            "variables": float(len(model.variables())),
            "constraints": float(model.prob.numConstraints()),
            "build_s": time.perf_counter() - start,
        }
        values = hint_values(model, view, hint.counts.drafts)
        stats["hint_used"] = float(values is not None)
        stages = self._stage_list(model)
        results: list[StageResult] = []
        for i, (stage, expr, sense) in enumerate(stages):
            seconds = budget.left() / (len(stages) - i)  # an equal share of what is left of the one budget
            try:
                result, values = self._run_stage(model, stage, expr, sense, values, seconds, options)
            except pulp.PulpError as exc:
                reason = f"{self.name} failed in stage {stage}: {exc}"
                return BackendOutput(None, "fallback", type(exc).__name__, reason, None, version, stats)
            if values is None:
                reason = f"{self.name}: no solution in stage {stage}"
                return BackendOutput(None, "fallback", result.termination, reason, None, version, stats)
            results.append(result)
            stats[f"stage_{stage}_s"] = result.seconds
            if options.export_model and i == len(stages) - 1:
                self._export(model, options.export_model)
            # Fix the term (<= / >= the kept value: equal when proven, monotone when not).
            value = evaluate(expr, values)
            model.prob += (expr <= value) if sense > 0 else (expr >= value), f"fix_{stage}"
        if options.export_model and not stages:
            self._export(model, options.export_model)
        if values is None:  # no stage to run: nothing to place; all zeros satisfies every row
            values = {v.name: 0 for v in model.variables()}
        termination = "; ".join(f"{r.name}: {r.termination}" for r in results)
        counts = self._extract(model, view, values)
        stats["wall_s"] = time.perf_counter() - start
        status = "optimal" if all(r.optimal for r in results) else "feasible"
        bound = self._bound(model, view, values, results)
        return BackendOutput(counts, status, termination, "", bound, version, stats)

    @staticmethod
    def _export(model: MilpModel, prefix: str) -> None:
        """Write the final stage's problem (earlier terms fixed) as ``prefix.mps`` and ``prefix.lp``."""
        model.prob.writeMPS(prefix + ".mps")
        model.prob.writeLP(prefix + ".lp")

    @staticmethod
    def _stage_list(model: MilpModel) -> list[tuple[str, pulp.LpAffineExpression, int]]:
        """(name, expression, +1 minimise / -1 maximise) per stage, in lexicographic order."""
        stages = [(f"served_p{p}", e, -1) for p, e in model.served_by_priority.items() if len(e) > 0]
        if len(model.premium) > 0:
            stages.append(("premium", model.premium, 1))
        if len(model.new_groups) > 0:
            stages.append(("new_groups", model.new_groups, 1))
        if len(model.emptied) > 0:
            stages.append(("emptied", model.emptied, -1))
        return stages

    def _run_stage(
        self,
        model: MilpModel,
        stage: str,
        expr: pulp.LpAffineExpression,
        sense: int,
        values: dict[str, int] | None,
        limit_s: float,
        options: SolveOptions,
    ) -> tuple[StageResult, dict[str, int] | None]:
        """Solve one stage; return how it ended and the solution kept (None if there is none)."""
        begin = time.perf_counter()
        prob = model.prob
        prob.setObjective(sense * expr)
        if stage.startswith("served_") and values is not None:
            # The incumbent already serves the whole class: nothing to optimise.
            wanted = model.wanted_by_priority[int(stage.removeprefix("served_p"))]
            if evaluate(expr, values) >= wanted:
                return StageResult(stage, evaluate(expr, values), True, None, "incumbent serves all", 0.0), values
        if limit_s <= max(0.01, SETUP_SECONDS_PER_VAR * len(model.variables())):
            opt = False
            return StageResult(stage, evaluate(expr, values) if values else 0, opt, None, "no time left", 0.0), values
        solver = self._solver(values, limit_s, options)
        for v in model.variables():
            v.varValue = None if values is None else values.get(v.name, 0)
        prob.solve(solver)
        sol_status = prob.sol_status
        found = sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
        optimal = prob.status == pulp.LpStatusOptimal and sol_status == pulp.LpSolutionOptimal
        termination = f"{pulp.LpStatus[prob.status]}/{pulp.LpSolution[sol_status]}"
        bound: float | None = None
        if self.engine == "highs":
            termination = prob.solverModel.modelStatusToString(prob.solverModel.getModelStatus())
            bound = float(prob.solverModel.getInfo().mip_dual_bound)
        new_values = None
        if found:
            new_values = {v.name: round(v.varValue or 0.0) for v in model.variables()}
            if not is_feasible(model, new_values):
                found, optimal, termination = False, False, termination + " (rounded solution infeasible)"
                new_values = None
        if (
            new_values is not None
            and values is not None
            and sense * evaluate(expr, values) < sense * evaluate(expr, new_values)
        ):
            new_values = None  # never keep a worse solution than the incumbent
        kept = new_values if new_values is not None else values
        value = evaluate(expr, kept) if kept is not None else 0
        if optimal:
            bound = float(sense * value)
        seconds = time.perf_counter() - begin
        return StageResult(stage, value, optimal, bound, termination, seconds), kept

    def _solver(self, values: dict[str, int] | None, seconds: float, options: SolveOptions) -> Any:
        # Objectives have integer coefficients: an absolute gap below 1 proves optimality.
        if self.engine == "highs":
            return _HighsWithStart(
                values,
                mip=True,
                msg=options.log,
                timeLimit=seconds,
                threads=options.num_workers,
                gapRel=0.0,
                gapAbs=0.5,
                random_seed=options.seed,
            )
        with warnings.catch_warnings():
            # The bundled CBC is deprecated for PuLP 4.0 (cpsat-notes §10) but is what 3.3.2 ships.
            warnings.simplefilter("ignore", DeprecationWarning)
            return pulp.PULP_CBC_CMD(
                mip=True,
                msg=options.log,
                timeLimit=round(max(0.1, seconds), 2),
                # No thread option: with "-threads N", even 1, the bundled CBC 2.10.3 runs its branch and bound
                # in a worker thread that now and then never starts ("Cbc0030I Thread 0 used 0 times, waiting to
                # start 10.0"): the stage sleeps to its time limit with 0 CPU seconds (coin-or/pulp#737). Serial.
                threads=None,
                gapRel=0.0,
                gapAbs=0.5,
                warmStart=values is not None,
                options=[f"randomCbcSeed {options.seed + 1}"],
            )

    @staticmethod
    def _extract(model: MilpModel, view: TopologyView, values: dict[str, int]) -> Counts:
        """Counts per group change (non-zero slots) and, per request not served in full, why."""
        drafts: list[GroupDraft] = []
        placed: dict[str, int] = {}
        opened: dict[str, int] = {}
        slots: list[tuple[OutSlot | InSlot, bool, int]] = [(o, o.spec.new, 1) for o in model.out_slots]
        slots += [(s, False, -1) for s in model.in_slots]
        for slot, new, sign in slots:
            sid = slot.spec.request.service.id
            if isinstance(slot, OutSlot) and slot.open is not None:
                opened[sid] = opened.get(sid, 0) + values[slot.open.name]
            u = values[slot.units.name]
            if u <= 0:
                continue
            d = GroupDraft(sid, slot.spec.group, new, slot.spec.domain, sign * u)
            for key, var in sorted(slot.pods.items()):
                if values[var.name]:
                    d.counts[key] = values[var.name]
            drafts.append(d)
            placed[sid] = placed.get(sid, 0) + sign * u
        reasons: dict[str, str] = {}
        for req in view.requests:
            svc, got = req.service, placed.get(req.service.id, 0)
            if req.delta == 0 or got == req.delta:
                continue
            if req.delta > 0:
                why = f"optimal placement fits {got} of {req.delta} units within {svc.affinity} affinity and GPU types"
                if any(r.service.priority > svc.priority and r.delta > 0 for r in view.requests):
                    why += " after higher-priority requests"
                blocked = model.candidate_domains.get(svc.id, 0) > 0 or limit_zero_keeps_out(view, req)
                if blocked and opened.get(svc.id, 0) >= svc.max_new_groups:
                    why += f"; new-group limit {svc.max_new_groups} reached"
            else:
                why = f"groups hold only {-got} removable units"
            reasons[svc.id] = why
        return Counts(drafts, reasons)

    @staticmethod
    def _bound(
        model: MilpModel, view: TopologyView, values: dict[str, int], results: list[StageResult]
    ) -> Score | None:
        """Best proven bound on the terms: exact where a stage is proven, trivial after the first gap."""
        by_name = {r.name: r for r in results}
        proven = True
        unserved: list[int] = []
        for prio, wanted in model.wanted_by_priority.items():
            r = by_name.get(f"served_p{prio}")
            served_now = evaluate(model.served_by_priority[prio], values)
            if r is None or (proven and r.optimal):
                unserved.append(wanted - served_now)
                continue
            if not proven or r.bound is None or not math.isfinite(r.bound):
                if proven:
                    return None  # no proven bound for the first open class
                unserved.append(0)
                continue
            unserved.append(max(0, wanted - math.floor(-r.bound + 1e-6)))
            proven = False
        trivial_premium = -sum(
            gpu_cost(view, s.spec.request.service.id, key[0], key[1], key[2])
            * s.spec.request.service.role(key[0]).gpus_per_pod
            * int(var.upBound)
            for s in model.in_slots
            for key, var in s.pods.items()
        )
        premium = _term_bound(by_name.get("premium"), proven, evaluate(model.premium, values), trivial_premium, 1)
        proven = proven and (by_name.get("premium") is None or by_name["premium"].optimal)
        new_groups = _term_bound(by_name.get("new_groups"), proven, evaluate(model.new_groups, values), 0, 1)
        proven = proven and (by_name.get("new_groups") is None or by_name["new_groups"].optimal)
        emptied = _term_bound(by_name.get("emptied"), proven, evaluate(model.emptied, values), len(model.emptied), -1)
        free_nodes = whole_free_bound(view, unserved)
        return Score(
            priorities=list(model.wanted_by_priority),
            unserved_gpus=unserved,
            premium_cost=premium,
            new_groups=new_groups,
            emptied_groups=emptied,
            whole_free_nodes=free_nodes,
        )


def _term_bound(result: StageResult | None, proven: bool, value: int, trivial: int, sense: int) -> int:
    """Bound on one minimised (``sense`` 1) or maximised (-1) term given the stages before it."""
    if not proven:
        return trivial
    if result is None or result.optimal:
        return value
    if result.bound is None or not math.isfinite(result.bound):
        return trivial
    return math.ceil(result.bound - 1e-6) if sense > 0 else math.floor(-result.bound + 1e-6)
